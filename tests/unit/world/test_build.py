from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from probelog.common.probe_sets import load_probe_set
from probelog_world.build import MARKER, PROBE_SETS, Scale, build_world, is_complete
from probelog_world.concepts import ConceptSet

MICRO = Scale(
    name="micro",
    clip_steps=2,
    clip_batch_size=16,
    probes={"scenes": 48, "objects": 24, "noise": 24, "shifted": 24},
    eval_per_concept=1,
    foundation_architectures=("mlp-s", "cnn-s"),
    foundation_per_concept=1,
    foundation_epochs=1,
    train_per_concept=2,
    n_models=3,
    images_per_class=(2, 2),
    foundation_epochs_range=(1, 1),
    scratch_epochs_range=(1, 1),
    max_classes=6,
    background_size=40,
)


@pytest.fixture(scope="module")
def micro_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_world(tmp_path_factory.mktemp("world") / "w", MICRO, seed=5, progress=False)


def test_layout(micro_world: Path) -> None:
    info = json.loads((micro_world / "world.json").read_text())
    assert info["scale"] == "micro" and info["seed"] == 5 and info["image_size"] == 48
    name = info["clip_model_name"]
    assert (micro_world / "clip" / f"{name}.json").is_file()
    assert (micro_world / "clip" / "checkpoint.pt").is_file()
    report = json.loads((micro_world / "clip" / "report.json").read_text())
    assert {"fine_top1", "coarse_top1", "loss_curve"} <= set(report)
    for probe_set in PROBE_SETS:
        loaded = load_probe_set(micro_world / "probe_sets" / f"{probe_set}.npz")
        assert loaded.images.shape == (MICRO.probes[probe_set], 48, 48, 3)
        assert info["probe_sets"][probe_set]["id"] == loaded.probe_set_id
    concepts = json.loads((micro_world / "concepts.json").read_text())
    names = {c["name"] for c in concepts}
    background = (micro_world / "background.txt").read_text().splitlines()
    assert len(background) == 40 and set(background) <= names
    with np.load(micro_world / "eval" / "objects.npz") as data:
        assert data["images"].shape == (len(ConceptSet().fine), 48, 48, 3)


def test_hub_and_ground_truth(micro_world: Path) -> None:
    truth = json.loads((micro_world / "ground_truth.json").read_text())["models"]
    assert sorted(truth) == ["hub-0000", "hub-0001", "hub-0002"]
    hub_files = sorted(
        str(p.relative_to(micro_world / "hub")) for p in (micro_world / "hub").rglob("*") if p.is_file()
    )
    assert hub_files == [f"hub-000{i}/{f}" for i in range(3) for f in ("1/model.onnx", "config.pbtxt")]
    all_names = {c["name"] for c in json.loads((micro_world / "concepts.json").read_text())}
    for name, record in truth.items():
        assert set(record["concepts"]) <= all_names
        assert len(record["logit_accuracy"]) == len(record["concepts"])
        config = (micro_world / "hub" / name / "config.pbtxt").read_text()
        assert f"dims: [ {len(record['concepts'])} ]" in config
        assert not any(c in config for c in record["concepts"])


def test_finished_build_is_cached_and_interrupted_build_resumes(micro_world: Path) -> None:
    assert is_complete(micro_world, MICRO, 5) and is_complete(micro_world)
    assert not is_complete(micro_world, MICRO, 6) and not is_complete(micro_world, "tiny", 5)
    stamp = (micro_world / "world.json").stat().st_mtime_ns
    build_world(micro_world, MICRO, seed=5, progress=False)
    assert (micro_world / "world.json").stat().st_mtime_ns == stamp

    # Simulate an interruption after two models: the third model and the marker are missing.
    kept = {
        n: (micro_world / "hub" / n / "1" / "model.onnx").stat().st_mtime_ns for n in ("hub-0000", "hub-0001")
    }
    ids = json.loads((micro_world / "world.json").read_text())["probe_sets"]
    (micro_world / MARKER).unlink()
    import shutil

    shutil.rmtree(micro_world / "hub" / "hub-0002")
    build_world(micro_world, MICRO, seed=5, progress=False)
    assert is_complete(micro_world, MICRO, 5)
    assert (micro_world / "hub" / "hub-0002" / "1" / "model.onnx").is_file()
    for name, mtime in kept.items():
        assert (micro_world / "hub" / name / "1" / "model.onnx").stat().st_mtime_ns == mtime
    assert json.loads((micro_world / "world.json").read_text())["probe_sets"] == ids


def test_refuses_to_mix_worlds(micro_world: Path) -> None:
    with pytest.raises(ValueError, match=r"built with"):
        build_world(micro_world, MICRO, seed=6, progress=False)
