"""Evidence per hit, a logit's top probes and probe thumbnails, through a real gRPC server running
the embedded composition on the mini world (tests/support/mini.py)."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
from PIL import Image

from probelog.core.descriptors import zscore
from probelog.core.evidence import match_evidence, top_probes
from probelog.v1 import search_pb2
from tests.integration.test_search_embedded import served  # noqa: F401  (the module's server)
from tests.support import mini


async def test_search_without_evidence_returns_none(served):  # noqa: F811
    stub, _ = served
    response = await stub.Search(search_pb2.SearchRequest(text="pizza", top_k=5))
    assert all(not h.evidence for h in response.hits)


async def test_evidence_is_the_logits_best_agreeing_stored_probes(served):  # noqa: F811
    stub, embedded = served
    response = await stub.Search(search_pb2.SearchRequest(text="pizza", top_k=5, evidence_probes=6))
    ps_id = response.probe_set_id
    raw = await embedded.encoder.compute_descriptors(ps_id, ["pizza"])
    query_z = zscore(raw)[0]
    for hit in response.hits:
        stored = await embedded.store.get_model(ps_id, hit.model_id, include_descriptors=True)
        row = hit.logit_index
        indices, logit_z, q = match_evidence(stored.entries.top_indices[row], stored.entries.top_values[row], query_z, 6)
        assert [e.probe_index for e in hit.evidence] == indices.tolist()
        np.testing.assert_allclose([e.logit_value for e in hit.evidence], logit_z, rtol=1e-6)
        np.testing.assert_allclose([e.query_value for e in hit.evidence], q, atol=1e-5)
        terms = [(e.logit_value - e.query_value) ** 2 for e in hit.evidence]
        assert terms == sorted(terms)
    # The matcher's logit for pizza responds as CLIP does to the concept: the two agree.
    best = next(h for h in response.hits if h.model_id == "matcher")
    assert best.logit_index == mini.CONCEPTS.index("pizza")
    assert all(abs(e.logit_value - e.query_value) < 0.05 for e in best.evidence)


async def test_task_search_evidence_per_assignment(served):  # noqa: F811
    stub, _ = served
    request = search_pb2.TaskSearchRequest(top_k=2, evidence_probes=3)
    request.concepts.add(text="pizza")
    request.concepts.add(text="fire truck")
    response = await stub.TaskSearch(request)
    covered = [a for m in response.models for a in m.assignments if a.covered]
    assert covered and all(len(a.evidence) == 3 for a in covered)
    plain = await stub.TaskSearch(search_pb2.TaskSearchRequest(concepts=request.concepts, top_k=2))
    assert all(not a.evidence for m in plain.models for a in m.assignments)


async def test_model_top_probes_per_logit(served):  # noqa: F811
    stub, embedded = served
    response = await stub.GetModel(search_pb2.GetModelRequest(model_id="matcher", top_probes=4))
    assert [lp.logit_index for lp in response.logits] == list(range(len(mini.CONCEPTS)))
    stored = await embedded.store.get_model(response.model.probe_set_id, "matcher", include_descriptors=True)
    for lp in response.logits:
        indices, values = top_probes(stored.entries.top_indices[lp.logit_index], stored.entries.top_values[lp.logit_index], 4)
        assert [p.probe_index for p in lp.probes] == indices.tolist()
        assert [p.logit_value for p in lp.probes] == pytest.approx(values.tolist())
    assert not (await stub.GetModel(search_pb2.GetModelRequest(model_id="matcher"))).logits


async def test_probe_images_are_scaled_pngs_of_the_probe_set(served):  # noqa: F811
    stub, embedded = served
    response = await stub.GetProbeImages(search_pb2.GetProbeImagesRequest(probe_indices=[3, 0, 3], size_px=48))
    info, images = await embedded.store.get_probe_set(response.probe_set_id)
    assert [i.probe_index for i in response.images] == [3, 0, 3]
    for image in response.images:
        assert image.media_type == "image/png"
        decoded = Image.open(io.BytesIO(image.data))
        assert decoded.format == "PNG" and max(decoded.size) == 48 == image.width
        source = images[image.probe_index]
        back = np.asarray(decoded.convert("RGB").resize((info.width, info.height), Image.Resampling.NEAREST))
        if info.width * 2 <= 48:  # enlarged pixel for pixel: the probe comes back exactly
            np.testing.assert_array_equal(back, source)
    again = await stub.GetProbeImages(search_pb2.GetProbeImagesRequest(probe_indices=[3]))
    assert max(Image.open(io.BytesIO(again.images[0].data)).size) == 64


@pytest.mark.parametrize(
    ("call", "request_", "code", "text"),
    [
        ("GetProbeImages", search_pb2.GetProbeImagesRequest(), grpc.StatusCode.INVALID_ARGUMENT, "probe_indices"),
        ("GetProbeImages", search_pb2.GetProbeImagesRequest(probe_indices=list(range(101))), grpc.StatusCode.INVALID_ARGUMENT, "1 to 100"),
        ("GetProbeImages", search_pb2.GetProbeImagesRequest(probe_indices=[10**6]), grpc.StatusCode.INVALID_ARGUMENT, "out of range"),
        ("GetProbeImages", search_pb2.GetProbeImagesRequest(probe_indices=[0], size_px=4096), grpc.StatusCode.INVALID_ARGUMENT, "size_px"),
        ("GetProbeImages", search_pb2.GetProbeImagesRequest(probe_indices=[0], probe_set_id="ps-0000000000000000"), grpc.StatusCode.NOT_FOUND, "ps-0000"),
        ("Search", search_pb2.SearchRequest(text="cat", evidence_probes=101), grpc.StatusCode.INVALID_ARGUMENT, "evidence_probes"),
        ("GetModel", search_pb2.GetModelRequest(model_id="matcher", top_probes=500), grpc.StatusCode.INVALID_ARGUMENT, "top_probes"),
        ("GetModel", search_pb2.GetModelRequest(model_id="nobody", top_probes=5), grpc.StatusCode.NOT_FOUND, "nobody"),
    ],
)
async def test_bad_evidence_requests(served, call, request_, code, text):  # noqa: F811
    stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await getattr(stub, call)(request_)
    assert err.value.code() == code
    assert text in err.value.details()
    assert "Traceback" not in err.value.details()
