from __future__ import annotations

from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

from probelog_world.clip import (
    CLIP_MODEL_NAME,
    ClipArchitecture,
    ClipTraining,
    contrastive_loss,
    encode_images,
    encode_texts,
    load_clip,
    train_clip,
)
from probelog_world.concepts import ConceptSet
from probelog_world.render import render_objects, render_scenes


def test_contrastive_loss_is_clip_loss_with_shared_positives() -> None:
    torch.manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(5, 8), dim=-1)
    scale = torch.tensor(2.0)
    logits = scale.exp() * image @ text.T
    labels = torch.arange(5)
    # No repeated captions: exactly CLIP's symmetric InfoNCE.
    clip = 0.5 * (
        torch.nn.functional.cross_entropy(logits, labels)
        + torch.nn.functional.cross_entropy(logits.T, labels)
    )
    torch.testing.assert_close(contrastive_loss(image, text, scale, torch.eye(5, dtype=torch.bool)), clip)
    # Captions 0 and 1 identical: each of them spreads its target over both.
    same = torch.eye(5, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True
    target = same.float() / same.float().sum(1, keepdim=True)
    expected = 0.5 * (
        -(target * logits.log_softmax(1)).sum(1).mean() - (target.T * logits.T.log_softmax(1)).sum(1).mean()
    )
    torch.testing.assert_close(contrastive_loss(image, text, scale, same), expected)


def test_trained_clip_loads_through_open_clip_api(tmp_path: Path) -> None:
    concepts = ConceptSet()
    rng = np.random.default_rng(0)
    ids = np.arange(0, len(concepts.fine), 4)
    objects = render_objects(rng, concepts.fine_attributes[ids])
    scenes, contents = render_scenes(rng, 32, concepts.fine_attributes)
    report = train_clip(
        tmp_path / "clip",
        concepts,
        ClipArchitecture(),
        ClipTraining(steps=2, batch_size=16, warmup_steps=1),
        seed=0,
        eval_objects=(objects, ids),
        eval_scenes=(scenes, contents),
        progress=False,
    )
    assert 0.0 <= report["fine_top1"] <= 1.0 and 0.0 <= report["coarse_top1"] <= 1.0
    assert 0.0 <= report["scene_auc"] <= 1.0
    assert len(report["loss_curve"]) == 1
    assert (tmp_path / "clip" / f"{CLIP_MODEL_NAME}.json").is_file()

    model, preprocess, tokenizer = load_clip(tmp_path)
    # The plain open_clip calls give the same model.
    open_clip.add_model_config(tmp_path / "clip" / f"{CLIP_MODEL_NAME}.json")
    again, _, _ = open_clip.create_model_and_transforms(
        CLIP_MODEL_NAME, pretrained=str(tmp_path / "clip" / "checkpoint.pt")
    )
    again.eval()
    emb = encode_images(model, objects[:4])
    np.testing.assert_allclose(emb, encode_images(again, objects[:4]), atol=1e-5)
    assert emb.shape == (4, ClipArchitecture().embed_dim)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)

    # preprocess (PIL path) agrees with the array path used for probe sets.
    from PIL import Image

    with torch.no_grad():
        via_pil = model.encode_image(torch.stack([preprocess(Image.fromarray(im)) for im in objects[:4]]))
    via_pil = torch.nn.functional.normalize(via_pil, dim=-1).numpy()
    np.testing.assert_allclose(via_pil, emb, atol=1e-4)

    tokens = tokenizer(["a photo of a red striped circle."])
    assert tokens.shape == (1, ClipArchitecture().context_length)
    assert encode_texts(model, tokenizer, ["a", "b", "c"]).shape == (3, ClipArchitecture().embed_dim)


def _clip_command(out: Path, half: Path) -> None:
    import subprocess
    import sys

    subprocess.run(
        [sys.executable, "-m", "probelog_world", "clip", "--out", str(out), "--seed", "3", "--steps", "3",
         "--batch-size", "8", "--half", str(half), "--no-progress"],
        check=True, capture_output=True, timeout=300,
    )


def test_clip_command_reproduces_its_checkpoint(tmp_path: Path) -> None:
    """`probelog world clip` (what made the demo's carried checkpoint) gives the same weights when
    run again with the same arguments: here at small scale."""
    _clip_command(tmp_path / "a", tmp_path / "a.pt")
    _clip_command(tmp_path / "b", tmp_path / "b.pt")
    a = torch.load(tmp_path / "a.pt", weights_only=True)
    b = torch.load(tmp_path / "b.pt", weights_only=True)
    assert a["step"] == b["step"] == 3 and a["architecture"] == b["architecture"]
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
        assert value.dtype in (torch.float16, torch.int64), key


def test_carried_checkpoint_installs_as_a_world_clip(tmp_path: Path) -> None:
    from probelog_world.build import CLIP_RN
    from probelog_world.clip import install_carried

    _clip_command(tmp_path / "a", tmp_path / "a.pt")
    concepts = ConceptSet()
    ids = np.arange(0, len(concepts.fine), 8)
    objects = render_objects(np.random.default_rng(0), concepts.fine_attributes[ids])
    arch = ClipArchitecture(**CLIP_RN)
    training = ClipTraining(steps=3, batch_size=8)
    report = install_carried(
        tmp_path / "a.pt", tmp_path / "w" / "clip", CLIP_MODEL_NAME, arch, training, concepts, (objects, ids)
    )
    assert report["carried"] and 0.0 <= report["text_selectivity"] <= 1.0
    model, _, _ = load_clip(tmp_path / "w")
    open_clip.add_model_config(tmp_path / "a" / f"{CLIP_MODEL_NAME}.json")
    trained = open_clip.create_model(CLIP_MODEL_NAME, pretrained=str(tmp_path / "a" / "checkpoint.pt")).eval()
    # The installed CLIP is the trained one at float16 precision.
    np.testing.assert_allclose(encode_images(model, objects[:4]), encode_images(trained, objects[:4]), atol=2e-2)
    with pytest.raises(ValueError, match="architecture"):
        install_carried(
            tmp_path / "a.pt", tmp_path / "x", CLIP_MODEL_NAME, ClipArchitecture(**CLIP_RN, embed_dim=64),
            training, concepts, (objects, ids),
        )


def test_demo_carries_its_clip_checkpoint() -> None:
    """The demo scale's CLIP ships with the package: float16, at most 25 MB, of the scale's architecture."""
    import json
    from dataclasses import asdict

    from probelog_world.build import DATA_DIR, IMAGE_SIZE, SCALES

    stage = SCALES["demo"].clips[0]
    path = DATA_DIR / stage.carried
    assert path.stat().st_size <= 25 * 2**20
    saved = torch.load(path, map_location="cpu", weights_only=True)
    arch = ClipArchitecture(image_size=IMAGE_SIZE, **stage.architecture)
    assert saved["architecture"] == json.loads(json.dumps(asdict(arch)))
    assert saved["step"] == stage.steps
    assert {v.dtype for v in saved["state_dict"].values() if v.is_floating_point()} == {torch.float16}
