"""Search end to end through a real gRPC server running the embedded composition.

The mini world's models are constructed so that the truth is known (tests/support/mini.py).
"""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import pytest_asyncio

from probelog.common.server import create_server
from probelog.embedded import EmbeddedSettings, build
from probelog.v1 import clip_encoder_pb2, search_pb2
from probelog.v1 import search_pb2_grpc as pb_grpc
from tests.support import mini


@pytest_asyncio.fixture(scope="module")
async def served(mini_world, tmp_path_factory):
    settings = EmbeddedSettings(**mini_world.embedded_settings(tmp_path_factory.mktemp("store")))
    embedded = await build(settings)
    server = await create_server(embedded.servicers, "127.0.0.1:0")
    await server.set_serving()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = pb_grpc.SearchServiceStub(channel)
    for name in mini.MiniWorld.GOOD_MODELS:
        response = await stub.IndexModel(search_pb2.IndexModelRequest(model_name=name))
        assert response.searchable
    yield stub, embedded
    await channel.close()
    await server.stop(0)
    await embedded.close()


async def test_each_concept_retrieves_its_constructed_logits_first(served):
    stub, _ = served
    for j, concept in enumerate(mini.CONCEPTS):
        response = await stub.Search(search_pb2.SearchRequest(text=concept, top_k=5))
        top2 = {(h.model_id, h.logit_index) for h in response.hits[:2]}
        assert top2 == {("matcher", j), ("shuffled", mini.SHUFFLE.index(j))}, concept
        assert [h.rank for h in response.hits] == [1, 2, 3, 4, 5]
        scores = [h.score for h in response.hits]
        assert scores == sorted(scores)


async def test_search_response_describes_what_was_searched(served):
    stub, _ = served
    response = await stub.Search(search_pb2.SearchRequest(text="pizza", top_k=3))
    n_logits = len(mini.CONCEPTS) * 2 + 1 + 3 * mini.N_RANDOM_MODELS
    assert response.n_logits_searched == n_logits
    assert response.n_models_searched == len(mini.MiniWorld.GOOD_MODELS)
    default = (await stub.ListProbeSets(search_pb2.ListProbeSetsRequest())).default_probe_set_id
    assert response.probe_set_id == default
    assert response.timings.total_us >= response.timings.rank_us > 0
    assert not response.partial


async def test_search_by_image(served, mini_world):
    # The imagematch logit responds to each probe as CLIP's similarity to the query image, so
    # its truncated distance to the image-set descriptor (Eq. 8) is zero. (Its calibrated rank
    # depends on how the untrained CLIP places that image among the background concepts.)
    stub, _ = served
    request = search_pb2.SearchRequest(
        images=clip_encoder_pb2.ImageSet(images=[mini_world.query_image] * 3), top_k=100
    )
    response = await stub.Search(request)
    closest = min(response.hits, key=lambda h: h.distance)
    assert (closest.model_id, closest.logit_index) == ("imagematch", 0)
    assert closest.distance == pytest.approx(0.0, abs=1e-2)


async def test_one_hit_per_model_and_filters(served):
    stub, _ = served
    response = await stub.Search(search_pb2.SearchRequest(text="fire truck", top_k=20, one_hit_per_model=True))
    ids = [h.model_id for h in response.hits]
    assert len(ids) == len(set(ids)) == len(mini.MiniWorld.GOOD_MODELS)
    assert (response.hits[0].model_id, response.hits[0].logit_index) in {("matcher", 1), ("shuffled", 3)}
    only = await stub.Search(
        search_pb2.SearchRequest(text="fire truck", top_k=20, include_model_ids=["random-0", "random-1"])
    )
    assert {h.model_id for h in only.hits} == {"random-0", "random-1"}
    without = await stub.Search(
        search_pb2.SearchRequest(text="fire truck", top_k=3, exclude_model_ids=["matcher"])
    )
    assert without.hits[0].model_id == "shuffled"


