"""Writes that survive their callers: a storm of IndexModel and DeleteModel calls cut short by
deadlines, on the file store and on Redis, through a real gRPC server.

Afterwards every model id is either wholly there or wholly gone: listed iff GetModel finds it
iff Search returns it, and the change feed's sequences increase strictly, without duplicates.
The storm is bounded in time (STORM_S) and in workers.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter

import grpc
import pytest
import pytest_asyncio

from probelog.common.server import create_server
from probelog.embedded import EmbeddedSettings, build
from probelog.v1 import search_pb2
from probelog.v1 import search_pb2_grpc as pb_grpc
from tests.support.backends import redis_for_tests

WORKERS = 4
IDS = [f"storm-{i:02d}" for i in range(20)]
STORM_S = 8.0
#: Deadlines of IndexModel, as fractions of how long one uncut call takes here (so calls are cut
#: at every stage, the store write included, however fast this machine is), and of DeleteModel
#: in seconds (cut mostly mid-way).
INDEX_DEADLINE = (0.3, 2.0)
DELETE_DEADLINE_S = (0.001, 0.010)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_for_tests(tmp_path_factory.mktemp("redis-storm")) as handle:
        yield handle.url


@pytest_asyncio.fixture(params=["file", "redis"])
async def served(request, mini_world, tmp_path, redis_url):
    overrides = mini_world.embedded_settings(tmp_path / "store")
    if request.param == "redis":
        overrides["store_url"] = redis_url
        overrides["redis_key_prefix"] = f"storm{random.randrange(10**9)}"
    embedded = await build(EmbeddedSettings(**overrides))
    server = await create_server(embedded.servicers, "127.0.0.1:0")
    await server.set_serving()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    yield pb_grpc.SearchServiceStub(channel), embedded
    await channel.close()
    await server.stop(0)
    await embedded.close()


async def storm(stub: pb_grpc.SearchServiceStub, seed: int, index_s: float) -> Counter[str]:
    rng = random.Random(seed)
    outcomes: Counter[str] = Counter()
    until = time.monotonic() + STORM_S
    while time.monotonic() < until:
        model_id = rng.choice(IDS)
        try:
            if rng.random() < 0.6:
                await stub.IndexModel(
                    search_pb2.IndexModelRequest(model_name="random-0", model_id=model_id),
                    timeout=index_s * rng.uniform(*INDEX_DEADLINE),
                )
                outcomes["index OK"] += 1
            else:
                await stub.DeleteModel(
                    search_pb2.DeleteModelRequest(model_id=model_id), timeout=rng.uniform(*DELETE_DEADLINE_S)
                )
                outcomes["delete OK"] += 1
        except grpc.aio.AioRpcError as exc:
            outcomes[exc.code().name] += 1
    return outcomes


async def test_a_cancellation_storm_leaves_every_model_whole_or_gone(served):
    stub, embedded = served
    started = time.monotonic()
    await stub.IndexModel(search_pb2.IndexModelRequest(model_name="random-0", model_id=IDS[0]))
    index_s = time.monotonic() - started
    counts = sum(await asyncio.gather(*(storm(stub, seed, index_s) for seed in range(WORKERS))), Counter())
    assert counts["DEADLINE_EXCEEDED"] > 0, counts  # calls were cut short
    assert set(counts) <= {"index OK", "delete OK", "DEADLINE_EXCEEDED", "NOT_FOUND", "CANCELLED"}, counts

    # Let the writes still running finish and the ranker catch up (bounded).
    store, ranker = embedded.store, embedded.ranker
    deadline = time.monotonic() + 30
    while True:
        await asyncio.sleep(0.2)
        last = await store.current_sequences()
        if await ranker.applied_sequences() == last and await store.current_sequences() == last:
            break
        assert time.monotonic() < deadline, "the ranker did not catch up with the store"

    listed = {m.model_id for m in (await stub.ListModels(search_pb2.ListModelsRequest(page_size=1000))).models}
    for model_id in IDS:
        try:
            await stub.GetModel(search_pb2.GetModelRequest(model_id=model_id))
            found = True
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.NOT_FOUND
            found = False
        hits = (await stub.Search(
            search_pb2.SearchRequest(text="pizza", top_k=1, include_model_ids=[model_id])
        )).hits
        assert (model_id in listed) == found == bool(hits), (model_id, model_id in listed, found, len(hits))

    # The change feed: in each partition, strictly increasing sequences, no duplicates, ending at
    # the partition's current one.
    sequences: list[list[int]] = [[] for _ in last]

    async def read_feed() -> None:
        async for change in store.watch():
            sequences[change.partition].append(change.sequence)
            if all((s[-1] if s else 0) >= at for s, at in zip(sequences, last, strict=True)):
                return

    try:
        await asyncio.wait_for(read_feed(), timeout=30)
    except TimeoutError:
        raise AssertionError(f"feed: {sum(map(len, sequences))} changes read, want {last}") from None
    for partition, seen in enumerate(sequences):
        assert seen == sorted(set(seen)), f"duplicate or out-of-order sequences in partition {partition}"
        assert (seen[-1] if seen else 0) == last[partition]


async def test_index_model_that_committed_answers_searchable_false_when_the_ranker_is_down(served, monkeypatch):
    from probelog.common.errors import Unavailable
    from probelog.common.ids import hash_range_of

    stub, embedded = served

    async def down(*, timeout=None):
        raise Unavailable("the ranker at 127.0.0.1:1 is unavailable: connection refused")

    monkeypatch.setattr(embedded.engine.ranker, "applied_sequences", down)
    response = await stub.IndexModel(search_pb2.IndexModelRequest(model_name="random-1", model_id="while-down"))
    assert response.model.model_id == "while-down" and not response.searchable
    # Committed all the same: the store has it, and the ranker serves it once it answers again.
    assert (await stub.GetModel(search_pb2.GetModelRequest(model_id="while-down"))).model.n_logits == 3
    monkeypatch.undo()
    # The ranker follows the store's change feed on its own: once it has applied the write (the
    # latest change of the model's partition), the model is searchable.
    sequences = await embedded.store.current_sequences()
    sequence = sequences[hash_range_of("while-down", len(sequences))]
    assert await embedded.ranker.wait_applied("while-down", sequence, timeout=30)
    hits = (await stub.Search(search_pb2.SearchRequest(text="pizza", include_model_ids=["while-down"]))).hits
    assert hits
