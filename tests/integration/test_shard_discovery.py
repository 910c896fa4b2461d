"""Ranker shards found by name, as the orchestrator finds a StatefulSet's pods through its
headless Service. Two shard processes take their ordinals from their host names
(HOSTNAME=probelog-ranker-<i>, no --shard-index), listen on one port at addresses of their own
(127.0.0.2, 127.0.0.3) and are named in a DNS server the test runs (tests/support/dns.py: gRPC
asks it directly through ``dns://127.0.0.1:<port>/`` targets). Each loads only its partitions of
a real Redis store; the orchestrator's ranker, built from ranker_dns and ranker_shards, answers
exactly as one unsharded ranker does; a shard killed and started again at another address under
the same name is found again, and reloads its partitions with what was written meanwhile."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import pytest_asyncio

from probelog.common.server import create_channel
from probelog.descriptor_store.client import DescriptorStoreClient
from probelog.descriptor_store.redis_store import PARTITIONS
from probelog.orchestrator.config import OrchestratorSettings
from probelog.orchestrator.main import clients
from probelog.orchestrator.search import SearchEngine, TaskQuery
from probelog.ranker.client import RankerClient
from probelog.ranker.ranker import owned_partitions, shard_of
from probelog.ranker.sharded import ShardedRanker
from probelog.v1 import ranker_pb2, ranker_pb2_grpc
from probelog_devstack import free_port
from tests.integration.test_ranker_shards import FixedEncoder, listing, matches, wait_applied
from tests.support import procs, stores
from tests.support.backends import redis_for_tests
from tests.support.dns import DnsServer

N_SHARDS = 2
NAME = "probelog-ranker-{i}.probelog-ranker-headless.search.test"


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_for_tests(tmp_path_factory.mktemp("redis")) as handle:
        yield handle.url


def start_shard(work, store, i, host, port):
    return procs.start(
        f"shard{i}-{host}", ["ranker", "--store-address", store.address, "--shard-count", str(N_SHARDS)], work,
        env=procs.test_env(HOSTNAME=f"probelog-ranker-{i}"), host=host, port=port,
    )


async def index_stats(address, ps_id):
    async with create_channel(address) as channel:
        return await ranker_pb2_grpc.RankerServiceStub(channel).GetIndexStats(
            ranker_pb2.GetIndexStatsRequest(probe_set_id=ps_id)
        )


@pytest_asyncio.fixture(scope="module")
async def world(tmp_path_factory, redis_url):
    work = tmp_path_factory.mktemp("discovery")
    dns = DnsServer()
    started: list[procs.Service] = []
    closers = []
    try:
        store = procs.start("store", ["descriptor-store", "--store-url", redis_url], work)
        started.append(store)
        store_client = DescriptorStoreClient(create_channel(store.address), store.address)
        closers.append(store_client.close)
        probe_set, _ = await store_client.put_probe_set("discovery", stores.images())
        ps_id = probe_set.probe_set_id
        for i in range(60):
            await store_client.put_model(*stores.model(ps_id, f"hub/model-{i:02d}", n_logits=1 + i % 4, seed=i))
        port = free_port("127.0.0.2")
        shards = []
        for i in range(N_SHARDS):
            shards.append(start_shard(work, store, i, f"127.0.0.{2 + i}", port))
            dns.records[NAME.replace("{i}", str(i))] = shards[-1].host
        started.extend(shards)
        single = procs.start("single", ["ranker", "--store-address", store.address], work)
        started.append(single)
        single_client = RankerClient(create_channel(single.address), single.address)
        closers.append(single_client.close)
        # The orchestrator's peers, as it builds them from its settings.
        peers = clients(OrchestratorSettings(
            store_address=store.address, ranker_dns=dns.target(NAME, port), ranker_shards=N_SHARDS,
            allow_partial=True,
        ))
        closers.extend(peers.closers)
        assert isinstance(peers.ranker, ShardedRanker)
        await wait_applied([peers.ranker, single_client], store_client)
        yield {
            "work": work, "dns": dns, "port": port, "store": store, "store_client": store_client,
            "ps_id": ps_id, "shards": shards, "single": single_client, "ranker": peers.ranker,
            "started": started,
        }
    finally:
        for close in closers:
            await close()
        codes = {s.name: s.stop() for s in reversed(started)}
        dns.close()
    assert all(code in (0, -9) for code in codes.values()), codes


async def same_answers(world, seed):
    rng = np.random.default_rng(seed)
    for trial in range(10):
        queries = rng.normal(size=(int(rng.integers(1, 4)), stores.N_PROBES)).astype(np.float32)
        top_k = int(rng.choice([1, 10, 1000]))
        options = {"one_hit_per_model": bool(trial % 2)}
        want = await world["single"].rank(world["ps_id"], queries, top_k, **options)
        got = await world["ranker"].rank(world["ps_id"], queries, top_k, **options)
        assert listing(got) == listing(want), (trial, top_k)
        assert not got.partial and got.shards_answered == N_SHARDS
    # A task search through the orchestrator's engine: the same models and assignments.
    encoder = FixedEncoder(rng.normal(size=(6, stores.N_PROBES)).astype(np.float32))
    query = TaskQuery(concepts=("0", "1", "2"), min_coverage=2, top_k=10, depth=20)
    single, sharded = [
        await SearchEngine(runner=None, encoder=encoder, store=world["store_client"], ranker=r, background=["x"])
        .task_search(query)
        for r in (world["single"], world["ranker"])
    ]
    assert single.models and matches(sharded) == matches(single)


async def check_partitions(world, shard, i):
    """The shard at ``shard.address`` is shard i and holds exactly its partitions' models."""
    stats = await index_stats(shard.address, world["ps_id"])
    infos, _ = await world["store_client"].list_models(world["ps_id"], page_size=1000)
    mine = [m.model_id for m in infos if shard_of(m.model_id, N_SHARDS, PARTITIONS) == i]
    assert (stats.shard_index, stats.shard_count) == (i, N_SHARDS)
    assert list(stats.partitions) == owned_partitions(i, N_SHARDS, PARTITIONS)
    assert stats.n_models == len(mine) > 0
    return mine


