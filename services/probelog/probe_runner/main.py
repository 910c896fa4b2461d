"""Composition root of the probe runner."""

from __future__ import annotations

from probelog.common.errors import FailedPrecondition
from probelog.common.runtime import run
from probelog.common.server import create_channel
from probelog.descriptor_store.client import DescriptorStoreClient
from probelog.probe_runner.config import PORT, RunnerSettings
from probelog.probe_runner.runner import ProbeBackend, ProbeRunner
from probelog.probe_runner.servicer import ProbeRunnerServicer


async def open_backend(settings: RunnerSettings, *, allow_paths: bool = False) -> ProbeBackend:
    """The backend the runner URL names, checked (fails fast when unreachable)."""
    url = settings.runner_url
    if url.startswith("triton://"):
        from probelog.probe_runner.triton import TritonProbeBackend

        backend = TritonProbeBackend(url.removeprefix("triton://"), timeout_s=settings.runner_timeout_s)
        await backend.open()
        return backend
    if url.startswith("onnx://"):
        from probelog.probe_runner.onnx_backend import OnnxProbeBackend

        return OnnxProbeBackend(url.removeprefix("onnx://"), threads=settings.onnx_threads, allow_paths=allow_paths)
    raise FailedPrecondition(f"unsupported runner URL {url!r}: use triton://host:port or onnx:///path")


async def serve(settings: RunnerSettings, ready_file: str = "") -> None:
    backend = await open_backend(settings)
    store = DescriptorStoreClient(create_channel(settings.store_address, settings.client_tls), settings.store_address)
    runner = ProbeRunner(backend, store)

    async def cleanup() -> None:
        await backend.close()
        await store.close()

    await run([ProbeRunnerServicer(runner)], settings, PORT, cleanup=cleanup, ready_file=ready_file)
