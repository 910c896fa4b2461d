"""The production backends end to end: Redis, tritonserver and the five services as processes.

The stack is :class:`probelog_devstack.stack.DevStack` (what ``deploy/dev-stack.sh`` runs) on the mini
world: IndexModel -> probe runner -> Triton -> logits -> store -> Redis -> change feed ->
ranker -> Search. The embedded process (on-disk store, in-process ONNX) serves the same hub
for comparison.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from probelog.client import ProbeLogClient
from probelog.common.errors import FailedPrecondition, NotFound, ProbeLogError, Unavailable
from probelog.descriptor_store.config import StoreSettings
from probelog.descriptor_store.redis_store import RedisDescriptorStore
from probelog.probe_runner import triton_repo
from probelog_devstack import free_port
from probelog_devstack.stack import DevStack, ServiceProcess, StackSpec
from tests.support import mini, procs

logger = logging.getLogger(__name__)

QUERIES = [*mini.CONCEPTS, "cat", "a blue square"]
GOOD = sorted(mini.MiniWorld.GOOD_MODELS)
#: The store gives up on Redis after this long (then UNAVAILABLE); the kill test outlasts it.
STORE_RETRY_S = 2.0


@pytest.fixture(scope="module")
def stack(mini_world, tmp_path_factory):
    flags = mini.service_flags(mini_world)
    spec = StackSpec(
        hub=mini_world.hub,
        workdir=tmp_path_factory.mktemp("stack"),
        encoder_flags=flags["clip"],
        orchestrator_flags=flags["orchestrator"],
        persistent_redis=True,  # the kill test restarts it: acknowledged writes must survive
        store_flags=["--redis-retry-s", str(STORE_RETRY_S)],
    )
    with DevStack(spec) as started:
        yield started
        codes = started.stop()
    assert all(code == 0 for code in codes.values()), {n: s.output()[-2000:] for n, s in started.services.items()}


@pytest.fixture(scope="module")
def embedded(mini_world, tmp_path_factory):
    """The embedded server on the same hub (its own: the session's is left unindexed)."""
    work = tmp_path_factory.mktemp("embedded-for-stack")
    flags = mini.service_flags(mini_world)
    service = procs.start("embedded", [
        "--embedded", "--store-url", f"file://{work / 'store'}", "--runner-url", f"onnx://{mini_world.hub}",
        *flags["clip"], *flags["orchestrator"],
    ], work)
    yield service
    assert service.stop() == 0, service.output()


def search_json(address: str, query: str) -> list[tuple[float, str, int]]:
    """Every hit as (score, model, logit), in rank order; equal scores (the matcher's and the
    shuffled model's identical logits) in a fixed order, since ties may come in either."""
    result = procs.cli(["search", query, "--top-k", "100", "--json", "--address", address])
    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout).get("hits", [])
    ranked = [(round(float(h.get("score", 0.0)), 4), h["modelId"], int(h.get("logitIndex", 0))) for h in hits]
    assert [s for s, _, _ in ranked] == sorted(s for s, _, _ in ranked)
    return sorted(ranked)


async def stored_model_ids(stack: DevStack, ps_id: str, *, descriptors: bool = False) -> list[str]:
    """Straight from Redis (not through the services); every record fully decodable."""
    store = RedisDescriptorStore.from_settings(StoreSettings(store_url=stack.redis.url))
    await store.open()
    try:
        infos, _ = await store.list_models(ps_id, page_size=1000)
        for info in infos:
            stored = await store.get_model(ps_id, info.model_id, include_descriptors=descriptors)
            assert stored.info.model_id == info.model_id
        return [i.model_id for i in infos]
    finally:
        await store.close()


async def test_index_model_through_triton_and_redis_then_search(stack):
    result = procs.cli(["index", "--all", "--quiet", "--address", stack.address])
    assert result.returncode == 1, result.stderr  # the two models that do not fit are reported
    assert f"indexed {len(GOOD)} of {len(GOOD) + 2}" in result.stderr
    assert "bad-output: FAILED_PRECONDITION" in result.stderr
    async with ProbeLogClient(stack.address) as client:
        probe_sets = await client.probe_sets()
        ps_id = probe_sets.default_probe_set_id
        with pytest.raises(FailedPrecondition, match="dims"):
            await client.index("bad-output")
        with pytest.raises(NotFound):
            await client.get_model("bad-output")
        response = await client.index("matcher")  # re-indexing is idempotent
        assert response.searchable and response.images_per_second > 0
        hits = (await client.search("pizza", top_k=2)).hits
    j = mini.CONCEPTS.index("pizza")
    assert {(h.model_id, h.logit_index) for h in hits} == {("matcher", j), ("shuffled", mini.SHUFFLE.index(j))}
    assert await stored_model_ids(stack, ps_id, descriptors=True) == GOOD  # nothing of the refused models