async def test_shards_found_by_name_answer_as_one_ranker(world):
    owned = [await check_partitions(world, shard, i) for i, shard in enumerate(world["shards"])]
    assert sum(map(len, owned)) == 60
    await same_answers(world, seed=1)


async def test_a_restarted_shard_is_found_again_and_reloads_its_partitions(world):
    victim = world["shards"][1]
    victim.proc.kill()
    victim.proc.wait()
    # Written while shard 1 is down, into one of its partitions.
    ps_id, store = world["ps_id"], world["store_client"]
    late = next(f"late/model-{n}" for n in range(100) if shard_of(f"late/model-{n}", N_SHARDS, PARTITIONS) == 1)
    await store.put_model(*stores.model(ps_id, late, n_logits=3, seed=99))
    queries = np.random.default_rng(2).normal(size=(1, stores.N_PROBES)).astype(np.float32)
    partial = await world["ranker"].rank(ps_id, queries, 5, timeout=10)
    assert partial.partial and partial.shards_answered == 1
    # The pod comes back with a new address under its old name.
    world["dns"].records[NAME.replace("{i}", "1")] = "127.0.0.4"
    reborn = start_shard(world["work"], world["store"], 1, "127.0.0.4", world["port"])
    world["started"].append(reborn)

    async def rejoined():
        while (await world["ranker"].rank(ps_id, queries, 5, timeout=10)).partial:
            await asyncio.sleep(0.2)

    await asyncio.wait_for(rejoined(), 120)
    await wait_applied([world["ranker"], world["single"]], store)
    assert late in await check_partitions(world, reborn, 1)
    found = await world["ranker"].rank(ps_id, queries, 5, include=[late])
    assert [h.model_id for h in found.hits[0]] == [late] * 3
    await same_answers(world, seed=3)


def test_more_shards_than_partitions_is_one_clear_line(world):
    result = procs.cli(["serve", "ranker", "--store-address", world["store"].address, "--shard-index", "0",
                        "--shard-count", "17", "--host", "127.0.0.1", "--port", "0"], timeout=120)
    assert result.returncode != 0
    assert "shard count 17 is more than the store's 16 partitions" in result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
