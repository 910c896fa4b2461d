"""The DescriptorStore contract, on both backends: the on-disk store of embedded mode and Redis
(a real server, and a real 3-master Redis Cluster). Same results, same errors, same change feed. Backend-specific promises (the
Redis key schema, retries, TLS) are in test_redis_store.py."""

from __future__ import annotations

import asyncio
import itertools
import operator
import uuid

import numpy as np
import pytest
import pytest_asyncio

from probelog.common.errors import InvalidArgument, NotFound
from probelog.common.ids import hash_range_of
from probelog.common.ports import ChangeKind, iter_models
from probelog.descriptor_store.config import StoreSettings
from probelog.descriptor_store.file_store import FileDescriptorStore
from probelog.descriptor_store.redis_store import RedisDescriptorStore
from probelog.v1 import types_pb2
from probelog_devstack import redis_server
from tests.support import stores
from tests.support.backends import redis_for_tests


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_for_tests(tmp_path_factory.mktemp("redis")) as handle:
        yield handle.url


@pytest.fixture(scope="module")
def redis_cluster_url(tmp_path_factory):
    cluster = redis_server.start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield cluster.url
    cluster.stop()


@pytest.fixture(params=["file", "redis", "redis-cluster"])
def open_store(request, tmp_path):
    """Opens the backend under test; every call opens the same data again (a restart)."""
    prefix = "t" + uuid.uuid4().hex[:10]
    if request.param != "file":
        cluster = request.param == "redis-cluster"
        url = request.getfixturevalue("redis_cluster_url" if cluster else "redis_url")
        settings = StoreSettings(store_url=url, redis_key_prefix=prefix, redis_cluster=cluster)

    async def open_():
        if request.param == "file":
            store = FileDescriptorStore(tmp_path / "store")
        else:
            store = RedisDescriptorStore.from_settings(settings)
        await store.open()
        return store

    return open_


class Expected:
    """The changes a test makes, numbered per partition of the feed as the store numbers them."""

    def __init__(self, n_partitions: int) -> None:
        self.counts = [0] * n_partitions
        self.changes: list[tuple[int, int, ChangeKind, str]] = []

    def add(self, kind: ChangeKind, model_id: str) -> int:
        partition = hash_range_of(model_id, len(self.counts))
        self.counts[partition] += 1
        self.changes.append((partition, self.counts[partition], kind, model_id))
        return self.counts[partition]


async def expected(store) -> Expected:
    return Expected(len(await store.current_sequences()))


def seen(change) -> tuple[int, int, ChangeKind, str]:
    return change.partition, change.sequence, change.kind, change.model_id


@pytest_asyncio.fixture
async def store(open_store):
    s = await open_store()
    yield s
    await s.close()



async def test_probe_sets_register_once_and_round_trip(store):
    images = stores.images()
    info, created = await store.put_probe_set("probes", images)
    again, created_again = await store.put_probe_set("other name", images)
    assert (created, created_again) == (True, False)
    assert again == info and info.name == "probes" and info.n_probes == stores.N_PROBES
    assert await store.probe_set_info(info.probe_set_id) == info
    got_info, got = await store.get_probe_set(info.probe_set_id)
    assert got_info == info and np.array_equal(got, images)
    assert [p.probe_set_id for p in await store.list_probe_sets()] == [info.probe_set_id]
    with pytest.raises(NotFound):
        await store.probe_set_info("ps-0000000000000000")
    with pytest.raises(InvalidArgument):
        await store.probe_set_info("not-an-id")
    with pytest.raises(InvalidArgument):
        await store.put_probe_set("bad", np.zeros((3, 8, 8), dtype=np.uint8))


async def test_models_put_get_list_delete_with_sequences(store):
    ps, _ = await store.put_probe_set("probes", stores.images())
    ps_id = ps.probe_set_id
    want = await expected(store)
    assert await store.current_sequences() == want.counts
    assert set(want.counts) == {0}
    after_two = []
    for i, model_id in enumerate(["b", "a", "c/with:odd chars", "a"]):
        info, entries, offsets = stores.model(ps_id, model_id, seed=i)
        assert await store.put_model(info, entries, offsets) == want.add(ChangeKind.PUT, model_id)
        if i == 1:
            after_two = list(want.counts)
    assert await store.current_sequences() == want.counts and sum(want.counts) == 4
    stored = await store.get_model(ps_id, "a", include_descriptors=True)
    _, entries, offsets = stores.model(ps_id, "a", seed=3)  # the re-indexed version wins
    assert np.array_equal(stored.entries.top_indices, entries.top_indices)
    assert np.allclose(stored.entries.top_values, entries.top_values)
    assert np.allclose(stored.offsets, offsets)
    assert (await store.get_model(ps_id, "a")).entries is None
    infos, token = await store.list_models(ps_id)
    assert [i.model_id for i in infos] == ["a", "b", "c/with:odd chars"] and token == ""
    assert await store.delete_model(ps_id, "b") == want.add(ChangeKind.DELETE, "b")
    with pytest.raises(NotFound):
        await store.delete_model(ps_id, "b")
    with pytest.raises(NotFound):
        await store.get_model(ps_id, "b")
    with pytest.raises(NotFound):
        await store.get_model("ps-0000000000000000", "a")
    # From the positions after the first two writes: the last three changes, each partition's
    # in order.
    changes = []
    async for change in store.watch(after_two):
        changes.append(seen(change))
        if len(changes) == 3:
            break
    assert sorted(changes) == sorted(want.changes[2:])
    assert [c for c in changes if c[3] == "a"] == [c for c in want.changes[2:] if c[3] == "a"]


