"""The probe runner on a real tritonserver (the nvidia-pytriton wheel's binary, Python backend).

The repository is written from the mini world's hub by ``probelog triton-repo --backend python``;
the Triton runner's logits are compared with the in-process ONNX runner's on the same models.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import pytest_asyncio

from probelog.common.errors import FailedPrecondition, NotFound, Unavailable
from probelog.common.probe_sets import load_probe_set
from probelog.descriptor_store.file_store import FileDescriptorStore
from probelog.probe_runner import triton_repo
from probelog.probe_runner.onnx_backend import OnnxProbeBackend
from probelog.probe_runner.runner import ProbeRunner
from probelog.probe_runner.triton import TritonProbeBackend
from probelog_devstack import free_port, triton_server
from tests.support import mini, procs

SMALL_BATCH = 7


@pytest.fixture(scope="module")
def repository(mini_world, tmp_path_factory):
    """The mini hub as a Python-backend repository, plus ``matcher-b7`` (max_batch_size 7)."""
    repo = tmp_path_factory.mktemp("triton-repo") / "models"
    result = procs.cli(["triton-repo", str(mini_world.hub), str(repo), "--backend", "python"])
    assert result.returncode == 0, result.stderr
    hub_b7 = tmp_path_factory.mktemp("hub-b7")
    shutil.copytree(mini_world.hub / "matcher", hub_b7 / "matcher-b7")
    config = hub_b7 / "matcher-b7" / "config.pbtxt"
    config.write_text(config.read_text().replace("max_batch_size: 64", f"max_batch_size: {SMALL_BATCH}"))
    triton_repo.write_repository(hub_b7, repo, backend="python")
    return repo


@pytest.fixture(scope="module")
def triton(repository, tmp_path_factory):
    server = triton_server.start(repository, tmp_path_factory.mktemp("triton"))
    yield server
    server.stop()


@pytest_asyncio.fixture(scope="module")
async def runners(triton, mini_world, tmp_path_factory):
    store = FileDescriptorStore(tmp_path_factory.mktemp("probe-store"))
    await store.open()
    probes = load_probe_set(mini_world.probe_set_file)
    info, _ = await store.put_probe_set(probes.name, probes.images)
    backend = TritonProbeBackend(triton.address, timeout_s=30)
    await backend.open()
    yield ProbeRunner(backend, store), ProbeRunner(OnnxProbeBackend(mini_world.hub), store), info.probe_set_id
    await backend.close()


def test_repository_layouts(mini_world, repository, tmp_path):
    # Python flavour: model.py beside the ONNX file, one CPU instance, the hub's tensors kept.
    python_config = (repository / "matcher" / "config.pbtxt").read_text()
    assert 'backend: "python"' in python_config and "KIND_CPU" in python_config
    assert "max_batch_size: 64" in python_config and 'name: "images"' in python_config
    assert {p.name for p in (repository / "matcher" / "1").iterdir()} == {"model.onnx", "model.py"}
    assert "intra_op_num_threads = 1" in (repository / "matcher" / "1" / "model.py").read_text()
    # Default flavour: Triton's ONNX Runtime backend, the standard GPU-server layout.
    names = triton_repo.write_repository(mini_world.hub, tmp_path / "ort")
    assert names == sorted([*mini.MiniWorld.GOOD_MODELS, *mini.MiniWorld.BAD_MODELS])
    ort_config = (tmp_path / "ort" / "matcher" / "config.pbtxt").read_text()
    assert 'backend: "onnxruntime"' in ort_config and "platform" not in ort_config
    assert [p.name for p in (tmp_path / "ort" / "matcher" / "1").iterdir()] == ["model.onnx"]


async def test_models_are_discovered_and_described_from_triton(runners):
    triton_runner, _, _ = runners
    backend = triton_runner.backend
    listed = {m.name: m for m in await backend.list_models()}
    assert set(listed) == {*mini.MiniWorld.GOOD_MODELS, *mini.MiniWorld.BAD_MODELS, "matcher-b7"}
    model = await backend.describe("shuffled")  # loaded on demand (explicit model control)
    assert (model.state, model.version, model.platform, model.max_batch_size) == ("READY", "1", "python", 64)
    assert [(t.name, t.datatype, list(t.dims)) for t in model.inputs] == [("images", "FP32", [3, 32, 32])]
    assert [(t.name, t.datatype, list(t.dims)) for t in model.outputs] == [("logits", "FP32", [4])]
    assert model.n_logits == 4
    assert "shuffled" in {m.name for m in await backend.list_models(ready_only=True)}
    await backend.unload("shuffled")
    assert (await backend.load("shuffled")).state == "READY"
    with pytest.raises(NotFound, match="no-such-model"):
        await backend.describe("no-such-model")
    with pytest.raises(NotFound):
        await backend.load("no-such-model")


async def test_triton_logits_equal_the_in_process_runner_in_batches_of_max_batch_size(runners):
    triton_runner, onnx_runner, ps_id = runners
    sizes: list[int] = []
    infer = triton_runner.backend.infer

    async def recording_infer(model, inputs, *, timeout=None):
        sizes.append(len(inputs))
        return await infer(model, inputs, timeout=timeout)

    triton_runner.backend.infer = recording_infer  # type: ignore[method-assign]
    try:
        for name, limit in (("matcher", 64), ("matcher-b7", SMALL_BATCH)):
            sizes.clear()
            got = await triton_runner.probe(name, "", ps_id)
            want = await onnx_runner.probe("matcher", "", ps_id)
            assert got.logits.shape == (mini.N_PROBES, len(mini.CONCEPTS))
            np.testing.assert_allclose(got.logits, want.logits, rtol=0, atol=1e-5)
            assert max(sizes) == limit and sum(sizes) == mini.N_PROBES
            assert got.images_per_second > 0
    finally:
        del triton_runner.backend.infer


async def test_model_whose_outputs_do_not_fit_is_failed_precondition(runners):
    triton_runner, _, ps_id = runners
    with pytest.raises(FailedPrecondition, match="bad-output"):
        await triton_runner.probe("bad-output", "", ps_id)


async def test_unreachable_triton_fails_fast_naming_the_endpoint():
    port = free_port()
    backend = TritonProbeBackend(f"127.0.0.1:{port}", timeout_s=5, retry_attempts=2)
    with pytest.raises(Unavailable, match=f"triton at 127.0.0.1:{port}"):
        await backend.open()
    await backend.close()


async def test_triton_stopped_then_back(runners, triton):
    triton_runner, _, ps_id = runners
    backend = triton_runner.backend
    attempts = 0
    ensure_client = backend._ensure_client

    def counting():
        nonlocal attempts
        attempts += 1
        return ensure_client()

    triton.stop()
    backend._ensure_client = counting  # type: ignore[method-assign]
    try:
        with pytest.raises(Unavailable, match=f"triton at {triton.address}"):
            await triton_runner.probe("matcher", "", ps_id)
        assert attempts == backend.retry_attempts  # UNAVAILABLE is retried, a bounded number of times
    finally:
        del backend._ensure_client
        triton.restart()
    # The same client reconnects once the server is back (its models reload on demand).
    for _ in range(20):
        try:
            result = await triton_runner.probe("matcher", "", ps_id)
            break
        except Unavailable:
            continue
    else:
        pytest.fail("the runner did not recover after tritonserver came back")
    assert result.logits.shape == (mini.N_PROBES, len(mini.CONCEPTS))
