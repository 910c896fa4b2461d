"""A TLS-serving orchestrator: clients verify it with a CA file, and the kubelet's plaintext
health probes reach a separate health-only port."""

from __future__ import annotations

import socket
import subprocess

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from probelog.client import ProbeLogClient
from probelog.common.errors import Unavailable
from probelog.common.server import TlsFiles
from probelog.v1 import search_pb2, search_pb2_grpc
from tests.support import mini, procs


@pytest.fixture(scope="module")
def tls_server(mini_world, tmp_path_factory):
    work = tmp_path_factory.mktemp("tls")
    key, cert = work / "key.pem", work / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
         "-out", str(cert), "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        health_port = s.getsockname()[1]
    flags = mini.service_flags(mini_world)
    service = procs.start("embedded-tls", [
        "--embedded", "--store-url", f"file://{work / 'store'}", "--runner-url", f"onnx://{mini_world.hub}",
        *flags["clip"], *flags["orchestrator"],
        "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--health-listen-address", f"127.0.0.1:{health_port}",
    ], work)
    yield service, cert, health_port
    assert service.stop() == 0, service.output()


async def test_tls_client_searches(tls_server):
    service, cert, _ = tls_server
    address = f"localhost:{service.port}"
    async with ProbeLogClient(address, tls=TlsFiles(ca_file=str(cert))) as client:
        await client.index("matcher")
        response = await client.search("pizza", top_k=2)
    assert (response.hits[0].model_id, response.hits[0].logit_index) == ("matcher", mini.CONCEPTS.index("pizza"))


async def test_plaintext_client_is_refused(tls_server):
    service, _, _ = tls_server
    async with ProbeLogClient(f"localhost:{service.port}", timeout_s=5) as client:
        with pytest.raises(Unavailable):
            await client.probe_sets()


async def test_health_answers_in_plaintext_on_its_own_port(tls_server):
    _, _, health_port = tls_server
    async with grpc.aio.insecure_channel(f"127.0.0.1:{health_port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for name in ("", "probelog.v1.SearchService"):
            response = await stub.Check(health_pb2.HealthCheckRequest(service=name))
            assert response.status == health_pb2.HealthCheckResponse.SERVING
        # Nothing but health is served there.
        search = search_pb2_grpc.SearchServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await search.ListProbeSets(search_pb2.ListProbeSetsRequest())
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
