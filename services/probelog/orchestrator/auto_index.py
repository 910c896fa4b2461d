"""Auto-indexing: every model that appears in the runner's repository becomes searchable.

With ``auto_index`` on, the orchestrator polls the probe runner's model list (Triton's repository
index) every ``auto_index_interval_s`` and indexes, for the default probe set, each model that
the store does not hold yet. A model dropped into the repository is thus indexed without a call:
the runner loads it on demand (explicit model-control mode), which is why the poll lists every
model in the repository, not only the loaded ones.

A model that cannot be indexed (FAILED_PRECONDITION, INVALID_ARGUMENT, NOT_FOUND) is logged once
and not tried again until it leaves the repository; an unreachable backend (UNAVAILABLE,
DEADLINE_EXCEEDED) ends the round and is retried at the next one. The loop never dies of an
error.

With a work queue (``index_queue_url``), a round queues the new models instead of indexing
them itself (those queued, running or failed on the queue are left alone) and the indexing
workers (``index_workers``, in this process or others) do the work
(:mod:`probelog.orchestrator.work_queue`). The file store has no queue: the loop above is the
one-process shape.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from probelog.common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ProbeLogError,
    Unavailable,
)
from probelog.common.ids import check_model_id
from probelog.orchestrator.search import IndexRequest, SearchEngine
from probelog.orchestrator.work_queue import IndexQueue, redis_errors

logger = logging.getLogger(__name__)

#: Deadline of one auto-indexing IndexModel (probing a large model on a busy server is slow).
INDEX_TIMEOUT_S = 600.0


class AutoIndexer:
    """Indexes the models of the runner's repository that the store lacks.

    Parameters
    ----------
    engine : SearchEngine
    interval_s : float
        Seconds between two polls of the repository.
    queue : IndexQueue, optional
        The work queue new models go to; without one they are indexed here, one at a time.
    """

    def __init__(self, engine: SearchEngine, interval_s: float = 10.0, queue: IndexQueue | None = None) -> None:
        if interval_s <= 0:
            raise ValueError(f"auto-index interval must be positive, got {interval_s}")
        self.engine = engine
        self.interval_s = interval_s
        self.queue = queue
        #: Models that failed for a reason retrying will not change: name -> message.
        self.failed: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="auto-index")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        logger.info("auto-indexing every %.1f s", self.interval_s)
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("auto-index round failed")
            await asyncio.sleep(self.interval_s)

    async def run_once(self) -> list[str]:
        """One round: index what is new. Returns the model names indexed."""
        try:
            probe_set = await self.engine.resolve_probe_set("")
            served = await self.engine.list_source_models(probe_set.probe_set_id)
        except (Unavailable, DeadlineExceeded) as exc:
            logger.warning("auto-index: cannot list models (%s); next try in %.0f s", exc, self.interval_s)
            return []
        except FailedPrecondition as exc:
            logger.warning("auto-index: %s", exc)
            return []
        names = {m.name for m, _ in served}
        indexed = {m.name for m, is_indexed in served if is_indexed}
        for gone in set(self.failed) - names:
            del self.failed[gone]  # left the repository: a new model of that name gets a new try
        todo = sorted(names - indexed - set(self.failed))
        if self.queue is not None:
            return await self._enqueue(self.queue, todo, probe_set.probe_set_id)
        done: list[str] = []
        for name in todo:
            started = time.perf_counter()
            try:
                request = IndexRequest(name, check_model_id(name), probe_set=probe_set.probe_set_id)
                response = await self.engine.index_model(request, timeout=INDEX_TIMEOUT_S)
            except (FailedPrecondition, InvalidArgument, NotFound) as exc:
                self.failed[name] = str(exc)
                logger.warning("auto-index: %s cannot be indexed, not retrying: %s: %s", name, type(exc).__name__, exc)
                continue
            except (Unavailable, DeadlineExceeded) as exc:
                logger.warning("auto-index: %s: %s: %s; retrying next round", name, type(exc).__name__, exc)
                break
            except ProbeLogError as exc:
                logger.warning("auto-index: %s: %s: %s; retrying next round", name, type(exc).__name__, exc)
                continue
            done.append(name)
            logger.info(
                "auto-index: indexed %s (%d logits) in %.1f s%s",
                name, response.model.n_logits, time.perf_counter() - started,
                "" if response.searchable else " (not yet searchable)",
            )
        if todo:
            logger.info(
                "auto-index round: %d new, %d indexed, %d not indexable so far", len(todo), len(done), len(self.failed)
            )
        return done

    async def _enqueue(self, queue: IndexQueue, todo: list[str], probe_set_id: str) -> list[str]:
        """Queue the models the queue does not hold yet. Returns the names queued."""
        try:
            with redis_errors():
                known = await queue.known()
                new = [n for n in todo if n not in known]
                await queue.enqueue(new, probe_set_id)
        except Unavailable as exc:
            logger.warning("auto-index: %s; next try in %.0f s", exc, self.interval_s)
            return []
        if new:
            logger.info("auto-index round: %d new models queued", len(new))
        return new
