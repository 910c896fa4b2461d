"""A RankerPort over N ranker shards: fan out, merge the top-k, flag what is missing.

Each shard owns some partitions of the store's feed and their models
(:func:`probelog.ranker.ranker.owned_partitions`), so every model lives on exactly one shard and
the global top-k is contained in the union of the shards' top-k. Merging by ``(score, model id, logit index)`` -- the order of one ranker over the
whole hub, ties included -- gives exactly that ranker's result. With one hit per model, each
shard already returns each of its models once, and models do not span shards.

A shard that fails to answer (unreachable, or past the deadline) is never a silent gap: with
``allow_partial`` the result is flagged ``partial`` with ``shards_answered < shards_total`` and
the missing addresses are logged and returned; otherwise the call fails with UNAVAILABLE
naming the shard.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections.abc import Sequence
from typing import Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from probelog.common.errors import DeadlineExceeded, ProbeLogError, Unavailable
from probelog.common.ports import RankerPort, RankResult
from probelog.v1 import types_pb2

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ShardClient(RankerPort, Protocol):
    """What the sharded ranker needs of a shard (RankerClient has it): a ranker and its address."""

    address: str

    async def close(self) -> None: ...


def _order(hit: types_pb2.Hit) -> tuple[float, str, int]:
    return (hit.score, hit.model_id, hit.logit_index)


def merge_hits(per_shard: Sequence[Sequence[types_pb2.Hit]], top_k: int) -> list[types_pb2.Hit]:
    """The best ``top_k`` of several shards' hit lists (each best first), renumbered 1..n."""
    merged = []
    for rank, hit in enumerate(heapq.merge(*per_shard, key=_order), start=1):
        if rank > top_k:
            break
        out = types_pb2.Hit()
        out.CopyFrom(hit)
        out.rank = rank
        merged.append(out)
    return merged


class ShardedRanker:
    """Implements :class:`~probelog.common.ports.RankerPort` over ranker shards.

    Parameters
    ----------
    clients : sequence of ShardClient
        One per shard (typically :class:`~probelog.ranker.client.RankerClient`).
    allow_partial : bool
        When a shard does not answer: a partial result flagged as such (True), or UNAVAILABLE.
    default_timeout_s : float or None
        Deadline of a fan-out when the caller gives none, so that a hung shard cannot hold a
        query forever.
    """

    def __init__(
        self,
        clients: Sequence[ShardClient],
        *,
        allow_partial: bool = False,
        default_timeout_s: float | None = 10.0,
    ) -> None:
        if not clients:
            raise ValueError("a sharded ranker needs at least one shard")
        self.clients = list(clients)
        self.allow_partial = allow_partial
        self.default_timeout_s = default_timeout_s

    async def close(self) -> None:
        for client in self.clients:
            await client.close()

    async def _fan_out(
        self, calls: list[asyncio.Task[T]], timeout: float | None, what: str
    ) -> tuple[list[T], list[str]]:
        """Results of the calls that finished in time, and 'address (reason)' for the others.

        Errors that are the request's fault (e.g. INVALID_ARGUMENT, NOT_FOUND) are raised: every
        shard would give the same answer.
        """
        _, pending = await asyncio.wait(calls, timeout=timeout)
        for task in pending:
            task.cancel()
        answered: list[T] = []
        missing: list[str] = []
        request_error: BaseException | None = None
        for client, task in zip(self.clients, calls, strict=True):
            if task in pending:
                missing.append(f"{client.address} (no answer within {timeout or 0:.3f} s)")
                continue
            exc = task.exception()  # retrieved for every task, so none is left unobserved
            if exc is None:
                answered.append(task.result())
            elif isinstance(exc, Unavailable | DeadlineExceeded) or not isinstance(exc, ProbeLogError):
                missing.append(f"{client.address} ({exc})")
            elif request_error is None:
                request_error = exc
        if request_error is not None:
            raise request_error
        if missing:
            if not self.allow_partial or not answered:
                raise Unavailable(
                    f"{len(missing)} of {len(self.clients)} ranker shards did not answer {what}: "
                    + "; ".join(missing)
                )
            logger.warning(
                "%s: partial answer, %d of %d ranker shards missing: %s",
                what, len(missing), len(self.clients), "; ".join(missing),
            )
        return answered, missing

    async def rank(
        self,
        probe_set_id: str,
        queries: npt.NDArray[np.float32],
        top_k: int,
        *,
        one_hit_per_model: bool = False,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        normalized: bool = False,
        timeout: float | None = None,
    ) -> RankResult:
        timeout = self.default_timeout_s if timeout is None else timeout
        calls = [
            asyncio.create_task(
                client.rank(
                    probe_set_id, queries, top_k, one_hit_per_model=one_hit_per_model,
                    include=include, exclude=exclude, normalized=normalized, timeout=timeout,
                )
            )
            for client in self.clients
        ]
        results, missing = await self._fan_out(calls, timeout, "Rank")
        hits = [merge_hits([r.hits[q] for r in results], top_k) for q in range(len(results[0].hits))]
        return RankResult(
            hits=hits,
            n_logits_searched=sum(r.n_logits_searched for r in results),
            n_models_searched=sum(r.n_models_searched for r in results),
            partial=bool(missing),
            shards_answered=len(results),
            shards_total=len(self.clients),
            missing_shards=missing,
        )

    async def applied_sequences(self, *, timeout: float | None = None) -> list[int]:
        """Per partition of the store's feed, the sequence its owner has applied: the largest
        answer, as a shard reports 0 for the partitions it does not own (0 when the owner did
        not answer and partial answers are allowed); empty while a shard has not loaded."""
        timeout = self.default_timeout_s if timeout is None else timeout
        calls = [asyncio.create_task(c.applied_sequences(timeout=timeout)) for c in self.clients]
        per_shard, _ = await self._fan_out(calls, timeout, "GetIndexStats")
        if not all(per_shard) or len({len(s) for s in per_shard}) != 1:
            return []
        return [max(column) for column in zip(*per_shard, strict=True)]
