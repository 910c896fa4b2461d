"""The Redis descriptor store on a real 3-master Redis Cluster (redis-server in cluster mode on
loopback, joined by ``redis-cli --cluster create``): each model's keys in one slot with its
partition's listing and change stream, partitions spread over the masters, a ranker following
every partition, and a master killed while models are being indexed. The contract suite runs on
the cluster too (test_store_contract.py)."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import numpy as np
import pytest

from probelog.common.errors import NotFound
from probelog.common.ids import hash_range_of
from probelog.common.ports import ChangeKind
from probelog.common.server import create_server
from probelog.descriptor_store.client import DescriptorStoreClient
from probelog.descriptor_store.config import StoreSettings
from probelog.descriptor_store.redis_store import PARTITIONS, RedisDescriptorStore
from probelog.descriptor_store.servicer import DescriptorStoreServicer
from probelog.v1 import descriptor_store_pb2 as pb
from probelog.v1 import descriptor_store_pb2_grpc as pb_grpc
from probelog_devstack import redis_server
from tests.support import stores


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    servers = redis_server.start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    yield servers
    servers.stop()


async def _cluster_store(url: str, prefix: str = "", **settings) -> RedisDescriptorStore:
    store = RedisDescriptorStore.from_settings(StoreSettings(
        store_url=url, redis_cluster=True, redis_key_prefix=prefix or "t" + uuid.uuid4().hex[:10], **settings,
    ))
    await store.open()
    return store


async def test_a_models_keys_share_a_slot_and_partitions_spread_over_the_masters(cluster):
    from probelog.ranker.ranker import Ranker

    store = await _cluster_store(cluster.url)
    raw = store._redis
    ranker = None
    try:
        ps, _ = await store.put_probe_set("probes", stores.images())
        ps_id = ps.probe_set_id
        ids = [f"hub/model-{i:02d}" for i in range(40)]
        for i, model_id in enumerate(ids[:20]):
            await store.put_model(*stores.model(ps_id, model_id, seed=i))
        for model_id in ids[:20]:
            partition = hash_range_of(model_id, PARTITIONS)
            keys = [store._model_key(ps_id, model_id), store._models_key(ps_id, partition), store._changes_key(partition)]
            slots = {await raw.execute_command("CLUSTER KEYSLOT", key) for key in keys}
            assert len(slots) == 1, (model_id, slots)
        # The partitions' change streams live on every master, not on one.
        owners = {raw.get_node_from_key(store._changes_key(p)).port for p in range(PARTITIONS)}
        assert owners == {m.port for m in cluster.masters}
        # A ranker loads from every partition, then follows them all.
        ranker = Ranker(store, values_dtype=np.float32)
        await ranker.start()
        assert len(await ranker.applied_sequences()) == PARTITIONS
        assert sorted(ranker.indexes[ps_id].model_ids()) == ids[:20]
        for i, model_id in enumerate(ids[20:], start=20):
            sequence = await store.put_model(*stores.model(ps_id, model_id, seed=i))
            assert await ranker.wait_applied(model_id, sequence, timeout=30)
        sequence = await store.delete_model(ps_id, ids[0])
        assert await ranker.wait_applied(ids[0], sequence, timeout=30)
        assert sorted(ranker.indexes[ps_id].model_ids()) == ids[1:]
        assert await ranker.applied_sequences() == await store.current_sequences()
        assert sum(await store.current_sequences()) == 41
    finally:
        if ranker is not None:
            await ranker.stop()
        await store.close()


async def test_the_store_service_serves_the_partitioned_feed_over_grpc(cluster):
    store = await _cluster_store(cluster.url)
    server = await create_server([DescriptorStoreServicer(store, "redis")], "127.0.0.1:0")
    address = f"127.0.0.1:{server.port}"
    client = DescriptorStoreClient(grpc.aio.insecure_channel(address), address)
    try:
        ps, _ = await client.put_probe_set("probes", stores.images())
        sequence = await client.put_model(*stores.model(ps.probe_set_id, "over/grpc"))
        partition = hash_range_of("over/grpc", PARTITIONS)
        sequences = await client.current_sequences()
        assert len(sequences) == PARTITIONS and sequences[partition] == sequence == 1 and sum(sequences) == 1
        feed = client.watch([0] * PARTITIONS)
        change = await asyncio.wait_for(anext(feed), 30)
        assert (change.partition, change.sequence, change.model_id) == (partition, 1, "over/grpc")
        await feed.aclose()
        # Positions for another number of partitions: a clear INVALID_ARGUMENT, no trace.
        async with grpc.aio.insecure_channel(address) as channel:
            call = pb_grpc.DescriptorStoreServiceStub(channel).WatchChanges(pb.WatchChangesRequest(after_sequences=[0, 0]))
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await anext(aiter(call))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details() == (
            f"the change feed on redis at {store.endpoint} has {PARTITIONS} partitions, got 2 positions"
        )
    finally:
        await client.close()
        await server.stop(0)
        await store.close()


async def test_a_master_killed_while_indexing_loses_no_acknowledged_model_and_shows_no_half_write(tmp_path):
    # Persistent masters (AOF fsynced on every write). Writers index models while one master is
    # killed with SIGKILL and started again: writes to its slots are retried until it is back.
    servers = redis_server.start_cluster(tmp_path / "cluster", persistent=True)
    store = await _cluster_store(servers.url, redis_retry_s=60.0)
    try:
        ps, _ = await store.put_probe_set("probes", stores.images())
        ps_id = ps.probe_set_id
        acknowledged: dict[str, int] = {}
        first_ten = asyncio.Event()

        async def writer(w: int) -> None:
            for i in range(15):
                model_id = f"w{w}/model-{i:02d}"
                acknowledged[model_id] = await store.put_model(*stores.model(ps_id, model_id, seed=w * 100 + i))
                if len(acknowledged) >= 10:
                    first_ten.set()

        writers = asyncio.gather(*(writer(w) for w in range(4)))
        await asyncio.wait_for(first_ten.wait(), 60)
        victim = servers.masters[1]
        victim.kill()
        await asyncio.sleep(0.5)
        assert len(acknowledged) < 60  # writers wait on the dead master's slots
        await asyncio.to_thread(victim.restart)
        await asyncio.wait_for(writers, 120)
        await asyncio.to_thread(redis_server.wait_cluster_ok, servers)
        assert len(acknowledged) == 60

        # Every acknowledged model is there, listed, with its change in its partition's feed.
        listed = [i.model_id async for page in _pages(store, ps_id) for i in page]
        assert listed == sorted(acknowledged)
        for model_id in acknowledged:
            assert (await store.get_model(ps_id, model_id)).info.model_id == model_id
        feed: dict[str, list[int]] = {}
        async for change in store.watch():
            assert change.kind is ChangeKind.PUT
            feed.setdefault(change.model_id, []).append(change.sequence)
            if sum(map(len, feed.values())) == sum(await store.current_sequences()):
                break
        # A write retried after a lost reply may have landed twice (a second, identical change);
        # each acknowledged sequence is in the feed, and nothing else is.
        assert set(feed) == set(acknowledged)
        assert all(acknowledged[m] in sequences for m, sequences in feed.items())
        # Nothing half-written: every record has its listing entry and every entry its record.
        raw = store._redis
        for partition in range(PARTITIONS):
            members = {m.decode() for m in await raw.zrange(store._models_key(ps_id, partition), 0, -1)}
            assert all(hash_range_of(m, PARTITIONS) == partition for m in members)
            for model_id in members:
                assert await raw.exists(store._model_key(ps_id, model_id))
        with pytest.raises(NotFound):
            await store.get_model(ps_id, "never-written")
    finally:
        await store.close()
        servers.stop()


async def _pages(store, ps_id):
    token = ""
    while True:
        infos, token = await store.list_models(ps_id, page_size=7, page_token=token)
        yield infos
        if not token:
            return
