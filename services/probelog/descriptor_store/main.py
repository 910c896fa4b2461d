"""Composition root of the descriptor store."""

from __future__ import annotations

from probelog.common.errors import FailedPrecondition
from probelog.common.ports import DescriptorStore
from probelog.common.runtime import run
from probelog.descriptor_store.config import PORT, StoreSettings
from probelog.descriptor_store.file_store import FileDescriptorStore
from probelog.descriptor_store.servicer import DescriptorStoreServicer


async def open_store(settings: StoreSettings) -> tuple[DescriptorStore, str]:
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


async def serve(settings: StoreSettings, ready_file: str = "") -> None:
    store, backend = await open_store(settings)
    await run([DescriptorStoreServicer(store, backend)], settings, PORT, cleanup=store.close, ready_file=ready_file)
