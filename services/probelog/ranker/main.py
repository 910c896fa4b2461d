"""Composition root of the ranker."""

from __future__ import annotations

from probelog.common.errors import FailedPrecondition
from probelog.common.runtime import run
from probelog.common.server import create_channel
from probelog.common.service import Built, Peers, need
from probelog.descriptor_store.client import DescriptorStoreClient
from probelog.ranker.config import PORT, RankerSettings
from probelog.ranker.ranker import Ranker
from probelog.ranker.servicer import RankerServicer


def check(settings: RankerSettings) -> None:
    if settings.index_dtype not in ("float16", "float32"):
        raise FailedPrecondition(f"index dtype must be float16 or float32, got {settings.index_dtype!r}")
    if not 0 <= settings.shard_index < settings.shard_count:
        raise FailedPrecondition(
            f"shard index {settings.shard_index} is outside [0, {settings.shard_count})"
        )
    if settings.batch_window_ms < 0 or settings.max_batch_queries < 1:
        raise FailedPrecondition("batch window must be >= 0 ms and max batch queries >= 1")


async def build(settings: RankerSettings, peers: Peers) -> Built[Ranker]:
    """The ranker, loaded from and following the store (its peer)."""
    check(settings)
    ranker = Ranker(
        need(peers.store, "descriptor store"),
        shard_index=settings.shard_index,
        shard_count=settings.shard_count,
        values_dtype=settings.index_dtype,
        batch_window_ms=settings.batch_window_ms,
        max_batch_queries=settings.max_batch_queries,
        index_dir=settings.index_dir or None,
    )
    await ranker.start()
    return Built([RankerServicer(ranker)], ranker, [*peers.closers, ranker.stop])


async def serve(settings: RankerSettings, ready_file: str = "") -> None:
    store = DescriptorStoreClient(create_channel(settings.store_address, settings.client_tls), settings.store_address)
    built = await build(settings, Peers(store=store, closers=[store.close]))
    await run(built.servicers, settings, PORT, cleanup=built.close, ready_file=ready_file, checks=built.checks)
