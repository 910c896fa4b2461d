from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from probelog.common.probe_sets import load_probe_set
from probelog_world.build import (
    CLIP_RN,
    CLIP_VIT,
    MARKER,
    PROBE_SETS,
    SCALES,
    ClipStage,
    Scale,
    build_world,
    is_complete,
)
from probelog_world.concepts import ConceptSet

MICRO = Scale(
    name="micro",
    clips=(
        ClipStage("clip-rn", CLIP_RN, steps=2, batch_size=16),
        ClipStage("clip-vit", CLIP_VIT, steps=2, batch_size=16),
    ),
    probes={"scenes": 64, "objects": 24, "noise": 24, "shifted": 24},
    eval_per_concept=1,
    supervised_foundations=("cnn-s",),
    foundation_per_concept=1,
    foundation_epochs=1,
    foundation_floor=0.0,
    clip_tower_floor=0.0,
    check_per_concept=1,
    train_per_concept=2,
    n_models=3,
    foundation_weights={"clip-rn": 1.0, "clip-vit": 1.0, "cnn-s": 1.0},
    min_classes=3,
    max_classes=6,
    mean_extra_classes=2.0,
    images_per_class=(2, 2),
    epochs=(1, 1),
    test_per_concept=1,
    background_size=40,
    measure_search=True,
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
    assert {"fine_top1", "coarse_top1", "text_selectivity", "loss_curve"} <= set(report)
    assert set(info["clips"]) == {"clip-rn", "clip-vit"}
    # Every foundation was checked on held-out images, and the hub's figures are recorded.
    assert set(info["foundations"]) == {"clip-rn", "clip-vit", "cnn-s"}
    assert all(0.0 <= f["heldout_accuracy"] <= 1.0 for f in info["foundations"].values())
    assert 0.0 < info["hub"]["mean_logit_pr_auc"] <= 1.0
    assert info["probelog_top1"]["n_logits"] == info["hub"]["n_logits"]
    assert 0.0 <= info["probelog_top1"]["top1"] <= info["probelog_top1"]["top5"] <= 1.0
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
        assert len(record["logit_accuracy"]) == len(record["concepts"]) == len(record["logit_pr_auc"])
        assert record["method"] in ("linear", "lp-ft", "scratch")
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


def test_scales_follow_their_budgets() -> None:
    # Competent foundations wherever quality is claimed; the tiny world makes no claim.
    assert SCALES["tiny"].foundation_floor == 0.0
    assert SCALES["demo"].foundation_floor >= 0.9 and SCALES["bench"].foundation_floor >= 0.9
    assert SCALES["demo"].clip_tower_floor >= 0.75 and SCALES["bench"].clip_tower_floor >= 0.75
    # More than one CLIP tower among the bench's foundations, and a carried CLIP for the demo.
    assert len(SCALES["bench"].clips) >= 2
    assert SCALES["demo"].clips[0].carried and SCALES["demo"].measure_search
    for scale in SCALES.values():
        assert set(scale.foundation_weights) == set(scale.foundations)


def test_cli_refuses_another_world_in_one_line(micro_world: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from probelog_world.cli import main

    assert main(["build", "--scale", "tiny", "--out", str(micro_world), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "built with" in err and "Traceback" not in err
    assert is_complete(micro_world, MICRO, 5)


def test_remove_stale_deletes_only_a_world_of_other_parameters(micro_world: Path, tmp_path: Path) -> None:
    from probelog_world.build import remove_stale

    assert not remove_stale(micro_world, MICRO, 5) and micro_world.is_dir()
    other = tmp_path / "other"
    (other / "work").mkdir(parents=True)
    (other / "work" / "build.json").write_text(json.dumps({"scale": "micro", "version": "0"}))
    assert remove_stale(other, MICRO, 5) and not other.exists()
