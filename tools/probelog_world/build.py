"""Build a world: images, the CLIPs, probe sets, foundations and the model hub, resumably.

``build_world(out, scale, seed)`` runs the stages below in order. Each stage's output is written
atomically and skipped when a later run finds it, so an interrupted build resumes where it
stopped (a CLIP from its last saved step, hub models one at a time); the finished world gets a
``BUILD_COMPLETE`` marker, after which ``build_world`` returns at once.

1. ``concepts.json``, ``background.txt``
2. held-out test objects (``eval/objects.npz``) and the probe sets (``probe_sets/*.npz``)
3. the CLIPs: the first is the world's search CLIP (``clip/``), trained on freshly generated
   captioned images or, at the demo scale, the checkpoint carried by this package; further
   ones (``work/clips/``) only give their image towers to the hub
4. foundations (``work/foundations/``): each CLIP's image tower with a linear probe, and
   backbones trained on every fine concept; each checked on held-out images against the
   scale's floor, and the build stops with an error below it
5. the hub (``hub/``), each model written as soon as it is trained; ``ground_truth.json``
6. at scales that ask for it, ProbeLog's own top-1 over the hub's concepts
7. ``world.json``, then the marker

Run it as ``probelog world build --scale tiny|demo|bench --seed 0 --out DIR``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from probelog.common.files import atomic_write
from probelog.common.probe_sets import load_probe_set, save_probe_set
from probelog.common.world_layout import WorldLayout
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
VERSION = "3"
MARKER = "BUILD_COMPLETE"
PROBE_SETS = ("scenes", "objects", "noise", "shifted")
DEFAULT_PROBE_SET = "scenes"
#: The directory of data files carried by this package (the demo's CLIP checkpoint).
DATA_DIR = Path(__file__).resolve().parent / "data"

#: Two CLIP architectures, in open_clip's config vocabulary (see
#: :class:`probelog_world.clip.ClipArchitecture`): a ModifiedResNet image tower (the RN50
#: family), which every scale trains, and a ViT one, which learns too slowly on two cores to
#: give a competent tower within the bench's budget (tests still build and export it).
CLIP_RN: dict[str, Any] = {}
CLIP_VIT: dict[str, Any] = {"layers": 4, "width": 128, "head_width": 32, "patch_size": 8, "mlp_ratio": 2.0}


@dataclass(frozen=True)
class ClipStage:
    """One CLIP of a world.

    Attributes
    ----------
    name : str
        Its name as a hub foundation (``clip-rn``); the first CLIP of a scale is also the world's
        search CLIP.
    architecture : dict
        Arguments of :class:`probelog_world.clip.ClipArchitecture` beyond the image size.
    steps, batch_size : int
    lr : float
        Peak learning rate.
    carried : str
        A checkpoint file in this package's ``data/`` to use instead of training.
    seed : int
        Added to the world's seed for this CLIP's training (two CLIPs of one architecture differ
        by it).
    """

    name: str
    architecture: dict[str, Any] = field(default_factory=dict)
    steps: int = 3000
    batch_size: int = 256
    lr: float = 2e-3
    carried: str = ""
    seed: int = 0


@dataclass(frozen=True)
class Scale:
    """Sizes and training budgets of one build scale.

    Attributes
    ----------
    name : str
    clips : tuple of ClipStage
        The first is the search CLIP; every CLIP's image tower is a hub foundation.
    probes : dict
        Probe set name -> number of images.
    eval_per_concept : int
        Held-out single-object images per fine concept (``eval/objects.npz``); the hub's test
        figures use at most ``test_per_concept`` of them.
    supervised_foundations : tuple of str
        Architectures trained on every fine concept as foundations.
    foundation_per_concept, foundation_epochs : int
        Their training data (images per fine concept) and epochs.
    foundation_floor : float
        The least held-out top-1 over all fine concepts a backbone trained on every fine concept
        must reach; the build stops with an error below it.
    clip_tower_floor : float
        The same for each CLIP image tower with a linear probe on its frozen embedding. A CLIP
        is not trained to classify, and its linear probe is checked against a floor of its own
        (a released CLIP ViT-B/32 reaches about 76% on ImageNet this way).
    check_per_concept : int
        Held-out images per fine concept for that check (a stream of its own).
    train_per_concept : int
        Hub training pool: images per fine concept, shared by all hub models.
    n_models : int
    foundation_weights : dict
        Foundation name -> relative share of the hub's foundation models.
    scratch_architectures : tuple of str
    min_classes, max_classes : int
    mean_extra_classes : float
    linear_fraction : float
    epochs, images_per_class : (int, int)
        See :class:`probelog_world.hub.HubPlan`.
    test_per_concept : int
    background_size : int
        Names in ``background.txt``.
    measure_search : bool
        Measure ProbeLog's top-1 over the hub's concepts at the end of the build (world.json's
        ``probelog_top1``).
    """

    name: str
    clips: tuple[ClipStage, ...]
    probes: dict[str, int]
    eval_per_concept: int
    supervised_foundations: tuple[str, ...]
    foundation_per_concept: int
    foundation_epochs: int
    foundation_floor: float
    clip_tower_floor: float
    check_per_concept: int
    train_per_concept: int
    n_models: int
    foundation_weights: dict[str, float]
    scratch_architectures: tuple[str, ...] = ("mlp-s", "cnn-s", "resnet-s", "vit-s")
    min_classes: int = 15
    max_classes: int = 200
    mean_extra_classes: float = 42.0
    linear_fraction: float = 0.4
    epochs: tuple[int, int] = (2, 5)
    images_per_class: tuple[int, int] = (30, 60)
    test_per_concept: int = 10
    background_size: int = 500
    measure_search: bool = False

    @property
    def foundations(self) -> tuple[str, ...]:
        """Every foundation: the CLIP towers, then the supervised backbones."""
        return tuple(c.name for c in self.clips) + self.supervised_foundations


SCALES: dict[str, Scale] = {
    # For tests: every stage runs, small; no quality claims.
    "tiny": Scale(
        name="tiny",
        clips=(ClipStage("clip-rn", CLIP_RN, steps=260, batch_size=128),),
        probes={"scenes": 1000, "objects": 500, "noise": 500, "shifted": 500},
        eval_per_concept=8,
        supervised_foundations=("cnn-s",),
        foundation_per_concept=12,
        foundation_epochs=3,
        foundation_floor=0.0,
        clip_tower_floor=0.0,
        check_per_concept=2,
        train_per_concept=30,
        n_models=12,
        foundation_weights={"clip-rn": 2.0, "cnn-s": 1.0},
        min_classes=8,
        max_classes=20,
        mean_extra_classes=5.0,
        images_per_class=(20, 30),
        epochs=(2, 3),
        test_per_concept=4,
        background_size=500,
    ),
    # What scripts/demo.sh builds: the CLIP carried by this package, competent foundations and a
    # hub as App. E's, in minutes.
    "demo": Scale(
        name="demo",
        clips=(ClipStage("clip-rn", CLIP_RN, steps=3000, batch_size=256, carried="clip-rn-seed0.pt"),),
        probes={"scenes": 2000, "objects": 1000, "noise": 500, "shifted": 1000},
        eval_per_concept=10,
        supervised_foundations=("cnn-s",),
        foundation_per_concept=120,
        foundation_epochs=8,
        foundation_floor=0.9,
        clip_tower_floor=0.75,
        check_per_concept=5,
        train_per_concept=40,
        n_models=40,
        foundation_weights={"clip-rn": 3.0, "cnn-s": 1.0},
        images_per_class=(25, 40),
        test_per_concept=10,
        measure_search=True,
    ),
    # For the quality report: the scale of the paper's experiments, about 2.5 hours on 2 cores.
    "bench": Scale(
        name="bench",
        # Two CLIPs of one architecture and two seeds: a ViT-tower CLIP trained for 1,200 steps
        # reached only 26.8% with a linear probe, far below the towers' floor.
        clips=(
            ClipStage("clip-rn", CLIP_RN, steps=3000, batch_size=256),
            ClipStage("clip-rn-s1", CLIP_RN, steps=3000, batch_size=256, seed=1),
        ),
        probes={"scenes": 4000, "objects": 4000, "noise": 4000, "shifted": 4000},
        eval_per_concept=25,
        supervised_foundations=("cnn-s", "resnet-s"),
        foundation_per_concept=120,
        foundation_epochs=12,
        foundation_floor=0.9,
        clip_tower_floor=0.75,
        check_per_concept=5,
        train_per_concept=60,
        n_models=300,
        foundation_weights={"clip-rn": 3.0, "clip-rn-s1": 3.0, "cnn-s": 1.5, "resnet-s": 1.5},
        images_per_class=(30, 60),
        test_per_concept=10,
    ),
}


def default_data_dir() -> Path:
    """Where worlds are cached: ``$PROBELOG_DATA_DIR``, else ``<repo>/.data`` in a checkout,
    else ``~/.cache/probelog``."""
    env = os.environ.get("PROBELOG_DATA_DIR")
    if env:
        return Path(env)
    repo = Path(__file__).resolve().parents[2]
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

    For test fixtures: the first call builds (tiny: a few minutes on two cores), later calls
    return at once. A cached world left by another version of this code is deleted and rebuilt.
    """
    out = default_world_dir(scale, seed)
    remove_stale(out, SCALES[scale], seed)
    return build_world(out, scale=scale, seed=seed, progress=progress)


