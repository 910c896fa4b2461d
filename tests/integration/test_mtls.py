"""mTLS between the five services: each serves TLS, requires a client certificate signed by the
deployment's CA, and presents its own when it calls the others. Five processes on 127.0.0.1;
a call to an internal service without a certificate (or with one from another CA) is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import grpc
import pytest

from probelog.client import ProbeLogClient
from probelog.common.errors import Unavailable
from probelog.common.server import TlsFiles
from probelog.v1 import descriptor_store_pb2, descriptor_store_pb2_grpc
from tests.support import mini, procs


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


def make_pki(work: Path) -> dict[str, Path]:
    """A CA, a certificate it signs for the services (server and client use, 127.0.0.1), and a
    self-signed stranger."""
    files = {name: work / name for name in ("ca.pem", "ca.key", "svc.pem", "svc.key", "rogue.pem", "rogue.key")}
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=probelog-test-ca",
            "-keyout", str(files["ca.key"]), "-out", str(files["ca.pem"]))
    csr, ext = work / "svc.csr", work / "svc.ext"
    ext.write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=probelog-service",
            "-keyout", str(files["svc.key"]), "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(files["ca.pem"]), "-CAkey", str(files["ca.key"]),
            "-CAcreateserial", "-days", "1", "-extfile", str(ext), "-out", str(files["svc.pem"]))
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=stranger",
            "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(files["rogue.key"]), "-out", str(files["rogue.pem"]))
    return files


@pytest.fixture(scope="module")
def stack(mini_world, tmp_path_factory):
    work = tmp_path_factory.mktemp("mtls")
    pki = make_pki(work)
    tls = ["--tls-cert-file", str(pki["svc.pem"]), "--tls-key-file", str(pki["svc.key"]),
           "--tls-ca-file", str(pki["ca.pem"]), "--tls-client-ca-file", str(pki["ca.pem"])]
    flags = mini.service_flags(mini_world)
    started: list[procs.Service] = []
    try:
        store = procs.start("store", ["descriptor-store", "--store-url", f"file://{work / 'store'}", *tls], work)
        started.append(store)
        peer = ["--store-address", store.address]
        started.append(procs.start("runner", ["probe-runner", "--runner-url", f"onnx://{mini_world.hub}", *peer, *tls], work))
        started.append(procs.start("encoder", ["clip-encoder", *flags["clip"], *peer, *tls], work))
        started.append(procs.start("ranker", ["ranker", *peer, *tls], work))
        runner, encoder, ranker = started[1:]
        started.append(procs.start("orchestrator", [
            "orchestrator", *flags["orchestrator"], *peer, "--runner-address", runner.address,
            "--encoder-address", encoder.address, "--ranker-addresses", ranker.address, *tls,
        ], work))
        yield {s.name: s for s in started}, pki
    finally:
        codes = {s.name: s.stop() for s in reversed(started)}
    assert all(code == 0 for code in codes.values()), codes


async def test_every_hop_presents_a_certificate(stack):
    services, pki = stack
    client_tls = TlsFiles(ca_file=str(pki["ca.pem"]), cert_file=str(pki["svc.pem"]), key_file=str(pki["svc.key"]))
    async with ProbeLogClient(f"localhost:{services['orchestrator'].port}", tls=client_tls) as client:
        response = await client.index("matcher")  # orchestrator -> runner -> store, encoder, ranker
        assert response.searchable
        hits = (await client.search("pizza", top_k=2)).hits
    assert (hits[0].model_id, hits[0].logit_index) == ("matcher", mini.CONCEPTS.index("pizza"))


async def list_probe_sets(address: str, credentials: grpc.ChannelCredentials) -> grpc.StatusCode:
    async with grpc.aio.secure_channel(address, credentials) as channel:
        stub = descriptor_store_pb2_grpc.DescriptorStoreServiceStub(channel)
        try:
            await stub.ListStoredProbeSets(descriptor_store_pb2.ListStoredProbeSetsRequest(), timeout=10)
        except grpc.aio.AioRpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


async def test_an_internal_call_without_a_client_certificate_is_refused(stack):
    services, pki = stack
    ca = pki["ca.pem"].read_bytes()
    address = f"localhost:{services['store'].port}"
    without = grpc.ssl_channel_credentials(root_certificates=ca)
    stranger = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=pki["rogue.key"].read_bytes(), certificate_chain=pki["rogue.pem"].read_bytes()
    )
    member = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=pki["svc.key"].read_bytes(), certificate_chain=pki["svc.pem"].read_bytes()
    )
    assert await list_probe_sets(address, without) == grpc.StatusCode.UNAVAILABLE
    assert await list_probe_sets(address, stranger) == grpc.StatusCode.UNAVAILABLE
    assert await list_probe_sets(address, member) == grpc.StatusCode.OK
    # Nor can a public client without a certificate reach the orchestrator of this deployment.
    public = TlsFiles(ca_file=str(pki["ca.pem"]))
    async with ProbeLogClient(f"localhost:{services['orchestrator'].port}", tls=public, timeout_s=10) as client:
        with pytest.raises(Unavailable):
            await client.probe_sets()