async def test_same_ranking_as_embedded_mode(stack, embedded):
    procs.cli(["index", "--all", "--quiet", "--address", embedded.address])
    for query in QUERIES:
        assert search_json(stack.address, query) == search_json(embedded.address, query), query


async def test_restarted_ranker_loads_the_current_state(stack):
    before = {q: search_json(stack.address, q) for q in QUERIES}
    stack.services["ranker"].restart()
    assert {q: search_json(stack.address, q) for q in QUERIES} == before


async def test_triton_stopped_is_unavailable_naming_it_and_recovers(stack):
    async with ProbeLogClient(stack.address) as client:
        stack.triton.stop()
        try:
            with pytest.raises(Unavailable, match=f"triton at {stack.triton.address}"):
                await client.index("random-0")
        finally:
            stack.triton.restart()
        for _ in range(30):
            try:
                response = await client.index("random-0")
                break
            except Unavailable:
                await asyncio.sleep(0.5)
        else:
            pytest.fail("indexing did not recover after tritonserver came back")
        assert response.searchable


async def test_redis_killed_and_restarted_during_indexing(stack):
    redis = stack.redis
    async with ProbeLogClient(stack.address) as client:
        ps_id = (await client.probe_sets()).default_probe_set_id
        expected = {q: search_json(stack.address, q) for q in QUERIES}
        outcomes: list[tuple[str, object]] = []

        async def job() -> None:
            for name in GOOD:  # re-index everything, one model after the other
                try:
                    outcomes.append((name, await client.index(name)))
                except ProbeLogError as exc:
                    outcomes.append((name, exc))

        running = asyncio.create_task(job())
        while not outcomes and not running.done():
            await asyncio.sleep(0.05)
        redis.kill()  # SIGKILL mid-job: no chance to finish anything in flight
        await asyncio.sleep(STORE_RETRY_S + 1.0)  # long enough for the store to give up on a write
        await asyncio.to_thread(redis.restart)
        await running

        logger.info("outcomes: %s", [(n, type(o).__name__) for n, o in outcomes])
        # Every model got a clear status: indexed, or UNAVAILABLE naming Redis.
        assert [name for name, _ in outcomes] == GOOD
        failed = [name for name, outcome in outcomes if isinstance(outcome, ProbeLogError)]
        for name, outcome in outcomes:
            if isinstance(outcome, ProbeLogError):
                assert isinstance(outcome, Unavailable), (name, outcome)
                assert f"redis at 127.0.0.1:{redis.port}" in str(outcome), (name, outcome)
        # No acknowledged model is lost, and each one is there as acknowledged, whole.
        assert await stored_model_ids(stack, ps_id, descriptors=True) == GOOD
        for name, outcome in outcomes:
            if not isinstance(outcome, ProbeLogError):
                stored = await client.get_model(name)
                assert stored.indexed_at == outcome.model.indexed_at, name
        # The job resumes: what failed is indexed now.
        for name in failed:
            assert (await client.index(name)).searchable
    assert {q: search_json(stack.address, q) for q in QUERIES} == expected


async def test_auto_index_picks_up_a_model_dropped_into_the_repository(stack, mini_world):
    flags = mini.service_flags(mini_world)
    store, runner = stack.services["descriptor-store"], stack.services["probe-runner"]
    encoder, ranker = stack.services["clip-encoder"], stack.services["ranker"]
    auto = ServiceProcess("orchestrator-auto", [
        "orchestrator", *flags["orchestrator"], "--store-address", store.address,
        "--runner-address", runner.address, "--encoder-address", encoder.address,
        "--ranker-addresses", ranker.address, "--auto-index", "--auto-index-interval-s", "0.5",
    ], free_port(), stack.spec.workdir)
    auto.launch()
    try:
        auto.wait_ready()
        triton_repo.write_model(
            "dropped", mini_world.hub / "matcher" / "config.pbtxt",
            [("1", mini_world.hub / "matcher" / "1" / "model.onnx")], stack.repository, backend="python",
        )
        async with ProbeLogClient(auto.address) as client:
            deadline = time.monotonic() + 300
            while "dropped" not in {m.model_id for m in await client.models()}:
                assert time.monotonic() < deadline, auto.output()[-3000:]
                await asyncio.sleep(0.5)
            hits = (await client.search("fire truck", top_k=3, include=["dropped"])).hits
        assert (hits[0].model_id, hits[0].logit_index) == ("dropped", mini.CONCEPTS.index("fire truck"))
    finally:
        assert auto.stop() == 0, auto.output()[-3000:]
    log = auto.output()
    assert log.count("bad-output cannot be indexed") == 1, log[-3000:]  # tried once, not every tick
