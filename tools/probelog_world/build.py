"""Build a world: images, the small CLIP, probe sets and the model hub, resumably.

``build_world(out, scale, seed)`` runs the stages below in order. Each stage's output is written
atomically and skipped when a later run finds it, so an interrupted build resumes where it
stopped (hub models are written one at a time); the finished world gets a ``BUILD_COMPLETE``
marker, after which ``build_world`` returns at once.

1. ``concepts.json``, ``background.txt``
2. held-out test objects (``eval/objects.npz``) and the probe sets (``probe_sets/*.npz``)
3. the CLIP (``clip/``), trained on freshly generated captioned images
4. foundation backbones (``work/foundations/``), pretrained on every fine concept
5. the hub (``hub/``), each model written as soon as it is trained; ``ground_truth.json``
6. ``world.json``, then the marker

Run it as ``python -m probelog_world build --scale tiny --seed 0 --out DIR``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from probelog.common.probe_sets import load_probe_set, save_probe_set
from probelog_world.concepts import ConceptSet, background_names, rng_for
from probelog_world.render import (
    IMAGE_SIZE,
    render_dead_leaves,
    render_objects,
    render_scenes,
    render_shifted,
)

logger = logging.getLogger(__name__)

#: Bump when the generator, the training recipes or the layout change: a world built by another
#: version is not reused.
VERSION = "2"
MARKER = "BUILD_COMPLETE"
PROBE_SETS = ("scenes", "objects", "noise", "shifted")
DEFAULT_PROBE_SET = "scenes"


@dataclass(frozen=True)
class Scale:
    """Sizes and training budgets of one build scale.

    Attributes
    ----------
    name : str
    clip_steps, clip_batch_size : int
        CLIP optimiser steps and batch size.
    probes : dict
        Probe set name -> number of images.
    eval_per_concept : int
        Held-out single-object images per fine concept (``eval/objects.npz``).
    foundation_architectures : tuple of str
        One foundation backbone is pretrained per architecture listed; the hub only uses these.
    foundation_per_concept, foundation_epochs : int
        Foundation pretraining data (images per fine concept) and epochs.
    train_per_concept : int
        Hub training pool: images per fine concept, shared by all hub models.
    n_models : int
    images_per_class, foundation_epochs_range, scratch_epochs_range : (int, int)
        Ranges the hub plan draws from.
    max_classes : int
        Largest label set of a hub model (the smallest is 5).
    background_size : int
        Names in ``background.txt``.
    clip_lr : float
        Peak CLIP learning rate.
    """

    name: str
    clip_steps: int
    clip_batch_size: int
    probes: dict[str, int]
    eval_per_concept: int
    foundation_architectures: tuple[str, ...]
    foundation_per_concept: int
    foundation_epochs: int
    train_per_concept: int
    n_models: int
    images_per_class: tuple[int, int]
    foundation_epochs_range: tuple[int, int]
    scratch_epochs_range: tuple[int, int]
    max_classes: int = 50
    background_size: int = 500
    clip_lr: float = 2e-3


SCALES: dict[str, Scale] = {
    "tiny": Scale(
        name="tiny",
        clip_steps=260,
        clip_batch_size=128,
        probes={"scenes": 1000, "objects": 500, "noise": 500, "shifted": 500},
        eval_per_concept=8,
        foundation_architectures=("mlp-s", "cnn-s", "resnet-s", "vit-s"),
        foundation_per_concept=12,
        foundation_epochs=3,
        train_per_concept=40,
        n_models=12,
        images_per_class=(24, 40),
        foundation_epochs_range=(3, 4),
        scratch_epochs_range=(6, 6),
        max_classes=20,
    ),
    "bench": Scale(
        name="bench",
        clip_steps=3000,
        clip_batch_size=256,
        probes={"scenes": 4000, "objects": 4000, "noise": 4000, "shifted": 4000},
        eval_per_concept=25,
        foundation_architectures=("mlp-s", "cnn-s", "resnet-s", "vit-s"),
        foundation_per_concept=40,
        foundation_epochs=6,
        train_per_concept=60,
        n_models=300,
        images_per_class=(30, 60),
        foundation_epochs_range=(2, 4),
        scratch_epochs_range=(5, 7),
    ),
}


def default_data_dir() -> Path:
    """Where worlds are cached: ``$PROBELOG_DATA_DIR``, else ``<repo>/.data`` in a checkout,
    else ``~/.cache/probelog``."""
    env = os.environ.get("PROBELOG_DATA_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[3]
    if (repo / "pyproject.toml").is_file():
        return repo / ".data"
    return Path.home() / ".cache" / "probelog"


def default_world_dir(scale: str = "tiny", seed: int = 0) -> Path:
    """``default_data_dir() / "world-<scale>-seed<seed>"``."""
    return default_data_dir() / f"world-{scale}-seed{seed}"


def is_complete(out: Path, scale: str | Scale | None = None, seed: int | None = None) -> bool:
    """Whether ``out`` holds a finished world.

    With ``scale`` and ``seed``, only one built by this version with exactly these parameters
    counts; otherwise any finished world of this version.
    """
    marker = Path(out) / MARKER
    if not marker.is_file():
        return False
    info = json.loads(marker.read_text())
    if scale is None or seed is None:
        return bool(info.get("version") == VERSION)
    if isinstance(scale, str):
        if scale not in SCALES:
            return False
        scale = SCALES[scale]
    return bool(info == _build_params(scale, seed))


def cached_world(scale: str = "tiny", seed: int = 0, progress: bool = False) -> Path:
    """The world of this scale and seed in the default data directory, built on first use.

    For test fixtures and the demo: the first call builds (tiny: a few minutes on two cores),
    later calls return at once. A cached world left by another version of this code is deleted
    and rebuilt.
    """
    out = default_world_dir(scale, seed)
    claim = out / "work" / "build.json"
    stale = (
        not is_complete(out, scale, seed)
        and claim.is_file()
        and json.loads(claim.read_text()) != _build_params(SCALES[scale], seed)
    )
    if stale:
        logger.info("replacing a world built by another version in %s", out)
        shutil.rmtree(out)
    return build_world(out, scale=scale, seed=seed, progress=progress)


def load_clip(world_dir: Path) -> tuple[Any, Any, Any]:
    """``(model, preprocess, tokenizer)`` of a world's CLIP via open_clip; see
    :func:`probelog_world.clip.load_clip`."""
    from probelog_world.clip import load_clip as _load_clip

    return _load_clip(Path(world_dir))


def build_world(
    out: Path,
    scale: str | Scale = "tiny",
    seed: int = 0,
    progress: bool = True,
    threads: int | None = None,
) -> Path:
    """Build (or finish building) a world in ``out`` and return ``out``.

    Parameters
    ----------
    out : pathlib.Path
        Output directory; created if missing. A finished world of the same version, scale and
        seed is returned as is; an unfinished one of the same parameters is resumed.
    scale : {"tiny", "bench"} or Scale
        A named scale, or a custom :class:`Scale` (tests use a miniature one).
    seed : int
        Everything random derives from it: the same seed gives the same images, probe-set ids
        and hub plan.
    progress : bool
        Show progress bars.
    threads : int, optional
        ``torch.set_num_threads`` for training; torch's default if None.

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    ValueError
        For an unknown scale, or if ``out`` holds a world built with other parameters.
    """
    if isinstance(scale, str):
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; choose one of {sorted(SCALES)}")
        scale = SCALES[scale]
    out = Path(out)
    if is_complete(out, scale, seed):
        return out
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    _claim(work / "build.json", _build_params(scale, seed), out)
    (out / MARKER).unlink(missing_ok=True)
    return _Builder(out, scale, int(seed), progress, threads).run()


def _build_params(scale: Scale, seed: int) -> dict[str, Any]:
    """What identifies a build: a directory started with other parameters is not resumed."""
    return {
        "scale": scale.name,
        "seed": int(seed),
        "version": VERSION,
        "image_size": IMAGE_SIZE,
        "parameters": json.loads(json.dumps(asdict(scale))),
    }


def _claim(path: Path, params: dict[str, Any], out: Path) -> None:
    """Record the build parameters, or refuse if ``out`` was started with others."""
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != params:
            raise ValueError(f"{out} holds a world built with {previous}, not {params}; choose another --out")
    else:
        write_json(path, params)


class _Builder:
    """The stages of one build; each method skips work already on disk."""

    def __init__(self, out: Path, scale: Scale, seed: int, progress: bool, threads: int | None):
        self.out = out
        self.scale = scale
        self.seed = seed
        self.progress = progress
        self.threads = threads
        self.concepts = ConceptSet()
        self.timings: dict[str, float] = {}
        timings_path = out / "work" / "timings.json"
        self.previous_timings: dict[str, float] = (
            json.loads(timings_path.read_text()) if timings_path.is_file() else {}
        )

    def run(self) -> Path:
        import torch

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        started = time.perf_counter()
        logger.info("building %s world (seed %d) in %s", self.scale.name, self.seed, self.out)
        self._timed("concepts", self.write_concepts)
        eval_images, eval_labels = self._timed("eval_images", self.write_eval_objects)
        probe_ids = self._timed("probe_sets", self.write_probe_sets)
        clip_report = self._timed("clip", lambda: self.train_clip(eval_images, eval_labels))
        self._timed("foundations", self.train_foundations)
        hub_summary = self._timed("hub", lambda: self.train_hub(eval_images))
        total = time.perf_counter() - started
        self._write_world_json(probe_ids, clip_report, hub_summary, total)
        write_json(self.out / MARKER, _build_params(self.scale, self.seed))
        logger.info("world built in %.0f s: %s", total, self.out)
        return self.out

    def _timed(self, stage: str, fn: Any) -> Any:
        t0 = time.perf_counter()
        result = fn()
        self.timings[stage] = round(time.perf_counter() - t0, 2)
        merged = {**self.previous_timings}
        merged[stage] = round(merged.get(stage, 0.0) + self.timings[stage], 2)
        self.previous_timings = merged
        write_json(self.out / "work" / "timings.json", merged)
        return result

    # -- 1. concepts --------------------------------------------------------------------------

    def write_concepts(self) -> None:
        write_json(self.out / "concepts.json", self.concepts.to_json())
        names = background_names(self.concepts, self.seed, self.scale.background_size)
        write_text(self.out / "background.txt", "".join(n + "\n" for n in names))

    # -- 2. evaluation images and probe sets --------------------------------------------------

    def write_eval_objects(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        path = self.out / "eval" / "objects.npz"
        if path.is_file():
            with np.load(path) as data:
                return data["images"], data["labels"]
        per = self.scale.eval_per_concept
        labels = np.repeat(np.arange(len(self.concepts.fine), dtype=np.int64), per)
        images = render_objects(
            rng_for(self.seed, "pool", "eval"), self.concepts.fine_attributes[labels], IMAGE_SIZE
        )
        write_npz(
            path,
            images=images,
            labels=labels,
            concept_names=np.array([c.name for c in self.concepts.fine]),
        )
        return images, labels

    def write_probe_sets(self) -> dict[str, dict[str, Any]]:
        """Write each probe set (and what it shows, under ``eval/``) unless already there."""
        ids: dict[str, dict[str, Any]] = {}
        fine = self.concepts.fine_attributes
        for name in PROBE_SETS:
            path = self.out / "probe_sets" / f"{name}.npz"
            n = self.scale.probes[name]
            if path.is_file():
                ids[name] = {"id": load_probe_set(path).probe_set_id, "n_probes": n}
                continue
            rng = rng_for(self.seed, "probes", name)
            contents: npt.NDArray[np.int64] | None
            if name == "scenes":
                images, contents = render_scenes(rng, n, fine, IMAGE_SIZE)
            elif name == "objects":
                contents = rng.integers(0, fine.shape[0], n).reshape(n, 1)
                images = render_objects(rng, fine[contents[:, 0]], IMAGE_SIZE)
            elif name == "shifted":
                contents = rng.integers(0, fine.shape[0], n).reshape(n, 1)
                images = render_shifted(rng, fine[contents[:, 0]], IMAGE_SIZE)
            else:
                images, contents = render_dead_leaves(rng, n, IMAGE_SIZE), None
            if contents is not None:
                write_npz(self.out / "eval" / f"probe_contents_{name}.npz", contents=contents)
            ids[name] = {"id": save_probe_set(path, f"world-{name}", images), "n_probes": n}
        return ids

    # -- 3. CLIP ------------------------------------------------------------------------------

    def train_clip(
        self, eval_images: npt.NDArray[np.uint8], eval_labels: npt.NDArray[np.int64]
    ) -> dict[str, Any]:
        from probelog_world.clip import (
            CHECKPOINT_NAME,
            REPORT_NAME,
            ClipArchitecture,
            ClipTraining,
            train_clip,
        )

        clip_dir = self.out / "clip"
        report_path = clip_dir / REPORT_NAME
        if (clip_dir / CHECKPOINT_NAME).is_file() and report_path.is_file():
            return dict(json.loads(report_path.read_text()))
        scenes = load_probe_set(self.out / "probe_sets" / "scenes.npz").images
        with np.load(self.out / "eval" / "probe_contents_scenes.npz") as data:
            contents = data["contents"]
        training = ClipTraining(
            steps=self.scale.clip_steps,
            batch_size=self.scale.clip_batch_size,
            lr=self.scale.clip_lr,
            warmup_steps=max(10, min(200, self.scale.clip_steps // 10)),
        )
        return train_clip(
            clip_dir,
            self.concepts,
            ClipArchitecture(image_size=IMAGE_SIZE),
            training,
            self.seed,
            (eval_images, eval_labels),
            (scenes, contents),
            progress=self.progress,
        )

    # -- 4. foundations -----------------------------------------------------------------------

    def _foundation_path(self, arch: str) -> Path:
        return self.out / "work" / "foundations" / f"{arch}.pt"

    def train_foundations(self) -> None:
        from probelog_world.hub import ObjectPool, train_foundation

        todo = [a for a in self.scale.foundation_architectures if not self._foundation_path(a).is_file()]
        if not todo:
            return
        pool = ObjectPool.generate(
            self.concepts, self.scale.foundation_per_concept, self.seed, "foundation", IMAGE_SIZE
        )
        reports_path = self.out / "work" / "foundations" / "reports.json"
        for arch in todo:
            report = train_foundation(
                arch,
                pool,
                self.scale.foundation_epochs,
                int(rng_for(self.seed, "foundation", arch).integers(2**31 - 1)),
                IMAGE_SIZE,
                self._foundation_path(arch),
                progress=self.progress,
            )
            reports = json.loads(reports_path.read_text()) if reports_path.is_file() else {}
            reports[arch] = report
            write_json(reports_path, reports)

    # -- 5. hub -------------------------------------------------------------------------------

    def train_hub(self, eval_images: npt.NDArray[np.uint8]) -> dict[str, Any]:
        import torch
        from tqdm import tqdm

        from probelog_world.export import export_to_repository
        from probelog_world.hub import HubPlan, ModelSpec, ObjectPool, plan_hub, train_hub_model

        plan = HubPlan(
            n_models=self.scale.n_models,
            architectures=self.scale.foundation_architectures,
            max_classes=self.scale.max_classes,
            foundation_epochs=self.scale.foundation_epochs_range,
            scratch_epochs=self.scale.scratch_epochs_range,
            images_per_class=self.scale.images_per_class,
        )
        specs = plan_hub(self.concepts, plan, self.seed)
        plan_path = self.out / "work" / "plan.json"
        plan_json = [s.to_json() for s in specs]
        if plan_path.is_file() and json.loads(plan_path.read_text()) != plan_json:
            raise ValueError(f"{plan_path} differs from this build's hub plan; rebuild from scratch")
        write_json(plan_path, plan_json)

        hub_dir = self.out / "hub"
        records_dir = self.out / "work" / "ground_truth"
        staging = self.out / "work" / "staging"
        staging.mkdir(parents=True, exist_ok=True)
        records_dir.mkdir(parents=True, exist_ok=True)

        def done(spec: ModelSpec) -> bool:
            return (hub_dir / spec.name / "1" / "model.onnx").is_file() and (
                records_dir / f"{spec.name}.json"
            ).is_file()

        todo = [s for s in specs if not done(s)]
        if todo:
            logger.info("hub: %d of %d models to train", len(todo), len(specs))
            train_pool = ObjectPool.generate(
                self.concepts, self.scale.train_per_concept, self.seed, "train", IMAGE_SIZE
            )
            test_pool = ObjectPool(eval_images, self.scale.eval_per_concept)
            foundations = {a: self._foundation_path(a) for a in self.scale.foundation_architectures}
            check = np.random.default_rng(0).random((4, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
            bar = tqdm(
                total=len(specs),
                initial=len(specs) - len(todo),
                desc="hub",
                unit="model",
                disable=not self.progress,
            )
            for spec in todo:
                model, record = train_hub_model(
                    spec,
                    self.concepts,
                    train_pool,
                    test_pool,
                    foundations,
                    IMAGE_SIZE,
                    test_per_class=self.scale.eval_per_concept,
                )
                # The record first, the model second: a model directory in the repository
                # always has its ground truth.
                write_json(records_dir / f"{spec.name}.json", record)
                with torch.no_grad():
                    export_to_repository(model, spec.name, hub_dir, IMAGE_SIZE, staging, check_images=check)
                bar.update(1)
                bar.set_postfix(acc=f"{record['test_accuracy']:.2f}")
            bar.close()
        shutil.rmtree(staging, ignore_errors=True)

        records = {s.name: json.loads((records_dir / f"{s.name}.json").read_text()) for s in specs}
        write_json(self.out / "ground_truth.json", {"models": records})
        return summarise_hub(records)

    # -- 6. world.json ------------------------------------------------------------------------

    def _write_world_json(
        self,
        probe_ids: dict[str, dict[str, Any]],
        clip_report: dict[str, Any],
        hub_summary: dict[str, Any],
        total_seconds: float,
    ) -> None:
        from probelog_world.clip import CLIP_MODEL_NAME

        info = {
            "scale": self.scale.name,
            "seed": self.seed,
            "version": VERSION,
            "image_size": IMAGE_SIZE,
            "clip_model_name": CLIP_MODEL_NAME,
            "clip_config": f"clip/{CLIP_MODEL_NAME}.json",
            "clip_checkpoint": "clip/checkpoint.pt",
            "zero_shot_template": clip_report.get("template"),
            "clip_zero_shot_top1": {
                "fine": clip_report.get("fine_top1"),
                "coarse": clip_report.get("coarse_top1"),
            },
            "clip_scene_auc": clip_report.get("scene_auc"),
            "default_probe_set": DEFAULT_PROBE_SET,
            "probe_sets": {
                name: {**meta, "path": f"probe_sets/{name}.npz"} for name, meta in probe_ids.items()
            },
            "n_concepts": {"fine": len(self.concepts.fine), "coarse": len(self.concepts.coarse)},
            "background_size": len((self.out / "background.txt").read_text().split("\n")) - 1,
            "hub": hub_summary,
            "scale_parameters": asdict(self.scale),
            "timings_seconds": {"this_run": self.timings, "all_runs": self.previous_timings},
            "build_seconds": round(total_seconds, 1),
        }
        write_json(self.out / "world.json", info)


def summarise_hub(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Counts and mean test accuracy of the hub, overall and per family, init and kind."""
    acc = np.array([r["test_accuracy"] for r in records.values()], dtype=np.float64)

    def by(key: str) -> dict[str, dict[str, float]]:
        groups: dict[str, list[float]] = {}
        for r in records.values():
            value = r[key].split(":")[0] if key == "init" else r[key]
            groups.setdefault(value, []).append(r["test_accuracy"])
        return {
            k: {"n_models": len(v), "mean_test_accuracy": round(float(np.mean(v)), 4)}
            for k, v in sorted(groups.items())
        }

    return {
        "n_models": len(records),
        "n_logits": int(sum(len(r["concepts"]) for r in records.values())),
        "n_distinct_concepts": len({c for r in records.values() for c in r["concepts"]}),
        "mean_test_accuracy": round(float(acc.mean()), 4) if acc.size else None,
        "min_test_accuracy": round(float(acc.min()), 4) if acc.size else None,
        "by_family": by("family"),
        "by_init": by("init"),
        "by_kind": by("kind"),
    }


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (temp file + rename)."""
    write_text(path, json.dumps(data, indent=1) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write text atomically (temp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_npz(path: Path, **arrays: Any) -> None:
    """``np.savez`` atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m probelog_world.build``: the same as ``probelog world``."""
    from probelog_world.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
