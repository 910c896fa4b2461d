"""TaskSearch and SimilarLogits through a real gRPC server running the embedded composition.

The mini world's models are constructed (tests/support/mini.py): ``matcher`` logit j and
``shuffled`` logit SHUFFLE.index(j) respond to the probes exactly as CLIP's similarity to
CONCEPTS[j], so for a task of those concepts the truth is known: both models cover it, each
concept through exactly that logit, at truncated distance zero.
"""

from __future__ import annotations

import grpc
import pytest
import pytest_asyncio
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from probelog.client import ProbeLogClient
from probelog.common.errors import InvalidArgument, NotFound
from probelog.common.server import create_server
from probelog.embedded import EmbeddedSettings, build
from probelog.v1 import clip_encoder_pb2, search_pb2
from probelog.v1 import search_pb2_grpc as pb_grpc
from tests.support import mini

TASK = mini.CONCEPTS[:3]


@pytest_asyncio.fixture(scope="module")
async def served(mini_world, tmp_path_factory):
    settings = EmbeddedSettings(**mini_world.embedded_settings(tmp_path_factory.mktemp("store")))
    embedded = await build(settings)
    server = await create_server(embedded.servicers, "127.0.0.1:0")
    await server.set_serving()
    address = f"127.0.0.1:{server.port}"
    channel = grpc.aio.insecure_channel(address)
    stub = pb_grpc.SearchServiceStub(channel)
    for name in mini.MiniWorld.GOOD_MODELS:
        assert (await stub.IndexModel(search_pb2.IndexModelRequest(model_name=name))).searchable
    yield stub, address
    await channel.close()
    await server.stop(0)
    await embedded.close()


def task(*concepts: str, **fields) -> search_pb2.TaskSearchRequest:
    return search_pb2.TaskSearchRequest(concepts=[search_pb2.TaskConcept(text=c) for c in concepts], **fields)


def truth(model_id: str, concept: str) -> int:
    j = mini.CONCEPTS.index(concept)
    return j if model_id == "matcher" else mini.SHUFFLE.index(j)


async def test_the_constructed_models_cover_the_task_through_the_right_logits(served):
    stub, _ = served
    response = await stub.TaskSearch(task(*TASK, top_k=5))
    assert [m.model_id for m in response.models[:2]] in (["matcher", "shuffled"], ["shuffled", "matcher"])
    for match in response.models:
        assert match.coverage == len(TASK)  # min_coverage defaults to all concepts
        assert [a.concept_index for a in match.assignments] == [0, 1, 2]
        logits = [a.logit_index for a in match.assignments]
        assert len(set(logits)) == len(logits)  # distinct logits
    for match in response.models[:2]:
        for concept, a in zip(TASK, match.assignments, strict=True):
            assert a.covered and a.logit_index == truth(match.model_id, concept)
            assert a.distance == pytest.approx(0.0, abs=1e-2)
            assert a.concept_rank in (1, 2)
        assert match.score == pytest.approx(sum(a.score for a in match.assignments) / len(TASK))
    assert [m.rank for m in response.models] == list(range(1, len(response.models) + 1))
    assert response.n_models_searched == len(mini.MiniWorld.GOOD_MODELS)
    assert response.candidate_depth > 0 and not response.partial


async def test_coverage_filters_and_shared_logits(served):
    stub, _ = served
    # imagematch has one logit: it can cover one concept of a task only, unless shared.
    partial = await stub.TaskSearch(task(*TASK, min_coverage=1, top_k=20))
    assert {m.model_id for m in partial.models} == set(mini.MiniWorld.GOOD_MODELS)
    one = next(m for m in partial.models if m.model_id == "imagematch")
    assert one.coverage == 1 and sum(a.covered for a in one.assignments) == 1
    shared = await stub.TaskSearch(task(*TASK, min_coverage=3, top_k=20, allow_shared_logits=True))
    assert "imagematch" in {m.model_id for m in shared.models}
    only = await stub.TaskSearch(task(*TASK, include_model_ids=["shuffled", "random-0"]))
    assert {m.model_id for m in only.models} <= {"shuffled", "random-0"}
    assert only.models[0].model_id == "shuffled"
    without = await stub.TaskSearch(task(*TASK, exclude_model_ids=["matcher"]))
    assert "matcher" not in {m.model_id for m in without.models}
    shallow = await stub.TaskSearch(task(*TASK, candidate_depth=2, top_k=20))
    assert shallow.candidate_depth == 2
    assert {m.model_id for m in shallow.models} == {"matcher", "shuffled"}
    strict = await stub.TaskSearch(task(*TASK, min_coverage=1, max_score=-1e6))
    assert not strict.models
    for aggregation in (search_pb2.TASK_AGGREGATION_WORST, search_pb2.TASK_AGGREGATION_MEAN_RANK):
        other = await stub.TaskSearch(task(*TASK, aggregation=aggregation))
        assert {m.model_id for m in other.models[:2]} == {"matcher", "shuffled"}


