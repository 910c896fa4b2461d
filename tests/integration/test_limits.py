"""Limits on every input, through a real gRPC server on the embedded composition: each bad input
is refused with INVALID_ARGUMENT or RESOURCE_EXHAUSTED, and nothing is stored; every id that
passes the check is stored, listed and deleted; listings page by size and a ranker restarted on
large models loads them all."""

from __future__ import annotations

import io

import grpc
import numpy as np
import pytest
import pytest_asyncio
from PIL import Image

from probelog.common.server import create_server
from probelog.common.service import Peers
from probelog.descriptor_store.servicer import DescriptorStoreServicer
from probelog.embedded import EmbeddedSettings, build
from probelog.ranker import main as ranker_main
from probelog.ranker.config import RankerSettings
from probelog.v1 import (
    clip_encoder_pb2,
    descriptor_store_pb2,
    descriptor_store_pb2_grpc,
    search_pb2,
    types_pb2,
)
from probelog.v1 import search_pb2_grpc as pb_grpc


@pytest_asyncio.fixture(scope="module")
async def served(mini_world, tmp_path_factory):
    settings = EmbeddedSettings(
        **mini_world.embedded_settings(tmp_path_factory.mktemp("store")),
        max_logits_per_model=4,  # the random models have 3 logits, the matcher 4, no model more
        max_image_pixels=64 * 64,
    )
    embedded = await build(settings)
    server = await create_server(embedded.servicers, "127.0.0.1:0")
    await server.set_serving()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    yield pb_grpc.SearchServiceStub(channel), embedded
    await channel.close()
    await server.stop(0)
    await embedded.close()


async def code_of(call) -> grpc.StatusCode:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        assert "0x" not in (exc.details() or ""), exc.details()  # no memory addresses, no reprs
        return exc.code()
    return grpc.StatusCode.OK


async def stored_ids(stub) -> set[str]:
    return {m.model_id for m in (await stub.ListModels(search_pb2.ListModelsRequest(page_size=1000))).models}


BAD_INDEX_REQUESTS = {
    "label too long": dict(model_name="random-1", labels=["a", "b", "x" * 257]),
    "too many labels": dict(model_name="random-1", labels=["a"] * 5),
    "labels for the wrong logit count": dict(model_name="random-1", labels=["a", "b"]),
    "metadata entries": dict(model_name="random-1", metadata={f"k{i}": "v" for i in range(65)}),
    "metadata key": dict(model_name="random-1", metadata={"k" * 129: "v"}),
    "metadata value": dict(model_name="random-1", metadata={"k": "v" * 1025}),
    "model id too long": dict(model_name="random-1", model_id="m" * 257),
    "model id with a control character": dict(model_name="random-1", model_id="a\nb"),
}


@pytest.mark.parametrize("case", sorted(BAD_INDEX_REQUESTS))
async def test_bad_index_requests_store_nothing(served, case):
    stub, _ = served
    before = await stored_ids(stub)
    code = await code_of(stub.IndexModel(search_pb2.IndexModelRequest(**BAD_INDEX_REQUESTS[case])))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, case
    assert await stored_ids(stub) == before


async def test_logits_per_model_are_bounded(served, mini_world, tmp_path):
    stub, embedded = served
    # Same models, a lower limit: the matcher's 4 logits are refused once probed, nothing stored.
    embedded.engine.limits = type(embedded.engine.limits)(max_logits_per_model=3)
    try:
        code = await code_of(stub.IndexModel(search_pb2.IndexModelRequest(model_name="matcher")))
    finally:
        embedded.engine.limits = type(embedded.engine.limits)(max_logits_per_model=4)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert "matcher" not in await stored_ids(stub)


@pytest.mark.parametrize("model_id", ["i" * 256, "\U0001f600" * 100, "org/model:v1 @ 2026", "~tilde", "%2F"])
async def test_every_id_that_passes_is_stored_listed_and_deleted(served, model_id):
    stub, _ = served
    response = await stub.IndexModel(search_pb2.IndexModelRequest(model_name="random-2", model_id=model_id))
    assert response.searchable and response.model.model_id == model_id
    assert model_id in await stored_ids(stub)
    assert (await stub.GetModel(search_pb2.GetModelRequest(model_id=model_id))).model.model_id == model_id
    hits = (await stub.Search(search_pb2.SearchRequest(text="pizza", include_model_ids=[model_id]))).hits
    assert hits and hits[0].model_id == model_id
    await stub.DeleteModel(search_pb2.DeleteModelRequest(model_id=model_id))
    assert model_id not in await stored_ids(stub)


