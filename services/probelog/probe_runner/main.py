"""Composition root of the probe runner."""

from __future__ import annotations

from probelog.common.errors import FailedPrecondition
from probelog.common.health import HealthCheck, peer_check, service_name
from probelog.common.runtime import run
from probelog.common.server import create_channel
from probelog.common.service import Built, Peers, need
from probelog.descriptor_store.client import DescriptorStoreClient
from probelog.probe_runner.config import PORT, RunnerSettings
from probelog.probe_runner.runner import ProbeBackend, ProbeRunner
from probelog.probe_runner.servicer import ProbeRunnerServicer
from probelog.v1 import descriptor_store_pb2


async def open_backend(settings: RunnerSettings) -> ProbeBackend:
    """The backend the runner URL names, checked (fails fast when unreachable)."""
    url = settings.runner_url
    if url.startswith("triton://"):
        from probelog.probe_runner.triton import TritonProbeBackend

        backend = TritonProbeBackend(url.removeprefix("triton://"), timeout_s=settings.runner_timeout_s)
        await backend.open()
        return backend
    if url.startswith("onnx://"):
        from probelog.probe_runner.onnx_backend import OnnxProbeBackend

        return OnnxProbeBackend(
            url.removeprefix("onnx://"), threads=settings.onnx_threads, allow_paths=settings.onnx_allow_paths
        )
    raise FailedPrecondition(f"unsupported runner URL {url!r}: use triton://host:port or onnx:///path")


async def build(settings: RunnerSettings, peers: Peers) -> Built[ProbeRunner]:
    """The probe runner; its peer is the store (where probe images come from)."""
    store = need(peers.store, "descriptor store")
    backend = await open_backend(settings)
    runner = ProbeRunner(backend, store)
    check = HealthCheck(f"the {backend.name} backend at {settings.runner_url}", backend.ping)
    return Built([ProbeRunnerServicer(runner)], runner, [*peers.closers, backend.close], [check, *peers.checks])


async def serve(settings: RunnerSettings, ready_file: str = "") -> None:
    channel = create_channel(settings.store_address, settings.client_tls)
    store = DescriptorStoreClient(channel, settings.store_address)
    store_health = peer_check(
        channel, service_name(descriptor_store_pb2, "DescriptorStoreService"), f"the descriptor store at {settings.store_address}"
    )
    built = await build(settings, Peers(store=store, closers=[store.close], checks=[store_health]))
    await run(built.servicers, settings, PORT, cleanup=built.close, ready_file=ready_file, checks=built.checks)