async def test_a_concept_given_by_images(served, mini_world):
    stub, _ = served
    request = task("fire truck")
    request.concepts.add(images=clip_encoder_pb2.ImageSet(images=[mini_world.query_image]))
    response = await stub.TaskSearch(request, timeout=60)
    for match in response.models:
        assert match.coverage == 2


async def test_similar_logits_of_a_logit_and_of_a_model(served):
    stub, address = served
    # The shuffled model's copy of a matcher logit has the same descriptor: truncated distance
    # zero. (Its calibrated rank depends on how the untrained CLIP places the background.)
    for j in range(len(mini.CONCEPTS)):
        response = await stub.SimilarLogits(search_pb2.SimilarLogitsRequest(model_id="matcher", logit_index=j, top_k=100))
        closest = min(response.hits, key=lambda h: h.distance)
        assert (closest.model_id, closest.logit_index) == ("shuffled", mini.SHUFFLE.index(j))
        assert closest.distance == pytest.approx(0.0, abs=1e-2)
        assert ("matcher", j) not in {(h.model_id, h.logit_index) for h in response.hits}
        assert [h.rank for h in response.hits] == list(range(1, len(response.hits) + 1))
        assert [h.score for h in response.hits] == sorted(h.score for h in response.hits)
    models = await stub.SimilarLogits(search_pb2.SimilarLogitsRequest(model_id="matcher", top_k=20))
    assert not models.hits
    assert "matcher" not in {m.model_id for m in models.models}
    shuffled = next(m for m in models.models if m.model_id == "shuffled")
    assert shuffled.coverage == len(mini.CONCEPTS)
    # Every logit of the model is used once, so the offsets add up alike in every assignment:
    # the optimal one pairs the copies (distance zero).
    assert [a.logit_index for a in shuffled.assignments] == [mini.SHUFFLE.index(j) for j in range(len(mini.CONCEPTS))]
    async with ProbeLogClient(address) as client:
        similar = await client.similar("shuffled", logit_index=0, top_k=100)
        closest = min(similar.hits, key=lambda h: h.distance)
        assert (closest.model_id, closest.logit_index) == ("matcher", mini.SHUFFLE[0])
        found = await client.task(list(TASK), top_k=2)
        assert {m.model_id for m in found.models} == {"matcher", "shuffled"}
        with pytest.raises(NotFound):
            await client.similar("no-such-model")
        with pytest.raises(InvalidArgument) as bad:
            await client.task(["only one"])
        assert bad.value.field == "concepts"


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (task("cat"), "concepts"),
        (task(*["c"] * 1001), "concepts"),
        (task("cat", " "), "concepts[1].text"),
        (search_pb2.TaskSearchRequest(concepts=[search_pb2.TaskConcept(text="cat"), search_pb2.TaskConcept()]), "concepts[1]"),
        (task("cat", "dog", min_coverage=3), "min_coverage"),
        (task("cat", "dog", top_k=5000), "top_k"),
        (task("cat", "dog", candidate_depth=5000), "candidate_depth"),
        (task("cat", "dog", max_score=float("nan")), "max_score"),
        (task("cat", "dog", aggregation=99), "aggregation"),
        (task("cat", "dog", probe_set_id="ps-xyz"), "probe_set_id"),
    ],
)
async def test_bad_task_requests_name_the_field(served, request_, field):
    stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.TaskSearch(request_)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad_request = error_details_pb2.BadRequest()
    assert rpc_status.from_call(caught.value).details[0].Unpack(bad_request)
    assert [v.field for v in bad_request.field_violations] == [field]


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (search_pb2.SimilarLogitsRequest(model_id="no-such-model"), grpc.StatusCode.NOT_FOUND),
        (search_pb2.SimilarLogitsRequest(model_id="matcher", logit_index=99), grpc.StatusCode.INVALID_ARGUMENT),
        (search_pb2.SimilarLogitsRequest(), grpc.StatusCode.INVALID_ARGUMENT),
        (search_pb2.SimilarLogitsRequest(model_id="matcher", top_k=5000), grpc.StatusCode.INVALID_ARGUMENT),
        (search_pb2.SimilarLogitsRequest(model_id="matcher", probe_set_id="other"), grpc.StatusCode.NOT_FOUND),
    ],
)
async def test_bad_similar_requests(served, request_, code):
    stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SimilarLogits(request_)
    assert caught.value.code() == code
    assert "Traceback" not in (caught.value.details() or "")
