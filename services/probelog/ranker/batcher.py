"""Dynamic batching: concurrent Rank calls scored in one pass over the index.

Like Triton's dynamic batcher: the first call to arrive opens a window (``window_s``, e.g. 2 ms);
calls arriving before it closes, or while the previous batch is being scored, join the next
batch. A call that arrives alone at an idle ranker after a pass that served one call (a client
searching on its own) is scored at once, with no window. A batch is cut at ``max_batch_queries``
queries. The window also runs from the end of the
previous batch, every arrival re-opens it, and calls that waited through a pass also wait for
that pass's callers to come back (up to a quarter of the pass in all): clients in a loop then
join one batch instead of splitting into two alternating half batches, which on 16 closed-loop
clients halves the throughput (a batch of 8 costs what a batch of 16 does). Calls in a batch that share an index and
options (one hit per model, include, exclude) are stacked into one kernel call with the largest
top_k among them; each call gets the first top_k hits of its queries. That is exact: the kernel
ranks in a total order, so the best k' hits are a prefix of the best k >= k'. Groups with other
options run one after the other in the same worker thread.

Queries are z-scored (and rejected, if constant or non-finite) before they join a batch, so one
bad call cannot fail the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from prometheus_client import Counter, Histogram

from probelog.common.errors import ResourceExhausted
from probelog.core.index import IndexHit, SparseLogitIndex

logger = logging.getLogger(__name__)

_GroupKey = tuple[int, bool, frozenset[str], frozenset[str]]
#: Longest wait for stragglers, as a share of the last pass over the index.
_LINGER = 0.25

BATCH_CALLS = Histogram(
    "probelog_ranker_batch_calls", "Rank calls scored in one batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128)
)
WINDOW_WAITS = Counter("probelog_ranker_window_waits_total", "Batches that waited for the batching window")


@dataclass
class _Call:
    index: SparseLogitIndex
    z: npt.NDArray[np.float32]  # (n_queries, n_probes), z-scored
    top_k: int
    one_hit: bool
    include: frozenset[str]
    exclude: frozenset[str]
    future: asyncio.Future[list[list[IndexHit]]]
    arrived: float = field(default_factory=time.monotonic)

    @property
    def group(self) -> _GroupKey:
        return (id(self.index), self.one_hit, self.include, self.exclude)


@dataclass(frozen=True)
class BatchStats:
    """Counters since start: calls, queries, and kernel passes (one per group of a batch)."""

    calls: int
    queries: int
    batches: int
    passes: int
    #: Batches that waited for a window (the others were lone calls, scored at once, or full).
    window_waits: int = 0


class DynamicBatcher:
    """Stacks concurrent searches into shared index passes.

    Parameters
    ----------
    window_s : float
        How long the first call of a batch waits for others (seconds, > 0).
    max_batch_queries : int
        Most queries in one batch; a full batch starts at once.
    max_queued_queries : int
        Queries waiting beyond this raise ResourceExhausted.
    """

    def __init__(
        self, window_s: float, *, max_batch_queries: int = 64, max_queued_queries: int = 4096
    ) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_s = window_s
        self.max_batch_queries = max_batch_queries
        self.max_queued_queries = max_queued_queries
        self._pending: deque[_Call] = deque()
        self._pending_queries = 0
        self._arrived = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._last_batch_end = 0.0
        self._last_arrival = 0.0
        self._last_pass_s = 0.0
        self._last_batch_calls = 0
        self._arrivals_since_end = 0
        self._calls = self._queries = self._batches = self._passes = self._window_waits = 0

    def stats(self) -> BatchStats:
        return BatchStats(self._calls, self._queries, self._batches, self._passes, self._window_waits)

    async def search(
        self,
        index: SparseLogitIndex,
        z: npt.NDArray[np.float32],
        top_k: int,
        *,
        one_hit_per_model: bool = False,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> list[list[IndexHit]]:
        """``index.search(z, top_k, normalized=True, ...)``, batched with concurrent calls.

        ``z`` holds z-scored query descriptors, shape (n_queries, n_probes).
        """
        if self._pending_queries + len(z) > self.max_queued_queries:
            raise ResourceExhausted(
                f"the ranker has {self._pending_queries} queries waiting (limit "
                f"{self.max_queued_queries}); retry later"
            )
        call = _Call(
            index, z, top_k, one_hit_per_model, frozenset(include), frozenset(exclude),
            asyncio.get_running_loop().create_future(),
        )
        self._pending.append(call)
        self._last_arrival = call.arrived
        self._arrivals_since_end += 1
        self._pending_queries += len(z)
        self._calls += 1
        self._queries += len(z)
        self._arrived.set()
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="ranker-batcher")
        return await call.future

    async def close(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        while self._pending:
            call = self._pending.popleft()
            if not call.future.done():
                call.future.cancel()

    async def _run(self) -> None:
        while self._pending:
            await self._gather_batch()
            batch = self._take()
            if not batch:
                continue
            groups: dict[_GroupKey, list[_Call]] = {}
            for call in batch:
                groups.setdefault(call.group, []).append(call)
            self._batches += 1
            self._passes += len(groups)
            BATCH_CALLS.observe(len(batch))
            started = time.monotonic()
            try:
                results = await asyncio.to_thread(_score_groups, list(groups.values()))
            except asyncio.CancelledError:
                for call in batch:
                    if not call.future.done():
                        call.future.cancel()
                raise
            self._last_batch_end = time.monotonic()
            self._last_pass_s = self._last_batch_end - started
            self._last_batch_calls = len(batch)
            self._arrivals_since_end = 0
            for call, result in results:
                if call.future.done():  # the caller gave up (deadline, cancellation)
                    continue
                if isinstance(result, BaseException):
                    call.future.set_exception(result)
                else:
                    call.future.set_result(result)

    async def _gather_batch(self) -> None:
        """Wait until a window without arrivals has passed, or a batch is full.

        The window opens at the oldest waiting call, or at the end of the previous batch when
        that is later, and each arrival re-opens it. When calls were already waiting as the
        previous batch ended, the batch also waits for that batch's callers to come back (as
        clients in a loop do). Either way it waits at most a quarter of the last pass (or one
        window) in all, so that no call waits long for stragglers.
        """
        first = self._pending[0]
        if len(self._pending) == 1 and self._last_batch_calls <= 1 and first.arrived > self._last_batch_end:
            return  # a lone call after a lone call: nobody to wait for
        self._window_waits += 1
        WINDOW_WAITS.inc()
        opened = max(first.arrived, self._last_batch_end)
        cap = opened + max(self.window_s, _LINGER * self._last_pass_s)
        expecting = first.arrived <= self._last_batch_end
        while self._pending_queries < self.max_batch_queries:
            if expecting and self._arrivals_since_end < self._last_batch_calls:
                deadline = cap
            else:
                deadline = min(max(opened, self._last_arrival) + self.window_s, cap)
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    def _take(self) -> list[_Call]:
        """Waiting calls, oldest first, up to max_batch_queries queries (at least one call)."""
        batch: list[_Call] = []
        n = 0
        while self._pending:
            call = self._pending[0]
            if batch and n + len(call.z) > self.max_batch_queries:
                break
            self._pending.popleft()
            self._pending_queries -= len(call.z)
            if call.future.done():
                continue
            batch.append(call)
            n += len(call.z)
        return batch


def _score_groups(
    groups: list[list[_Call]],
) -> list[tuple[_Call, list[list[IndexHit]] | BaseException]]:
    """One index pass per group of compatible calls (runs in the worker thread)."""
    out: list[tuple[_Call, list[list[IndexHit]] | BaseException]] = []
    for calls in groups:
        first = calls[0]
        z = calls[0].z if len(calls) == 1 else np.concatenate([c.z for c in calls])
        top_k = max(c.top_k for c in calls)
        try:
            hits = first.index.search(
                z, top_k, one_hit_per_model=first.one_hit, include=first.include or None,
                exclude=first.exclude or None, normalized=True,
            )
        except Exception as exc:
            out.extend((c, exc) for c in calls)
            continue
        start = 0
        for c in calls:
            n = len(c.z)
            out.append((c, [h[: c.top_k] for h in hits[start : start + n]]))
            start += n
    return out
