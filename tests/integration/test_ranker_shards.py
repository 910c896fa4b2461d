"""Three ranker shard processes and one unsharded ranker over the same descriptor store (on a
real Redis, 16 partitions): the merged shards answer exactly like the single ranker (so do task and similar-logit searches, which
the orchestrator assigns from the shards' candidates); a killed shard is flagged, never a gap."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import pytest_asyncio

from probelog.common.errors import Unavailable
from probelog.common.server import create_channel
from probelog.core import calibration_offsets, kernels, logit_entries, zscore
from probelog.descriptor_store.client import DescriptorStoreClient
from probelog.descriptor_store.redis_store import PARTITIONS
from probelog.orchestrator.search import SearchEngine, SimilarQuery, TaskQuery
from probelog.ranker.client import RankerClient
from probelog.ranker.ranker import owned_partitions, shard_of
from probelog.ranker.sharded import ShardedRanker
from probelog.v1 import ranker_pb2, ranker_pb2_grpc, types_pb2
from tests.support import procs
from tests.support.backends import redis_for_tests

N_PROBES, R, K, N_SHARDS = 160, 10, 3, 3


def model(rng, ps_id, model_id, background, n_logits=None, logits=None):
    if logits is None:
        logits = rng.normal(size=(n_logits or int(rng.integers(1, 7)), N_PROBES))
    entries = logit_entries(logits, R)
    info = types_pb2.ModelInfo(model_id=model_id, probe_set_id=ps_id, n_logits=entries.n_logits, r=R)
    return info, entries, calibration_offsets(entries, background, K), logits


async def wait_applied(clients, store, timeout=60.0):
    """Until every client (a ranker, or shards together) applied every change the store has
    made, in every partition."""
    target = await store.current_sequences()

    async def one(client):
        while not all(a >= t for a, t in zip(await client.applied_sequences(), target, strict=True)):
            await asyncio.sleep(0.05)

    await asyncio.wait_for(asyncio.gather(*(one(c) for c in clients)), timeout)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_for_tests(tmp_path_factory.mktemp("redis")) as handle:
        yield handle.url


@pytest_asyncio.fixture(scope="module")
async def cluster(tmp_path_factory, redis_url):
    work = tmp_path_factory.mktemp("shards")
    # Compile the kernels once here so that four ranker processes load them from numba's cache.
    kernels.warm_up()
    rng = np.random.default_rng(0)
    started: list[procs.Service] = []
    clients = []
    try:
        store = procs.start("store", ["descriptor-store", "--store-url", redis_url], work)
        started.append(store)
        store_client = DescriptorStoreClient(create_channel(store.address), store.address)
        clients.append(store_client)
        probe_set, _ = await store_client.put_probe_set(
            "shard-test", rng.integers(0, 256, (N_PROBES, 8, 8, 3), dtype=np.uint8)
        )
        ps_id = probe_set.probe_set_id
        background = zscore(rng.normal(size=(15, N_PROBES)))
        ids = [f"hub/model-{i:03d}" for i in range(90)]
        for model_id in ids:
            info, entries, offsets, logits = model(rng, ps_id, model_id, background)
            await store_client.put_model(info, entries, offsets)
            if model_id.endswith(("0", "5")):
                # A re-upload under another id: equal scores across (probably) different shards.
                twin, entries, offsets, _ = model(rng, ps_id, model_id + "-copy", background, logits=logits)
                await store_client.put_model(twin, entries, offsets)
        shards = [
            procs.start(f"shard{i}", ["ranker", "--store-address", store.address,
                                      "--shard-index", str(i), "--shard-count", str(N_SHARDS)], work)
            for i in range(N_SHARDS)
        ]
        started.extend(shards)
        single = procs.start("single", ["ranker", "--store-address", store.address], work)
        started.append(single)
        shard_clients = [RankerClient(create_channel(s.address), s.address) for s in shards]
        single_client = RankerClient(create_channel(single.address), single.address)
        clients.extend([*shard_clients, single_client])
        await wait_applied([ShardedRanker(shard_clients), single_client], store_client)
        yield {
            "ps_id": ps_id, "store": store_client, "background": background, "rng": rng,
            "shards": shards, "shard_clients": shard_clients, "single": single_client,
        }
    finally:
        for client in clients:
            await client.close()
        codes = {s.name: s.stop() for s in reversed(started)}
    assert all(code in (0, -9) for code in codes.values()), codes


def listing(result):
    return [[(h.model_id, h.logit_index, h.score, h.distance, h.rank) for h in per] for per in result.hits]


async def compare_random_queries(cluster, n_queries, seed):
    rng = np.random.default_rng(seed)
    sharded = ShardedRanker(cluster["shard_clients"])
    infos, _ = await cluster["store"].list_models(cluster["ps_id"], page_size=1000)
    ids = [i.model_id for i in infos]
    for trial in range(n_queries):
        options = {
            "one_hit_per_model": bool(rng.integers(2)),
            "include": list(rng.choice(ids, 20, replace=False)) if trial % 5 == 3 else [],
            "exclude": list(rng.choice(ids, 20, replace=False)) if trial % 5 == 4 else [],
        }
        top_k = int(rng.choice([1, 5, 10, 50, 1000]))
        queries = rng.normal(size=(int(rng.integers(1, 4)), N_PROBES)).astype(np.float32)
        want = await cluster["single"].rank(cluster["ps_id"], queries, top_k, **options)
        got = await sharded.rank(cluster["ps_id"], queries, top_k, **options)
        assert listing(got) == listing(want), (trial, options, top_k)
        assert (got.n_logits_searched, got.n_models_searched) == (want.n_logits_searched, want.n_models_searched)
        assert not got.partial and got.shards_answered == got.shards_total == N_SHARDS
    return ids


async def test_three_shards_merge_into_exactly_one_rankers_answers(cluster):
    ids = await compare_random_queries(cluster, 60, seed=1)
    # Each shard loaded exactly the models of its partitions.
    owned = []
    for i, shard in enumerate(cluster["shards"]):
        async with create_channel(shard.address) as channel:
            stats = await ranker_pb2_grpc.RankerServiceStub(channel).GetIndexStats(
                ranker_pb2.GetIndexStatsRequest(probe_set_id=cluster["ps_id"])
            )
        assert (stats.shard_index, stats.shard_count) == (i, N_SHARDS)
        assert list(stats.partitions) == owned_partitions(i, N_SHARDS, PARTITIONS) == list(range(i, PARTITIONS, N_SHARDS))
        owned.append(stats.n_models)
        assert stats.n_models == sum(shard_of(m, N_SHARDS, PARTITIONS) == i for m in ids) > 0
    assert sum(owned) == len(ids)


async def test_models_indexed_or_deleted_later_reach_their_shard(cluster):
    store, rng = cluster["store"], cluster["rng"]
    info, entries, offsets, _ = model(rng, cluster["ps_id"], "late/arrival", cluster["background"], n_logits=4)
    await store.put_model(info, entries, offsets)
    await store.delete_model(cluster["ps_id"], "hub/model-007")
    await wait_applied([ShardedRanker(cluster["shard_clients"]), cluster["single"]], store)
    await compare_random_queries(cluster, 15, seed=2)
    found = await ShardedRanker(cluster["shard_clients"]).rank(
        cluster["ps_id"], np.random.default_rng(3).normal(size=(1, N_PROBES)).astype(np.float32), 5,
        include=["late/arrival", "hub/model-007"],
    )
    assert {h.model_id for h in found.hits[0]} == {"late/arrival"}


class FixedEncoder:
    """Concept "i" is descriptor i: the task path's encoder stand-in, so that the comparison below
    is of the ranker shards and the orchestrator's assignment alone."""

    def __init__(self, descriptors: np.ndarray) -> None:
        self.descriptors = descriptors

    async def encoder_id(self, *, timeout=None) -> str:
        return "fixed"

    async def compute_descriptors(self, probe_set_id, concepts, prompt_templates=(), *, timeout=None):
        return self.descriptors[[int(c) for c in concepts]]