async def test_invalid_models_are_refused_and_nothing_is_stored(store):
    ps, _ = await store.put_probe_set("probes", stores.images())
    info, entries, offsets = stores.model(ps.probe_set_id, "m")
    with pytest.raises(InvalidArgument, match="offsets"):
        await store.put_model(info, entries, offsets[:2])
    bad = np.array(offsets)
    bad[0] = np.nan
    with pytest.raises(InvalidArgument, match="non-finite"):
        await store.put_model(info, entries, bad)
    with pytest.raises(InvalidArgument):
        await store.put_model(types_pb2.ModelInfo(model_id="", probe_set_id=ps.probe_set_id, n_logits=3), entries, offsets)
    assert await store.list_models(ps.probe_set_id) == ([], "")
    assert sum(await store.current_sequences()) == 0


async def test_listing_pages_by_cursor(store):
    ps, _ = await store.put_probe_set("probes", stores.images())
    ids = [f"model-{i:02d}" for i in range(23)]
    for i, model_id in enumerate(ids):
        await store.put_model(*stores.model(ps.probe_set_id, model_id, seed=i))
    pages, token = [], ""
    while True:
        infos, token = await store.list_models(ps.probe_set_id, page_size=10, page_token=token)
        pages.append([i.model_id for i in infos])
        if not token:
            break
        # A model added behind the cursor does not shift the pages still to come.
        await store.put_model(*stores.model(ps.probe_set_id, "model-00a"))
    assert [len(p) for p in pages] == [10, 10, 3]
    assert list(itertools.chain(*pages)) == ids


async def test_a_model_of_an_unknown_probe_set_or_the_wrong_size_is_refused(store):
    ps, _ = await store.put_probe_set("probes", stores.images())
    info, entries, offsets = stores.model(ps.probe_set_id, "m")
    info.n_logits = 4
    with pytest.raises(InvalidArgument, match="n_logits"):
        await store.put_model(info, entries, offsets)
    with pytest.raises(NotFound):
        await store.get_model(ps.probe_set_id, "m")
    with pytest.raises(NotFound, match="probe set"):
        await store.put_model(*stores.model("ps-0123456789abcdef", "m"))
    assert sum(await store.current_sequences()) == 0


async def test_iter_models_reads_every_page(store):
    ps, _ = await store.put_probe_set("probes", stores.images())
    ids = [f"m{i}" for i in range(7)]
    for i, model_id in enumerate(ids):
        await store.put_model(*stores.model(ps.probe_set_id, model_id, seed=i))
    pages = [[i.model_id for i in page] async for page in iter_models(store, ps.probe_set_id, page_size=3)]
    assert pages == [ids[:3], ids[3:6], ids[6:]]


async def test_change_feed_catches_up_then_follows(store):
    ps, _ = await store.put_probe_set("probes", stores.images())
    want = await expected(store)
    await store.put_model(*stores.model(ps.probe_set_id, "a"))
    want.add(ChangeKind.PUT, "a")
    await store.delete_model(ps.probe_set_id, "a")
    want.add(ChangeKind.DELETE, "a")
    changes = []

    async def follow():
        async for change in store.watch():
            changes.append(seen(change))
            if len(changes) == 3:
                return

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    await store.put_model(*stores.model(ps.probe_set_id, "b"))
    want.add(ChangeKind.PUT, "b")
    await asyncio.wait_for(task, 10)
    # In order within each partition; partitions' feeds interleave as they come (a stable sort
    # by partition keeps the order each was delivered in).
    by_partition = operator.itemgetter(0)
    assert sorted(changes, key=by_partition) == sorted(want.changes, key=by_partition)


async def test_data_and_sequence_survive_reopening(store, open_store):
    ps, _ = await store.put_probe_set("probes", stores.images())
    want = await expected(store)
    await store.put_model(*stores.model(ps.probe_set_id, "a"))
    want.add(ChangeKind.PUT, "a")
    await store.close()
    reopened = await open_store()
    try:
        assert await reopened.current_sequences() == want.counts
        assert [i.model_id for i in (await reopened.list_models(ps.probe_set_id))[0]] == ["a"]
        assert await reopened.put_model(*stores.model(ps.probe_set_id, "b")) == want.add(ChangeKind.PUT, "b")
    finally:
        await reopened.close()
