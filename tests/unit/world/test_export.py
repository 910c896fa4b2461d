from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from probelog_world.build import CLIP_RN, CLIP_VIT
from probelog_world.clip import ClipArchitecture
from probelog_world.export import export_to_repository, onnx_bytes, run_onnx, triton_config
from probelog_world.models import ARCHITECTURES, Architecture, clip_tower_architecture

SIZE = 48


def _architecture(name: str) -> Architecture:
    """A hub architecture, or the image tower of one of the world's CLIPs."""
    if name in ARCHITECTURES:
        return ARCHITECTURES[name]
    config = ClipArchitecture(image_size=SIZE, **{"clip-rn": CLIP_RN, "clip-vit": CLIP_VIT}[name]).to_open_clip()
    return clip_tower_architecture(name, config)


@pytest.mark.parametrize("arch", [*sorted(ARCHITECTURES), "clip-rn", "clip-vit"])
def test_onnx_matches_torch_with_dynamic_batch(arch: str) -> None:
    torch.manual_seed(0)
    model = _architecture(arch).build(SIZE, 7).eval()
    data = onnx_bytes(model, SIZE)
    for batch in (1, 5):
        x = np.random.default_rng(batch).random((batch, 3, SIZE, SIZE), dtype=np.float32)
        with torch.no_grad():
            expected = model(torch.from_numpy(x)).numpy()
        got = run_onnx(data, x)
        assert got.shape == (batch, 7)
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)


def test_triton_config_parses_as_model_config() -> None:
    from tritonclient.grpc import model_config_pb2

    config = text_format.Parse(triton_config("hub-0007", SIZE, 12), model_config_pb2.ModelConfig())
    assert config.name == "hub-0007"
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 256
    (inp,) = config.input
    (out,) = config.output
    assert (inp.name, list(inp.dims)) == ("images", [3, SIZE, SIZE])
    assert (out.name, list(out.dims)) == ("logits", [12])
    assert inp.data_type == out.data_type == model_config_pb2.TYPE_FP32


def test_repository_layout_has_no_labels(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ARCHITECTURES["cnn-s"].build(SIZE, 4).eval()
    check = np.random.default_rng(0).random((2, 3, SIZE, SIZE), dtype=np.float32)
    path = export_to_repository(model, "hub-0000", tmp_path / "hub", SIZE, tmp_path / "staging", check)
    files = sorted(str(p.relative_to(tmp_path / "hub")) for p in (tmp_path / "hub").rglob("*") if p.is_file())
    assert files == ["hub-0000/1/model.onnx", "hub-0000/config.pbtxt"]
    assert path == tmp_path / "hub" / "hub-0000"
    assert run_onnx(path / "1" / "model.onnx", check).shape == (2, 4)
    assert not (tmp_path / "staging" / "hub-0000").exists()


def test_export_refuses_a_model_that_disagrees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from probelog_world import export

    model = ARCHITECTURES["mlp-s"].build(SIZE, 3).eval()
    monkeypatch.setattr(export, "run_onnx", lambda data, images: np.zeros((len(images), 3), np.float32) + 9)
    check = np.random.default_rng(0).random((2, 3, SIZE, SIZE), dtype=np.float32)
    with pytest.raises(RuntimeError, match="differs"):
        export_to_repository(model, "hub-0001", tmp_path / "hub", SIZE, tmp_path / "staging", check)
    assert not (tmp_path / "hub" / "hub-0001").exists()