@pytest.mark.parametrize(
    "templates", [["{0}{}"], ["{.__class__}{}"], ["{}{}"], ["no field"], ["{}"] * 17, ["x" * 300 + "{}"], ["{!r}"]]
)
async def test_bad_prompt_templates(served, templates):
    stub, _ = served
    request = search_pb2.SearchRequest(text="pizza", prompt_templates=templates)
    assert await code_of(stub.Search(request)) == grpc.StatusCode.INVALID_ARGUMENT


def png(width: int, height: int, mode: str = "1") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, format="PNG")
    return buf.getvalue()


async def test_images_beyond_the_pixel_limit_and_unreadable_images(served):
    stub, _ = served
    ok = png(64, 64, "RGB")
    cases = {"over the limit": png(65, 64), "not an image": b"not an image", "truncated": ok[: len(ok) // 2]}
    for case, data in cases.items():
        request = search_pb2.SearchRequest(images=clip_encoder_pb2.ImageSet(images=[ok, data]))
        assert await code_of(stub.Search(request)) == grpc.StatusCode.INVALID_ARGUMENT, case
    response = await stub.Search(search_pb2.SearchRequest(images=clip_encoder_pb2.ImageSet(images=[ok])))
    assert response.probe_set_id


async def test_probe_set_streams_are_bounded(served):
    _, embedded = served
    servicer = DescriptorStoreServicer(embedded.store, "file", max_probe_set_bytes=10_000)
    server = await create_server([servicer], "127.0.0.1:0")
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = descriptor_store_pb2_grpc.DescriptorStoreServiceStub(channel)

            def stream(n_probes: int, chunks: int):
                header = types_pb2.ProbeSetInfo(name="big", n_probes=n_probes, height=10, width=10, channels=3)
                yield descriptor_store_pb2.PutProbeSetRequest(header=header)
                for _ in range(chunks):
                    yield descriptor_store_pb2.PutProbeSetRequest(images=bytes(3000))

            # Declared too large in the header; and a small header followed by too many bytes.
            for n_probes, chunks in ((100, 1), (10, 50)):
                code = await code_of(stub.PutProbeSet(stream(n_probes, chunks)))
                assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
            listed = await stub.ListStoredProbeSets(descriptor_store_pb2.ListStoredProbeSetsRequest())
            assert all(p.name != "big" for p in listed.probe_sets)
    finally:
        await server.stop(0)


async def test_listings_page_by_size_and_a_restarted_ranker_loads_them(served, monkeypatch):
    from probelog.descriptor_store import records

    stub, embedded = served
    monkeypatch.setattr(records, "MAX_PAGE_BYTES", 3000)
    ids = [f"big-{i}" for i in range(6)]
    for model_id in ids:
        labels = [f"{model_id}-{j}-" + "x" * 240 for j in range(3)]
        await stub.IndexModel(search_pb2.IndexModelRequest(model_name="random-3", model_id=model_id, labels=labels))
    pages, token = [], ""
    while True:
        response = await stub.ListModels(search_pb2.ListModelsRequest(page_size=1000, page_token=token))
        pages.append(response.models)
        token = response.next_page_token
        if not token:
            break
    assert len(pages) > 1
    assert all(sum(m.ByteSize() for m in page) <= 3000 or len(page) == 1 for page in pages)
    assert set(ids) <= {m.model_id for page in pages for m in page}
    restarted = await ranker_main.build(RankerSettings(), Peers(store=embedded.store))
    try:
        descriptors = np.random.default_rng(0).standard_normal((1, 240)).astype(np.float32)
        ps_id = (await embedded.store.list_probe_sets())[0].probe_set_id
        result = await restarted.core.rank(ps_id, descriptors, 100, include=tuple(ids))
        assert {h.model_id for h in result.hits[0]} == set(ids)
    finally:
        await restarted.close()
