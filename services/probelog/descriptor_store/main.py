"""Composition root of the descriptor store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from probelog.common.errors import FailedPrecondition
from probelog.common.health import HealthCheck
from probelog.common.runtime import run
from probelog.common.service import Built, Peers
from probelog.descriptor_store.config import PORT, StoreSettings
from probelog.descriptor_store.file_store import FileDescriptorStore
from probelog.descriptor_store.servicer import DescriptorStoreServicer

if TYPE_CHECKING:
    from probelog.descriptor_store.redis_store import RedisDescriptorStore as RedisStore


async def open_store(settings: StoreSettings) -> tuple[FileDescriptorStore | RedisStore, str]:
    """The store backend the URL names, opened and checked (fails fast)."""
    url = settings.store_url
    if url.startswith(("redis://", "rediss://", "unix://")):
        from probelog.descriptor_store.redis_store import RedisDescriptorStore

        store = RedisDescriptorStore.from_settings(settings)
        await store.open()
        return store, "redis"
    if url.startswith("file://") or "://" not in url:
        file_store = FileDescriptorStore(url.removeprefix("file://"))
        await file_store.open()
        return file_store, "file"
    raise FailedPrecondition(f"unsupported store URL {url!r}: use redis://, rediss:// or file://")


async def build(settings: StoreSettings, peers: Peers) -> Built[FileDescriptorStore | RedisStore]:
    """The store service: it talks to no peer."""
    store, backend = await open_store(settings)
    return Built(
        [DescriptorStoreServicer(store, backend, max_probe_set_bytes=settings.max_probe_set_bytes)],
        store,
        [*peers.closers, store.close],
        [HealthCheck(f"the {backend} store at {store.endpoint}", store.ping)],
    )


async def serve(settings: StoreSettings, ready_file: str = "") -> None:
    built = await build(settings, Peers())
    await run(built.servicers, settings, PORT, cleanup=built.close, ready_file=ready_file, checks=built.checks)