def remove_stale(out: Path, scale: Scale, seed: int) -> bool:
    """Delete ``out`` if it holds a world (finished or not) built with other parameters.

    Returns
    -------
    bool
        Whether it was deleted.
    """
    claim = out / "work" / "build.json"
    stale = (
        not is_complete(out, scale, seed)
        and claim.is_file()
        and json.loads(claim.read_text()) != _build_params(scale, seed)
    )
    if stale:
        logger.info("replacing a world built by another version or with other parameters in %s", out)
        shutil.rmtree(out)
    return stale


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
        self.layout = WorldLayout(out)
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
        clip_reports = self._timed("clip", lambda: self.make_clips(eval_images, eval_labels))
        foundations = self._timed("foundations", self.make_foundations)
        hub_summary = self._timed("hub", lambda: self.train_hub(eval_images, eval_labels))
        search = self._timed("search", self.measure_search) if self.scale.measure_search else None
        total = time.perf_counter() - started
        self._write_world_json(probe_ids, clip_reports, foundations, hub_summary, search, total)
        write_json(self.layout.marker, _build_params(self.scale, self.seed))
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
        write_json(self.layout.concepts_json, self.concepts.to_json())
        names = background_names(self.concepts, self.seed, self.scale.background_size)
        write_text(self.layout.background, "".join(n + "\n" for n in names))

    # -- 2. evaluation images and probe sets --------------------------------------------------

    def write_eval_objects(self) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
        path = self.layout.eval_objects
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
            path = self.layout.probe_set(name)
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
                write_npz(self.layout.probe_contents(name), contents=contents)
            ids[name] = {"id": save_probe_set(path, f"world-{name}", images), "n_probes": n}
        return ids

    # -- 3. CLIPs -----------------------------------------------------------------------------

    def _clip_dir(self, index: int) -> Path:
        return self.layout.clip_dir if index == 0 else self.out / "work" / "clips" / self.scale.clips[index].name

    def make_clips(
        self, eval_images: npt.NDArray[np.uint8], eval_labels: npt.NDArray[np.int64]
    ) -> dict[str, dict[str, Any]]:
        """Train (or unpack) every CLIP; returns each one's report by name."""
        from probelog_world.clip import (
            CHECKPOINT_NAME,
            CLIP_MODEL_NAME,
            REPORT_NAME,
            ClipArchitecture,
            ClipTraining,
            check_report,
            install_carried,
            train_clip,
        )

        scenes = load_probe_set(self.layout.probe_set("scenes")).images
        with np.load(self.layout.probe_contents("scenes")) as data:
            contents = data["contents"]
        reports = {}
        for i, stage in enumerate(self.scale.clips):
            clip_dir = self._clip_dir(i)
            model_name = CLIP_MODEL_NAME if i == 0 else f"{CLIP_MODEL_NAME}-{stage.name}"
            arch = ClipArchitecture(image_size=IMAGE_SIZE, **stage.architecture)
            training = ClipTraining(
                steps=stage.steps,
                batch_size=stage.batch_size,
                lr=stage.lr,
                warmup_steps=max(10, min(200, stage.steps // 10)),
            )
            report_path = clip_dir / REPORT_NAME
            if (clip_dir / CHECKPOINT_NAME).is_file() and report_path.is_file():
                report = dict(json.loads(report_path.read_text()))
                check_report(report, arch, training, report_path)
            elif stage.carried:
                report = install_carried(
                    DATA_DIR / stage.carried, clip_dir, model_name, arch, training, self.concepts,
                    (eval_images, eval_labels), (scenes, contents),
                )
            else:
                report = train_clip(
                    clip_dir,
                    self.concepts,
                    arch,
                    training,
                    self.seed + stage.seed,
                    (eval_images, eval_labels),
                    (scenes, contents),
                    progress=self.progress,
                    model_name=model_name,
                )
            reports[stage.name] = report
        return reports

    # -- 4. foundations -----------------------------------------------------------------------

    def _foundation_path(self, name: str) -> Path:
        return self.out / "work" / "foundations" / f"{name}.pt"

    def make_foundations(self) -> dict[str, dict[str, Any]]:
        """Every foundation, checked on held-out images; returns each one's report by name."""
        import torch

        from probelog_world.clip import CHECKPOINT_NAME
        from probelog_world.hub import ObjectPool, clip_tower_foundation, train_foundation

        reports_path = self.out / "work" / "foundations" / "reports.json"
        reports: dict[str, dict[str, Any]] = (
            json.loads(reports_path.read_text()) if reports_path.is_file() else {}
        )
        todo = [n for n in self.scale.foundations if not self._foundation_path(n).is_file()]
        if todo:
            pool = ObjectPool.generate(
                self.concepts, self.scale.foundation_per_concept, self.seed, "foundation", IMAGE_SIZE
            )
            check = ObjectPool.generate(
                self.concepts, self.scale.check_per_concept, self.seed, "foundation-check", IMAGE_SIZE
            )
            for i, stage in enumerate(self.scale.clips):
                if stage.name not in todo:
                    continue
                clip_dir = self._clip_dir(i)
                (config_path,) = [p for p in clip_dir.glob("*.json") if p.name != "report.json"]
                state = torch.load(clip_dir / CHECKPOINT_NAME, map_location="cpu", weights_only=True)["state_dict"]
                visual = {k[len("visual.") :]: v.float() for k, v in state.items() if k.startswith("visual.")}
                reports[stage.name] = clip_tower_foundation(
                    stage.name,
                    json.loads(config_path.read_text()),
                    visual,
                    pool,
                    check,
                    self.scale.clip_tower_floor,
                    IMAGE_SIZE,
                    self._foundation_path(stage.name),
                )
                write_json(reports_path, reports)
            for arch in self.scale.supervised_foundations:
                if arch not in todo:
                    continue
                reports[arch] = train_foundation(
                    arch,
                    pool,
                    check,
                    self.scale.foundation_epochs,
                    self.scale.foundation_floor,
                    int(rng_for(self.seed, "foundation", arch).integers(2**31 - 1)),
                    IMAGE_SIZE,
                    self._foundation_path(arch),
                    progress=self.progress,
                )
                write_json(reports_path, reports)
        return {n: {k: v for k, v in reports[n].items() if k != "losses"} for n in self.scale.foundations}

    # -- 5. hub -------------------------------------------------------------------------------

    def hub_plan(self) -> list[Any]:
        from probelog_world.hub import HubPlan, plan_hub

        plan = HubPlan(
            n_models=self.scale.n_models,
            foundations=self.scale.foundations,
            foundation_weights=tuple(self.scale.foundation_weights[n] for n in self.scale.foundations),
            scratch_architectures=self.scale.scratch_architectures,
            min_classes=self.scale.min_classes,
            max_classes=self.scale.max_classes,
            mean_extra_classes=self.scale.mean_extra_classes,
            linear_fraction=self.scale.linear_fraction,
            epochs=self.scale.epochs,
            images_per_class=self.scale.images_per_class,
        )
        return plan_hub(self.concepts, plan, self.seed)

    def train_hub(
        self, eval_images: npt.NDArray[np.uint8], eval_labels: npt.NDArray[np.int64]
    ) -> dict[str, Any]:
        import torch
        from tqdm import tqdm

        from probelog_world.export import export_to_repository
        from probelog_world.hub import EvalSet, FoundationCache, ModelSpec, ObjectPool, train_hub_model

        specs = self.hub_plan()
        plan_path = self.out / "work" / "plan.json"
        plan_json = [s.to_json() for s in specs]
        if plan_path.is_file() and json.loads(plan_path.read_text()) != plan_json:
            raise ValueError(f"{plan_path} differs from this build's hub plan; rebuild from scratch")
        write_json(plan_path, plan_json)

        hub_dir = self.layout.hub
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
            keep = np.concatenate(
                [np.flatnonzero(eval_labels == c)[: self.scale.test_per_concept] for c in np.unique(eval_labels)]
            )
            eval_set = EvalSet(eval_images[keep], eval_labels[keep])
            foundations = FoundationCache(
                {n: self._foundation_path(n) for n in self.scale.foundations}, IMAGE_SIZE, train_pool, eval_set
            )
            check = np.random.default_rng(0).random((4, 3, IMAGE_SIZE, IMAGE_SIZE), dtype=np.float32)
            bar = tqdm(
                total=len(specs),
                initial=len(specs) - len(todo),
                desc="hub",
                unit="model",
                disable=not self.progress,
            )
            # Models of one foundation one after another: its features are computed once.
            for spec in sorted(todo, key=lambda s: (s.init, s.name)):
                model, record = train_hub_model(spec, self.concepts, train_pool, eval_set, foundations, IMAGE_SIZE)
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
        write_json(self.layout.ground_truth, {"models": records})
        return summarise_hub(records)

    # -- 6. ProbeLog on its own hub -----------------------------------------------------------

    def measure_search(self) -> dict[str, Any]:
        from probelog_world.evaluate import measure_probelog

        path = self.out / "work" / "search.json"
        if path.is_file():
            return dict(json.loads(path.read_text()))
        result = measure_probelog(self.layout)
        write_json(path, result)
        return result

    # -- 7. world.json ------------------------------------------------------------------------

    def _write_world_json(
        self,
        probe_ids: dict[str, dict[str, Any]],
        clip_reports: dict[str, dict[str, Any]],
        foundations: dict[str, dict[str, Any]],
        hub_summary: dict[str, Any],
        search: dict[str, Any] | None,
        total_seconds: float,
    ) -> None:
        from probelog_world.clip import CLIP_MODEL_NAME

        clip_report = clip_reports[self.scale.clips[0].name]
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
            "clip_text_selectivity": clip_report.get("text_selectivity"),
            "clips": {
                name: {k: r.get(k) for k in ("fine_top1", "coarse_top1", "scene_auc", "text_selectivity", "carried")}
                | {"steps": r.get("training", {}).get("steps")}
                for name, r in clip_reports.items()
            },
            "default_probe_set": DEFAULT_PROBE_SET,
            "probe_sets": {
                name: {**meta, "path": f"probe_sets/{name}.npz"} for name, meta in probe_ids.items()
            },
            "n_concepts": {"fine": len(self.concepts.fine), "coarse": len(self.concepts.coarse)},
            "background_size": len(self.layout.background.read_text().split("\n")) - 1,
            "foundations": foundations,
            "hub": hub_summary,
            "probelog_top1": search,
            "scale_parameters": asdict(self.scale),
            "timings_seconds": {"this_run": self.timings, "all_runs": self.previous_timings},
            "build_seconds": round(total_seconds, 1),
        }
        write_json(self.layout.world_json, info)


def summarise_hub(records: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Counts, mean test accuracy and mean logit PR-AUC of the hub, overall and by group."""
    acc = np.array([r["test_accuracy"] for r in records.values()], dtype=np.float64)
    pr_auc = np.array([v for r in records.values() for v in r.get("logit_pr_auc", [])], dtype=np.float64)
    sizes = np.array([len(r["concepts"]) for r in records.values()], dtype=np.float64)

    def by(key: str) -> dict[str, dict[str, float]]:
        groups: dict[str, list[dict[str, Any]]] = {}
        for r in records.values():
            value = r[key].split(":")[0] if key == "init" else r[key]
            groups.setdefault(value, []).append(r)
        return {
            k: {
                "n_models": len(v),
                "mean_test_accuracy": round(float(np.mean([r["test_accuracy"] for r in v])), 4),
                "mean_logit_pr_auc": round(float(np.mean([x for r in v for x in r.get("logit_pr_auc", [np.nan])])), 4),
            }
            for k, v in sorted(groups.items())
        }

    return {
        "n_models": len(records),
        "n_logits": int(sizes.sum()),
        "logits_per_model": {
            "mean": round(float(sizes.mean()), 1) if sizes.size else None,
            "min": int(sizes.min()) if sizes.size else None,
            "max": int(sizes.max()) if sizes.size else None,
        },
        "n_distinct_concepts": len({c for r in records.values() for c in r["concepts"]}),
        "mean_test_accuracy": round(float(acc.mean()), 4) if acc.size else None,
        "min_test_accuracy": round(float(acc.min()), 4) if acc.size else None,
        "mean_logit_pr_auc": round(float(pr_auc.mean()), 4) if pr_auc.size else None,
        "by_family": by("family"),
        "by_init": by("init"),
        "by_method": by("method"),
        "by_kind": by("kind"),
    }


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    write_text(path, json.dumps(data, indent=1) + "\n")


def write_text(path: Path, text: str) -> None:
    """Write text atomically."""
    atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def write_npz(path: Path, **arrays: Any) -> None:
    """``np.savez`` atomically."""
    atomic_write(path, lambda f: np.savez(f, **arrays))