async def test_list_get_delete(served):
    stub, _ = served
    listed = await stub.ListModels(search_pb2.ListModelsRequest(page_size=3))
    assert len(listed.models) == 3 and listed.next_page_token
    rest = await stub.ListModels(search_pb2.ListModelsRequest(page_size=100, page_token=listed.next_page_token))
    names = [m.model_id for m in list(listed.models) + list(rest.models)]
    assert sorted(names) == sorted(mini.MiniWorld.GOOD_MODELS)
    model = (await stub.GetModel(search_pb2.GetModelRequest(model_id="matcher"))).model
    assert model.n_logits == len(mini.CONCEPTS) and model.r == 50
    assert model.calibration.k > 0 and model.calibration.background_id.startswith("bg-")
    # Re-indexing is idempotent; delete removes the model from search at once.
    await stub.IndexModel(search_pb2.IndexModelRequest(model_name="random-4", model_id="extra"))
    await stub.DeleteModel(search_pb2.DeleteModelRequest(model_id="extra"))
    response = await stub.Search(search_pb2.SearchRequest(text="pizza", top_k=50))
    assert "extra" not in {h.model_id for h in response.hits}
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.GetModel(search_pb2.GetModelRequest(model_id="extra"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(
    ("request_", "code", "text"),
    [
        (search_pb2.SearchRequest(), grpc.StatusCode.INVALID_ARGUMENT, "text or images"),
        (search_pb2.SearchRequest(text="  "), grpc.StatusCode.INVALID_ARGUMENT, "empty"),
        (search_pb2.SearchRequest(text="cat", top_k=100000), grpc.StatusCode.INVALID_ARGUMENT, "top_k"),
        (
            search_pb2.SearchRequest(images=clip_encoder_pb2.ImageSet(images=[b"not an image"])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "not a readable image",
        ),
        (search_pb2.SearchRequest(text="cat", probe_set_id="ps-0000000000000000"), grpc.StatusCode.NOT_FOUND, "ps-0000"),
        (search_pb2.SearchRequest(text="cat", probe_set_id="bogus"), grpc.StatusCode.NOT_FOUND, "bogus"),
        (
            search_pb2.SearchRequest(text="cat", prompt_templates=["no placeholder"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "{}",
        ),
    ],
)
async def test_bad_search_requests(served, request_, code, text):
    stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.Search(request_)
    assert err.value.code() == code
    assert text in err.value.details()
    assert "Traceback" not in err.value.details()


@pytest.mark.parametrize(
    ("name", "code", "text"),
    [
        ("no-such-model", grpc.StatusCode.NOT_FOUND, "no-such-model"),
        ("dead-logit", grpc.StatusCode.FAILED_PRECONDITION, "row 1 is constant"),
        ("bad-output", grpc.StatusCode.FAILED_PRECONDITION, "expected a vector"),
        ("", grpc.StatusCode.INVALID_ARGUMENT, "model_name"),
    ],
)
async def test_models_that_cannot_be_indexed_leave_nothing_behind(served, name, code, text):
    stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.IndexModel(search_pb2.IndexModelRequest(model_name=name))
    assert err.value.code() == code
    assert text in err.value.details()
    if name:
        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.GetModel(search_pb2.GetModelRequest(model_id=name))
        assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_labels_are_shown_not_used(served):
    stub, _ = served
    labels = ["a", "b", "c"]
    await stub.IndexModel(search_pb2.IndexModelRequest(model_name="random-3", model_id="labelled", labels=labels))
    response = await stub.Search(search_pb2.SearchRequest(text="cat", top_k=100, include_model_ids=["labelled"]))
    assert sorted(h.label for h in response.hits) == labels
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.IndexModel(search_pb2.IndexModelRequest(model_name="random-3", model_id="x", labels=["a"]))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await stub.DeleteModel(search_pb2.DeleteModelRequest(model_id="labelled"))


async def test_a_repeated_text_is_answered_from_the_cache_with_the_same_hits(served):
    from probelog.core.descriptors import text_descriptors

    stub, embedded = served
    encoder, cache = embedded.encoder, embedded.encoder.text_cache
    request = search_pb2.SearchRequest(text="pizza on a plate", top_k=5)
    first = await stub.Search(request)
    held = len(cache)
    row = cache.get(first.probe_set_id, encoder.prompt_templates, "pizza on a plate")
    assert row is not None
    fresh = text_descriptors(await encoder.encode_text(["pizza on a plate"]), await encoder.probe_embeddings(first.probe_set_id))
    assert np.array_equal(row, fresh[0])
    again = await stub.Search(request)
    assert len(cache) == held
    assert [(h.model_id, h.logit_index, h.score) for h in again.hits] == [(h.model_id, h.logit_index, h.score) for h in first.hits]
