"""The CLIP encoder loads models by their open_clip names, and refuses at start-up what would
give random weights or fail later."""

from __future__ import annotations

import numpy as np
import pytest

from probelog.clip_encoder.open_clip import NO_WEIGHTS, OpenClipEncoder, load_clip, resolve_device
from probelog.common.errors import FailedPrecondition
from tests.support import procs

ARCHITECTURE = "ViT-S-32"  # a released open_clip architecture, small enough for a CPU test


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A local checkpoint of the architecture (random weights: nothing can be downloaded here),
    and the text embeddings the saved model gives."""
    import open_clip
    import torch

    torch.manual_seed(0)
    model = open_clip.create_model(ARCHITECTURE).eval()
    path = tmp_path_factory.mktemp("clip") / "vit-s-32.pt"
    torch.save({"state_dict": model.state_dict()}, path)
    with torch.no_grad():
        text = model.encode_text(open_clip.get_tokenizer(ARCHITECTURE)(["a photo of a dog."]))
    return path, torch.nn.functional.normalize(text, dim=-1).numpy()


def test_an_architecture_loads_by_name_from_a_local_checkpoint(checkpoint):
    path, want = checkpoint
    encoder = OpenClipEncoder(ARCHITECTURE, str(path), device="cpu")
    assert encoder.device == "cpu" and encoder.weights_id.startswith(f"{ARCHITECTURE}:")
    np.testing.assert_allclose(encoder.encode_text(["a photo of a dog."]), want, rtol=0, atol=1e-5)


def test_an_unknown_pretrained_tag_stops_the_encoder_at_start_up():
    result = procs.cli([
        "serve", "clip-encoder", "--clip-model", ARCHITECTURE, "--clip-pretrained", "laion9b_no_such_tag",
        "--host", "127.0.0.1", "--port", "0",
    ])
    assert result.returncode == 1
    assert "unknown pretrained tag 'laion9b_no_such_tag' for CLIP ViT-S-32" in result.stderr
    assert "Traceback" not in result.stderr


def test_weights_are_never_silently_random():
    with pytest.raises(FailedPrecondition, match="no weights given for CLIP ViT-S-32"):
        load_clip(ARCHITECTURE, "")
    with pytest.raises(FailedPrecondition, match="brings its own weights from the hub"):
        load_clip("hf-hub:timm/ViT-B-16-SigLIP", "webli")
    with pytest.raises(FailedPrecondition, match=r"checkpoint /no/such/clip\.pt does not exist"):
        load_clip(ARCHITECTURE, "/no/such/clip.pt")
    with pytest.raises(FailedPrecondition, match="unknown CLIP model 'ViT-Q-99'"):
        load_clip("ViT-Q-99", NO_WEIGHTS)


def test_the_device_is_resolved_from_what_torch_sees():
    import torch

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda") == "cuda"
    else:
        with pytest.raises(FailedPrecondition, match="device cuda was asked for"):
            resolve_device("cuda")
    with pytest.raises(FailedPrecondition, match="device must be one of auto, cpu, cuda"):
        resolve_device("tpu")


def test_an_image_without_the_clip_extra_says_so_in_one_line(tmp_path):
    # What an image built without the `clip` extra has: no open_clip to import.
    blocked = tmp_path / "site"
    (blocked / "open_clip").mkdir(parents=True)
    (blocked / "open_clip" / "__init__.py").write_text("raise ImportError('No module named open_clip')\n")
    env = procs.test_env()
    env["PYTHONPATH"] = f"{blocked}:{env['PYTHONPATH']}"
    result = procs.cli(["serve", "clip-encoder", "--clip-model", ARCHITECTURE, "--clip-pretrained", "none",
                        "--store-address", "127.0.0.1:9", "--port", "0"], env=env, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "the CLIP encoder needs the clip extra" in result.stderr and "Traceback" not in result.stderr
