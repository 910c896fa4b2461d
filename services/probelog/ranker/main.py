"""Composition root of the ranker."""

from __future__ import annotations

import os
import re

from probelog.common.errors import FailedPrecondition
from probelog.common.runtime import run
from probelog.common.server import create_channel
from probelog.common.service import Built, Peers, need
from probelog.descriptor_store.client import DescriptorStoreClient
from probelog.ranker.config import PORT, RankerSettings
from probelog.ranker.ranker import Ranker
from probelog.ranker.servicer import RankerServicer


def shard_ordinal(settings: RankerSettings, hostname: str) -> int:
    """The shard index: the setting, else 0 for an unsharded ranker, else the ordinal ending
    ``hostname`` (a StatefulSet names its pods ``<name>-<ordinal>``)."""
    if settings.shard_index >= 0:
        return settings.shard_index
    if settings.shard_index != -1:
        raise FailedPrecondition(f"shard index must be >= 0 (or -1: from the host name), got {settings.shard_index}")
    if settings.shard_count == 1:
        return 0
    found = re.fullmatch(r".*-(\d+)", hostname)
    if found is not None:
        return int(found.group(1))
    raise FailedPrecondition(
        f"shard index is not set and the host name {hostname!r} does not end in -<ordinal>: "
        "set --shard-index (PROBELOG_SHARD_INDEX) or run the shards as a StatefulSet"
    )


def check(settings: RankerSettings) -> None:
    if settings.index_dtype not in ("float16", "float32"):
        raise FailedPrecondition(f"index dtype must be float16 or float32, got {settings.index_dtype!r}")
    if settings.shard_count < 1:
        raise FailedPrecondition(f"shard count must be >= 1, got {settings.shard_count}")
    if not 0 <= settings.shard_index < settings.shard_count:
        raise FailedPrecondition(
            f"shard index {settings.shard_index} is outside [0, {settings.shard_count})"
        )
    if settings.batch_window_ms < 0 or settings.max_batch_queries < 1:
        raise FailedPrecondition("batch window must be >= 0 ms and max batch queries >= 1")


async def build(settings: RankerSettings, peers: Peers) -> Built[Ranker]:
    """The ranker, loaded from and following the store (its peer)."""
    hostname = os.environ.get("HOSTNAME", "")
    settings = settings.model_copy(update={"shard_index": shard_ordinal(settings, hostname)})
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
