"""RankerService through a real grpc.aio server: answers, status codes, concurrent batching."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from probelog.common.errors import DeadlineExceeded, InvalidArgument, NotFound
from probelog.common.server import create_channel, create_server
from probelog.core import zscore
from probelog.ranker.client import RankerClient
from probelog.ranker.ranker import Ranker
from probelog.ranker.servicer import RankerServicer
from probelog.v1 import ranker_pb2, ranker_pb2_grpc
from tests.unit.ranker.support import N_PROBES, PROBE_SET, hub, index_of, queries


@pytest_asyncio.fixture(scope="module")
async def served():
    index = index_of(hub(seed=5))
    ranker = Ranker.from_indexes({PROBE_SET: index}, batch_window_ms=5)
    server = await create_server([RankerServicer(ranker)], "127.0.0.1:0")
    await server.set_serving()
    address = f"127.0.0.1:{server.port}"
    client = RankerClient(create_channel(address), address)
    yield client, index, ranker, address
    await client.close()
    await server.stop(0)
    await ranker.stop()


def listing(hits):
    return [[(h.model_id, h.logit_index, round(h.score, 5)) for h in per] for per in hits]


async def test_concurrent_rank_calls_match_the_index(served):
    client, index, ranker, _ = served
    qs = queries(11, 16)
    before = ranker.batcher.stats()
    results = await asyncio.gather(*(client.rank(PROBE_SET, qs[i : i + 1], 6) for i in range(16)))
    for i, result in enumerate(results):
        assert listing(result.hits) == listing(index.search(qs[i], 6))
        assert result.n_logits_searched == index.stats().n_logits
        assert (result.shards_answered, result.shards_total, result.partial) == (1, 1, False)
    after = ranker.batcher.stats()
    # Sixteen calls, fewer passes over the index: they were stacked.
    assert after.calls - before.calls == 16 and after.passes - before.passes < 16


async def test_status_codes(served):
    client, _, _, address = served
    with pytest.raises(InvalidArgument, match="top_k") as bad:
        await client.rank(PROBE_SET, queries(1, 1), 10_001)
    assert bad.value.field == "top_k"  # the BadRequest field violation survives the hop
    with pytest.raises(InvalidArgument, match="probes"):
        await client.rank(PROBE_SET, np.zeros((1, N_PROBES + 1), dtype=np.float32) + np.arange(N_PROBES + 1), 3)
    with pytest.raises(InvalidArgument, match="constant"):
        await client.rank(PROBE_SET, np.ones((1, N_PROBES), dtype=np.float32), 3)
    with pytest.raises(NotFound):
        await client.rank("ps-00000000000000bb", queries(1, 1), 3)
    async with grpc.aio.insecure_channel(address) as channel:
        stub = ranker_pb2_grpc.RankerServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.Rank(ranker_pb2.RankRequest(probe_set_id="nope", top_k=3))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        status = rpc_status.from_call(caught.value)
        bad_request = error_details_pb2.BadRequest()
        assert status.details[0].Unpack(bad_request)
        assert [v.field for v in bad_request.field_violations] == ["probe_set_id"]
        stats = await stub.GetIndexStats(ranker_pb2.GetIndexStatsRequest(probe_set_id=PROBE_SET))
        assert stats.n_probes == N_PROBES and stats.index_bytes > 0 and stats.shard_count == 1


async def test_deadline_exceeded_while_waiting_for_a_batch():
    ranker = Ranker.from_indexes({PROBE_SET: index_of(hub())}, batch_window_ms=60_000, max_batch_queries=2)
    # A full batch of two calls first: after it, a call waits for the (long) window, as under
    # concurrent load; a lone call after a lone call would be scored at once.
    assert ranker.batcher is not None
    index = ranker.indexes[PROBE_SET]
    await asyncio.gather(*(ranker.batcher.search(index, zscore(queries(i, 1)), 3) for i in (5, 6)))
    server = await create_server([RankerServicer(ranker)], "127.0.0.1:0")
    await server.set_serving()
    address = f"127.0.0.1:{server.port}"
    client = RankerClient(create_channel(address), address)
    with pytest.raises(DeadlineExceeded):
        await client.rank(PROBE_SET, queries(2, 1), 3, timeout=0.3)
    await client.close()
    await server.stop(0)
    await ranker.stop()
