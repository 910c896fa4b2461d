"""Composition root of the probe runner."""

from __future__ import annotations

from probelog.common.errors import FailedPrecondition
from probelog.common.runtime import run
from probelog.common.server import create_channel
from probelog.common.service import Built, Peers, need
from probelog.descriptor_store.client import DescriptorStoreClient
from probelog.probe_runner.config import PORT, RunnerSettings
from probelog.probe_runner.runner import ProbeBackend, ProbeRunner
from probelog.probe_runner.servicer import ProbeRunnerServicer


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
    return Built([ProbeRunnerServicer(runner)], runner, [*peers.closers, backend.close])


async def serve(settings: RunnerSettings, ready_file: str = "") -> None:
    store = DescriptorStoreClient(create_channel(settings.store_address, settings.client_tls), settings.store_address)
    built = await build(settings, Peers(store=store, closers=[store.close]))
    await run(built.servicers, settings, PORT, cleanup=built.close, ready_file=ready_file)
