"""What the public port lets a client do: SearchService only, API keys with roles, no model
files from the server's disk. Real server processes on 127.0.0.1; the CLI and grpcurl as users
run them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from probelog.client import ProbeLogClient
from probelog.common.errors import NotFound
from probelog.v1 import (
    clip_encoder_pb2,
    clip_encoder_pb2_grpc,
    descriptor_store_pb2,
    descriptor_store_pb2_grpc,
    probe_runner_pb2,
    probe_runner_pb2_grpc,
    ranker_pb2,
    ranker_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
    types_pb2,
)
from tests.support import mini, procs

READ_KEY = "read-0123456789abcdef"
WRITE_KEY = "write-0123456789abcdef"
GRPCURL = str(Path(sys.executable).parent / "grpcurl")


def internal_calls(channel: grpc.aio.Channel):
    """One call of each internal service, as an attacker would try them on the public port."""
    store = descriptor_store_pb2_grpc.DescriptorStoreServiceStub(channel)
    model = types_pb2.ModelInfo(model_id="evil", probe_set_id="ps-0000000000000000", n_logits=1)
    yield store.PutModelDescriptors(descriptor_store_pb2.PutModelDescriptorsRequest(model=model))
    yield store.ListStoredProbeSets(descriptor_store_pb2.ListStoredProbeSetsRequest())
    yield probe_runner_pb2_grpc.ProbeRunnerServiceStub(channel).GetServedModel(
        probe_runner_pb2.GetServedModelRequest(model_name="/etc")
    )
    yield ranker_pb2_grpc.RankerServiceStub(channel).GetIndexStats(ranker_pb2.GetIndexStatsRequest())
    yield clip_encoder_pb2_grpc.ClipEncoderServiceStub(channel).GetEncoderInfo(clip_encoder_pb2.GetEncoderInfoRequest())


async def test_internal_services_are_not_served_on_the_public_port(embedded_process):
    async with grpc.aio.insecure_channel(embedded_process.address) as channel:
        for call in internal_calls(channel):
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await call
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
        # The public API answers on the same channel.
        response = await search_pb2_grpc.SearchServiceStub(channel).ListProbeSets(search_pb2.ListProbeSetsRequest())
        assert response.default_probe_set_id


async def test_model_paths_are_refused_alike_whether_they_exist_or_not(embedded_process, mini_world, tmp_path):
    existing = str(mini_world.hub / "matcher")
    messages = []
    async with ProbeLogClient(embedded_process.address) as client:
        before = await client.models()  # the server is shared: others index on it too
        for name in (existing, existing + "/1/model.onnx", str(tmp_path / "missing"), "/etc"):
            with pytest.raises(NotFound) as err:
                await client.index(name)
            messages.append(str(err.value).replace(repr(name), "NAME"))
        assert await client.models() == before
    assert len(set(messages)) == 1, messages


@pytest.fixture(scope="module")
def keyed(mini_world, tmp_path_factory):
    """An embedded server that requires API keys, with reflection closed."""
    work = tmp_path_factory.mktemp("keyed")
    flags = mini.service_flags(mini_world)
    keys = work / "keys"
    keys.write_text(f"read {READ_KEY}\n")
    service = procs.start("keyed", [
        "--embedded", "--store-url", f"file://{work / 'store'}", "--runner-url", f"onnx://{mini_world.hub}",
        *flags["clip"], *flags["orchestrator"],
        "--api-keys-file", str(keys), "--api-keys", f"write:{WRITE_KEY}", "--no-auth-open-reflection",
    ], work)
    yield service
    assert service.stop() == 0, service.output()
    # Keys are never logged.
    assert READ_KEY not in service.output() and WRITE_KEY not in service.output()


def status_of(call):
    async def run():
        try:
            await call
        except grpc.aio.AioRpcError as exc:
            return exc.code()
        return grpc.StatusCode.OK

    return run()


async def test_keys_and_roles(keyed):
    index = search_pb2.IndexModelRequest(model_name="matcher")
    search = search_pb2.SearchRequest(text="pizza", top_k=2)
    async with grpc.aio.insecure_channel(keyed.address) as channel:
        stub = search_pb2_grpc.SearchServiceStub(channel)

        def auth(key):
            return [("authorization", f"Bearer {key}")]

        assert await status_of(stub.Search(search)) == grpc.StatusCode.UNAUTHENTICATED
        assert await status_of(stub.Search(search, metadata=auth("wrong-key-0123456789"))) == grpc.StatusCode.UNAUTHENTICATED
        assert await status_of(stub.Search(search, metadata=[("authorization", READ_KEY)])) == grpc.StatusCode.UNAUTHENTICATED
        assert await status_of(stub.IndexModel(index, metadata=auth(READ_KEY))) == grpc.StatusCode.PERMISSION_DENIED
        delete = search_pb2.DeleteModelRequest(model_id="matcher")
        assert await status_of(stub.DeleteModel(delete, metadata=auth(READ_KEY))) == grpc.StatusCode.PERMISSION_DENIED
        assert await status_of(stub.IndexModel(index, metadata=auth(WRITE_KEY))) == grpc.StatusCode.OK
        for key in (READ_KEY, WRITE_KEY):  # the write role may read too
            response = await stub.Search(search, metadata=auth(key))
            assert response.hits[0].model_id == "matcher"
            assert await status_of(stub.ListModels(search_pb2.ListModelsRequest(), metadata=auth(key))) == grpc.StatusCode.OK
            get = search_pb2.GetModelRequest(model_id="matcher")
            assert await status_of(stub.GetModel(get, metadata=auth(key))) == grpc.StatusCode.OK
        # Health needs no key.
        health = health_pb2_grpc.HealthStub(channel)
        assert (await health.Check(health_pb2.HealthCheckRequest())).status == health_pb2.HealthCheckResponse.SERVING


def test_cli_and_grpcurl_carry_the_key(keyed):
    env = procs.test_env(PROBELOG_TOKEN=READ_KEY)
    result = procs.cli(["search", "pizza", "--top-k", "2", "--json", "--address", keyed.address], env=env)
    assert result.returncode == 0, result.stderr
    denied = procs.cli(["delete", "matcher", "--address", keyed.address], env=env)
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr
    missing = procs.cli(["models", "--address", keyed.address, "--token", ""])
    assert missing.returncode == 1 and "UNAUTHENTICATED" in missing.stderr
    request = json.dumps({"text": "pizza", "top_k": 2})
    grpcurl = [GRPCURL, "-plaintext", "-H", f"authorization: Bearer {READ_KEY}", "-d", request, keyed.address,
               "probelog.v1.SearchService/Search"]
    # Reflection is closed on this server: grpcurl needs the key for it too.
    ran = subprocess.run(grpcurl, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["hits"]
    closed = subprocess.run([GRPCURL, "-plaintext", keyed.address, "list"], capture_output=True, text=True, timeout=60)
    assert closed.returncode != 0 and "Unauthenticated" in closed.stderr


async def test_per_call_metadata_carries_another_key(keyed):
    from probelog.client import ProbeLogClient
    from probelog.common.errors import RemoteError

    async with ProbeLogClient(keyed.address, token=READ_KEY) as client:
        assert (await client.search("pizza", top_k=1)).hits  # the client's own read key
        with pytest.raises(RemoteError, match="needs the write role") as refused:
            await client.index("shuffled")
        assert refused.value.status == "PERMISSION_DENIED"
        with client.call_metadata(("authorization", f"Bearer {WRITE_KEY}"), ("x-request-id", "per-call-1")):
            assert (await client.index("shuffled")).model.model_id == "shuffled"
        with pytest.raises(RemoteError, match="needs the write role"):  # the block's key is gone after it
            await client.index("shuffled")
    assert '"request_id": "per-call-1"' in keyed.output()


def test_the_synchronous_client_blocks_for_each_answer(keyed):
    from probelog.client import SyncProbeLogClient

    with SyncProbeLogClient(keyed.address, token=READ_KEY) as client:
        first = client.search("pizza", top_k=2)
        again = client.search("pizza", top_k=2)
        assert [h.model_id for h in first.hits] == [h.model_id for h in again.hits] and first.hits
        with client.call_metadata(("authorization", f"Bearer {WRITE_KEY}")):
            assert client.index("matcher").model.model_id == "matcher"