def matches(result):
    return [
        (m.model_id, m.score, m.coverage, [(a.covered, a.logit_index, a.concept_rank) for a in m.assignments])
        for m in result.models
    ]


async def test_task_and_similar_searches_assign_over_shards_as_over_one_ranker(cluster):
    # Shards return each concept's candidates, the orchestrator assigns: the same models, scores
    # and assignments as over one ranker.
    encoder = FixedEncoder(np.random.default_rng(5).normal(size=(12, N_PROBES)).astype(np.float32))
    engines = [
        SearchEngine(runner=None, encoder=encoder, store=cluster["store"], ranker=ranker, background=["x"])
        for ranker in (cluster["single"], ShardedRanker(cluster["shard_clients"]))
    ]
    for concepts, min_coverage, depth in (("0", "1"), 2, 50), (tuple(map(str, range(12))), 1, 20), (("3", "4", "5"), 2, 0):
        query = TaskQuery(concepts=concepts, min_coverage=min_coverage, top_k=20, depth=depth)
        single, sharded = [await e.task_search(query) for e in engines]
        assert single.models and matches(sharded) == matches(single)
        assert sharded.n_logits_searched == single.n_logits_searched
    for logit_index in (0, None):
        query = SimilarQuery(model_id="hub/model-010", logit_index=logit_index, top_k=15)
        single, sharded = [await e.similar_logits(query) for e in engines]
        assert [(h.model_id, h.logit_index, h.score, h.rank) for h in sharded.hits] == [
            (h.model_id, h.logit_index, h.score, h.rank) for h in single.hits
        ]
        assert matches(sharded) == matches(single)
        assert (single.hits or single.models) and "hub/model-010" not in {h.model_id for h in single.models}


async def test_a_killed_shard_is_flagged_partial_or_unavailable(cluster):
    victim = cluster["shards"][1]
    victim.proc.kill()
    victim.proc.wait()
    queries = np.random.default_rng(4).normal(size=(2, N_PROBES)).astype(np.float32)
    partial = await ShardedRanker(cluster["shard_clients"], allow_partial=True).rank(
        cluster["ps_id"], queries, 10, timeout=10
    )
    assert partial.partial and (partial.shards_answered, partial.shards_total) == (2, N_SHARDS)
    assert any(victim.address in m for m in partial.missing_shards)
    assert all(shard_of(h.model_id, N_SHARDS, PARTITIONS) != 1 for per in partial.hits for h in per)
    # The partial answer is exact for the models the live shards hold.
    dead = [i.model_id for i in (await cluster["store"].list_models(cluster["ps_id"], page_size=1000))[0]
            if shard_of(i.model_id, N_SHARDS, PARTITIONS) == 1]
    want = await cluster["single"].rank(cluster["ps_id"], queries, 10, exclude=dead)
    assert listing(partial) == listing(want)
    with pytest.raises(Unavailable, match=victim.address):
        await ShardedRanker(cluster["shard_clients"]).rank(cluster["ps_id"], queries, 10, timeout=10)
