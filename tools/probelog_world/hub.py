"""The model hub: competent foundations, then many classifiers trained on concept subsets.

As the paper's INet-Hub (App. E), every hub model is a real classifier trained on a random
subset of 15 to 200 of the world's concepts, in a random label order, for 2 to 5 epochs. 90% start
from a competent foundation and 10% from scratch. The foundations are the image towers of the
world's CLIPs (most models, as the paper's hub fine-tunes CLIP image towers) and backbones trained
on every fine concept (the paper's ImageNet-12k model); each is checked to classify held-out images
well before any hub model uses it. A model from a foundation is either a linear head on the frozen
backbone, or a linear probe followed by a full fine-tune at a lower rate (LP-FT), which keeps
what the foundation knows. The whole hub is planned up front from the seed (:func:`plan_hub`),
so an interrupted build resumes with the same models under the same names.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from tqdm import tqdm

from probelog.common.files import atomic_write
from probelog.core.metrics import average_precision
from probelog_world.concepts import COARSE_KINDS, FINE, ConceptSet, rng_for
from probelog_world.models import (
    ARCHITECTURES,
    Architecture,
    Classifier,
    ClipVisualBackbone,
    clip_tower_architecture,
    param_groups,
)
from probelog_world.render import render_objects

logger = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


#: How a hub model is trained: a linear head on a frozen foundation, a linear probe then a full
#: fine-tune (LP-FT), or everything from random weights.
METHODS = ("linear", "lp-ft", "scratch")


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines one hub model before it is trained.

    Attributes
    ----------
    name : str
        Its name in the model repository (``hub-0000``); says nothing about its classes.
    architecture : str
        A key of :data:`~probelog_world.models.ARCHITECTURES`, or a foundation's name for a CLIP
        tower (its architecture comes from that CLIP's config).
    init : str
        ``"foundation:<name>"`` or ``"scratch"``.
    method : str
        One of :data:`METHODS`.
    kind : str
        ``"fine"`` or the coarse kind all its concepts share.
    concepts : tuple of str
        Concept names in logit order.
    epochs, images_per_class : int
        ``epochs`` counts the full passes of the fine-tune (LP-FT) or of training from scratch;
        a linear head is fitted to convergence on frozen features.
    lr : float
        Peak learning rate of those passes.
    seed : int
    """

    name: str
    architecture: str
    init: str
    method: str
    kind: str
    concepts: tuple[str, ...]
    epochs: int
    images_per_class: int
    lr: float
    seed: int

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "concepts": list(self.concepts)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelSpec:
        return cls(**{**data, "concepts": tuple(data["concepts"])})


@dataclass(frozen=True)
class HubPlan:
    """Parameters of a hub plan (see :func:`plan_hub`).

    Attributes
    ----------
    n_models : int
    foundations : tuple of str
        Foundation names (CLIP towers and supervised backbones) models may start from.
    foundation_weights : tuple of float
        Relative share of the foundation models drawn for each foundation (same order).
    scratch_architectures : tuple of str
        Architectures of the models trained from scratch.
    min_classes, max_classes : int
        Range of a model's label set (clipped to the size of its concept pool).
    mean_extra_classes : float
        A model has ``min_classes`` plus an exponentially distributed number of classes with this
        mean (capped at ``max_classes``): 15 + 42 gives a hub mean near the paper's 57.
    scratch_fraction, coarse_fraction : float
        Shares of models trained from scratch, and of models over coarse concepts of one kind.
    linear_fraction : float
        Share of the foundation models that are linear heads on the frozen backbone (the rest are
        LP-FT).
    epochs : (int, int)
        Range of epochs of a fine-tune or of training from scratch.
    images_per_class : (int, int)
    ft_lr, scratch_lr : float
        Peak learning rates of fine-tuning and of training from scratch.
    """

    n_models: int
    foundations: tuple[str, ...]
    foundation_weights: tuple[float, ...]
    scratch_architectures: tuple[str, ...]
    min_classes: int = 15
    max_classes: int = 200
    mean_extra_classes: float = 42.0
    scratch_fraction: float = 0.1
    coarse_fraction: float = 0.1
    linear_fraction: float = 0.4
    epochs: tuple[int, int] = (2, 5)
    images_per_class: tuple[int, int] = (40, 80)
    ft_lr: float = 3e-4
    scratch_lr: float = 3e-3


def plan_hub(concepts: ConceptSet, plan: HubPlan, seed: int) -> list[ModelSpec]:
    """Draw every hub model's foundation, method, concepts and schedule.

    A ``scratch_fraction`` of the models start from random weights, cycling through
    ``scratch_architectures``; the others start from a foundation drawn with
    ``foundation_weights`` (every foundation is used at least once when there are enough models),
    a ``linear_fraction`` of them as linear heads on the frozen backbone, the rest by LP-FT. A
    ``coarse_fraction`` classify coarse concepts of one kind (e.g. "colour shape" concepts), the
    others fine concepts. The label order is the order drawn.

    Returns
    -------
    list of ModelSpec
        ``n_models`` specs named ``hub-0000`` onwards.
    """
    if len(plan.foundations) != len(plan.foundation_weights):
        raise ValueError("foundations and foundation_weights differ in length")
    rng = rng_for(seed, "hub", "plan")
    n = plan.n_models
    n_scratch = round(n * plan.scratch_fraction)
    n_coarse = round(n * plan.coarse_fraction)
    scratch = np.zeros(n, dtype=bool)
    scratch[rng.choice(n, n_scratch, replace=False)] = True
    coarse = np.zeros(n, dtype=bool)
    coarse[rng.choice(n, n_coarse, replace=False)] = True
    n_found = n - n_scratch
    weights = np.asarray(plan.foundation_weights, dtype=np.float64)
    # Every foundation once, the rest in proportion to the weights, then shuffled.
    base = list(range(len(plan.foundations))) if n_found >= len(plan.foundations) else []
    extra = rng.choice(len(plan.foundations), n_found - len(base), p=weights / weights.sum())
    found_order = rng.permutation(np.concatenate([np.asarray(base, dtype=np.int64), extra]))
    n_linear = round(n_found * plan.linear_fraction)
    linear = np.zeros(n_found, dtype=bool)
    linear[rng.choice(n_found, n_linear, replace=False)] = True
    specs = []
    f = s = 0
    for i in range(n):
        kind = FINE if not coarse[i] else COARSE_KINDS[int(rng.integers(0, len(COARSE_KINDS)))]
        pool = concepts.of_kind(kind)
        hi = min(plan.max_classes, len(pool))
        lo = min(plan.min_classes, hi)
        k = min(hi, lo + int(rng.exponential(plan.mean_extra_classes)))
        chosen = rng.choice(len(pool), k, replace=False)
        if scratch[i]:
            arch = plan.scratch_architectures[s % len(plan.scratch_architectures)]
            init, method, lr = "scratch", "scratch", plan.scratch_lr
            s += 1
        else:
            arch = plan.foundations[int(found_order[f])]
            init, method, lr = f"foundation:{arch}", "linear" if linear[f] else "lp-ft", plan.ft_lr
            f += 1
        specs.append(
            ModelSpec(
                name=f"hub-{i:04d}",
                architecture=arch,
                init=init,
                method=method,
                kind=kind,
                concepts=tuple(pool[int(j)].name for j in chosen),
                epochs=int(rng.integers(plan.epochs[0], plan.epochs[1] + 1)),
                images_per_class=int(rng.integers(plan.images_per_class[0], plan.images_per_class[1] + 1)),
                lr=float(lr * rng.uniform(0.7, 1.3)),
                seed=int(rng.integers(0, 2**31 - 1)),
            )
        )
    return specs


class ObjectPool:
    """Single-object images, a fixed number per fine concept.

    Parameters
    ----------
    images : ndarray of shape (n_fine * per_concept, H, W, 3), uint8
        Grouped by concept: rows ``i * per_concept`` to ``(i + 1) * per_concept - 1`` show fine
        concept ``i``.
    per_concept : int
    """

    def __init__(self, images: U8, per_concept: int) -> None:
        if images.shape[0] % per_concept:
            raise ValueError("pool size is not a multiple of per_concept")
        self.images = images
        self.per_concept = per_concept
        self.n_fine = images.shape[0] // per_concept

    @classmethod
    def generate(
        cls, concepts: ConceptSet, per_concept: int, seed: int, stream: str, image_size: int
    ) -> ObjectPool:
        """Render ``per_concept`` fresh images of every fine concept from the named stream."""
        rng = rng_for(seed, "pool", stream)
        ids = np.repeat(np.arange(len(concepts.fine)), per_concept)
        return cls(render_objects(rng, concepts.fine_attributes[ids], image_size), per_concept)

    @property
    def labels(self) -> I64:
        """Fine concept index of every image, shape (n,), int64."""
        return np.repeat(np.arange(self.n_fine, dtype=np.int64), self.per_concept)

    def sample(self, rng: np.random.Generator, members: I64, count: int, replace: bool = False) -> I64:
        """Row indices of ``count`` images whose concept is one of ``members`` (fine indices)."""
        total = members.size * self.per_concept
        picks = rng.choice(total, count, replace=replace or count > total)
        rows = members[picks // self.per_concept] * self.per_concept + picks % self.per_concept
        return np.asarray(rows, dtype=np.int64)


def _to_tensor(images: U8) -> torch.Tensor:
    """uint8 (n, H, W, 3) -> float32 (n, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and a random shift of up to 2 px (whole batch).

    The shift pads by replicating the border, so nothing wraps around from the opposite edge.
    """
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dy, dx = (int(v) + 2 for v in torch.randint(-2, 3, (2,), generator=gen))
    h, w = x.shape[2], x.shape[3]
    return F.pad(x, (2, 2, 2, 2), mode="replicate")[:, :, dy : dy + h, dx : dx + w]


def fit(
    model: Classifier,
    images: U8,
    labels: I64,
    epochs: int,
    lr: float,
    seed: int,
    batch_size: int = 64,
    weight_decay: float = 0.05,
    progress: tqdm | None = None,
) -> list[float]:
    """Train a classifier with AdamW, warm-up and cosine decay, cross-entropy.

    Norms, biases and other one-dimensional parameters are not decayed.

    Parameters
    ----------
    model : Classifier
    images : ndarray of shape (n, H, W, 3), uint8
    labels : ndarray of shape (n,), int64
        Class index per image, in ``[0, n_classes)``.
    epochs : int
    lr : float
        Peak learning rate.
    seed : int
        Order of batches and augmentation.
    batch_size : int
    weight_decay : float
    progress : tqdm, optional
        A bar advanced once per epoch.

    Returns
    -------
    list of float
        Mean training loss per epoch.
    """
    gen = torch.Generator().manual_seed(int(seed))
    # Kept as uint8 and converted per batch: a float copy of a foundation pool is a gigabyte.
    x_all = torch.from_numpy(np.ascontiguousarray(images))
    y_all = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    steps_per_epoch = math.ceil(len(y_all) / batch_size)
    total = epochs * steps_per_epoch
    warmup = max(1, total // 10)
    optimiser = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda s: (
            (s + 1) / warmup
            if s < warmup
            else 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup)))
        ),
    )
    model.train()
    losses = []
    for _ in range(epochs):
        order = torch.randperm(len(y_all), generator=gen)
        running = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            if len(idx) < 2:
                continue  # batch norm cannot train on one image
            x = x_all[idx].permute(0, 3, 1, 2).float().div_(255.0)
            loss = F.cross_entropy(model(_augment(x, gen)), y_all[idx], label_smoothing=0.05)
            optimiser.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            optimiser.step()
            schedule.step()
            running += loss.item() * len(idx)
        losses.append(running / len(y_all))
        if progress is not None:
            progress.update(1)
            progress.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses


@torch.no_grad()
def predict(model: Classifier, images: U8, batch_size: int = 512) -> npt.NDArray[np.float32]:
    """Logits of shape (n, n_classes), float32, for uint8 images (n, H, W, 3)."""
    model.eval()
    out = [model(_to_tensor(images[s : s + batch_size])) for s in range(0, len(images), batch_size)]
    return torch.cat(out).numpy().astype(np.float32)


@torch.no_grad()
def features(model: Classifier, images: U8, batch_size: int = 512) -> npt.NDArray[np.float32]:
    """The backbone's output (the head's input), shape (n, out_features), float32."""
    model.eval()
    out = [
        model.backbone(model.normalise(_to_tensor(images[s : s + batch_size])))
        for s in range(0, len(images), batch_size)
    ]
    return torch.cat(out).numpy().astype(np.float32)


def fit_linear_head(
    head: torch.nn.Linear, feats: npt.NDArray[np.float32], labels: I64, l2: float = 1e-4, iterations: int = 100
) -> float:
    """Fit a linear head to frozen features by full-batch L-BFGS (multinomial logistic regression).

    Parameters
    ----------
    head : torch.nn.Linear
        Updated in place; ``in_features`` equals ``feats.shape[1]``.
    feats : ndarray of shape (n, d), float32
    labels : ndarray of shape (n,), int64
    l2 : float
        Weight of ``||W||^2`` (the bias is not penalised).
    iterations : int

    Returns
    -------
    float
        The final training loss (cross-entropy plus penalty).
    """
    x = torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))
    y = torch.from_numpy(np.asarray(labels, dtype=np.int64))
    optimiser = torch.optim.LBFGS(
        head.parameters(), lr=1.0, max_iter=iterations, history_size=20, line_search_fn="strong_wolfe"
    )

    def closure() -> torch.Tensor:
        optimiser.zero_grad(set_to_none=True)
        loss = F.cross_entropy(head(x), y) + l2 * head.weight.pow(2).sum()
        torch.autograd.backward(loss)
        return loss

    with torch.enable_grad():
        optimiser.step(closure)
        return float(closure().item())


class FoundationTooWeakError(RuntimeError):
    """A foundation classifies held-out images worse than the scale's floor."""


def save_foundation(model: Classifier, arch: Architecture, path: Path, report: dict[str, Any]) -> None:
    """Write a foundation (architecture, weights, report) atomically."""
    state = {"architecture": asdict(arch), "state_dict": model.state_dict(), "report": report}
    atomic_write(path, lambda f: torch.save(state, f))


def load_foundation(path: Path, image_size: int) -> tuple[Classifier, Architecture]:
    """A foundation as saved by :func:`save_foundation`: the classifier over all fine concepts."""
    saved = torch.load(path, map_location="cpu", weights_only=True)
    arch = Architecture(**saved["architecture"])
    head = saved["state_dict"]["head.weight"]
    model = arch.build(image_size, int(head.shape[0]))
    model.load_state_dict(saved["state_dict"])
    return model.eval(), arch


def heldout_accuracy(model: Classifier, check: ObjectPool) -> float:
    """Top-1 accuracy over all fine concepts on held-out single objects."""
    return float(np.mean(predict(model, check.images).argmax(axis=1) == check.labels))


def train_foundation(
    architecture: str,
    pool: ObjectPool,
    check: ObjectPool,
    epochs: int,
    floor: float,
    seed: int,
    image_size: int,
    path: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Train a backbone on every fine concept of the world, check it, and save it.

    The analogue of an ImageNet-12k checkpoint: a classifier over all fine concepts, trained on
    the foundation pool (never the hub's own images) and checked on held-out images.

    Returns
    -------
    dict
        ``architecture``, ``epochs``, ``heldout_accuracy``, ``train_seconds``, ``losses``.

    Raises
    ------
    FoundationTooWeakError
        If the held-out accuracy is below ``floor``; nothing is saved then.
    """
    started = time.perf_counter()
    torch.manual_seed(seed)
    arch = ARCHITECTURES[architecture]
    model = arch.build(image_size, pool.n_fine)
    with tqdm(total=epochs, desc=f"foundation {architecture}", disable=not progress, leave=False) as bar:
        losses = fit(model, pool.images, pool.labels, epochs, 2e-3, seed, batch_size=128, progress=bar)
    accuracy = heldout_accuracy(model, check)
    seconds = time.perf_counter() - started
    report = {
        "architecture": architecture,
        "kind": "supervised",
        "epochs": epochs,
        "n_train_images": len(pool.images),
        "heldout_accuracy": round(accuracy, 4),
        "train_seconds": round(seconds, 1),
        "losses": losses,
    }
    logger.info("foundation %s: %d epochs in %.0f s, held-out accuracy %.3f", architecture, epochs, seconds, accuracy)
    if accuracy < floor:
        raise FoundationTooWeakError(
            f"foundation {architecture} classifies held-out objects at {accuracy:.1%}, below the floor of "
            f"{floor:.0%} after {epochs} epochs on {len(pool.images)} images: train it longer"
        )
    save_foundation(model, arch, path, report)
    return report


def clip_tower_foundation(
    name: str,
    clip_config: dict[str, Any],
    visual_state: dict[str, torch.Tensor],
    pool: ObjectPool,
    check: ObjectPool,
    floor: float,
    image_size: int,
    path: Path,
) -> dict[str, Any]:
    """Make a CLIP's image tower a foundation: the tower plus a linear head over all fine concepts.

    The head is fitted on the tower's frozen features of the foundation pool; the held-out check
    is that linear probe's accuracy.

    Parameters
    ----------
    name : str
        The foundation's name (its architecture name in the hub, e.g. ``clip-rn``).
    clip_config : dict
        The CLIP's open_clip model config.
    visual_state : dict
        The state dict of the CLIP's ``visual`` module.

    Raises
    ------
    FoundationTooWeakError
        If the linear probe's held-out accuracy is below ``floor``; nothing is saved then.
    """
    started = time.perf_counter()
    arch = clip_tower_architecture(name, clip_config)
    model = arch.build(image_size, pool.n_fine)
    backbone = model.backbone
    assert isinstance(backbone, ClipVisualBackbone)
    backbone.visual.load_state_dict(visual_state)
    loss = fit_linear_head(model.head, features(model, pool.images), pool.labels)
    accuracy = heldout_accuracy(model, check)
    seconds = time.perf_counter() - started
    report = {
        "architecture": name,
        "kind": "clip-tower",
        "n_train_images": len(pool.images),
        "linear_probe_loss": round(loss, 4),
        "heldout_accuracy": round(accuracy, 4),
        "train_seconds": round(seconds, 1),
    }
    logger.info("foundation %s (CLIP tower): linear probe held-out accuracy %.3f", name, accuracy)
    if accuracy < floor:
        raise FoundationTooWeakError(
            f"the image tower {name} reaches {accuracy:.1%} held-out accuracy with a linear probe, below the "
            f"floor of {floor:.0%}: train its CLIP longer"
        )
    save_foundation(model, arch, path, report)
    return report


class EvalSet:
    """Held-out single objects with their fine concepts, for a hub model's test figures.

    Parameters
    ----------
    images : ndarray of shape (n, H, W, 3), uint8
    labels : ndarray of shape (n,), int64
        Fine concept index of each image.
    """

    def __init__(self, images: U8, labels: I64) -> None:
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)

    def class_of(self, members: list[I64]) -> I64:
        """Per image, the index of the class (a list of fine members each) showing it, or -1."""
        out = np.full(self.labels.shape, -1, dtype=np.int64)
        for c, m in enumerate(members):
            out[np.isin(self.labels, m)] = c
        return out


def evaluate(logits: npt.NDArray[np.float32], eval_set: EvalSet, members: list[I64]) -> dict[str, Any]:
    """A hub model's test accuracy and per-logit PR-AUC.

    Parameters
    ----------
    logits : ndarray of shape (n_images, n_classes), float32
        The model's logits on ``eval_set.images``.
    members : list of ndarray
        Fine concept indices of each class.

    Returns
    -------
    dict
        ``test_accuracy``: top-1 over the model's own classes on the images of those classes;
        ``logit_accuracy``: per class, its recall among them; ``logit_pr_auc``: per logit, the
        average precision of its raw value at telling the class's images from all held-out
        images (every fine concept, one against all, as the paper's Table 3 scores a logit on
        the whole ImageNet test set).
    """
    cls = eval_set.class_of(members)
    own = cls >= 0
    pred = logits[own].argmax(axis=1)
    correct = pred == cls[own]
    return {
        "test_accuracy": float(correct.mean()),
        "logit_accuracy": [float(correct[cls[own] == c].mean()) for c in range(len(members))],
        "logit_pr_auc": [average_precision(logits[:, c], cls == c) for c in range(len(members))],
        "n_test_images": int(own.sum()),
    }


class FoundationCache:
    """Foundations loaded once, with their frozen features of the training pool and eval set."""

    def __init__(self, paths: dict[str, Path], image_size: int, train_pool: ObjectPool, eval_set: EvalSet) -> None:
        self.paths = paths
        self.image_size = image_size
        self.train_pool = train_pool
        self.eval_set = eval_set
        self._loaded: dict[str, tuple[Classifier, Architecture, npt.NDArray[np.float32], npt.NDArray[np.float32]]] = {}

    def get(self, name: str) -> tuple[Classifier, Architecture, npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """``(model, architecture, train_features, eval_features)``; the model is a fresh copy."""
        if name not in self._loaded:
            model, arch = load_foundation(self.paths[name], self.image_size)
            self._loaded[name] = (
                model,
                arch,
                features(model, self.train_pool.images),
                features(model, self.eval_set.images),
            )
        model, arch, train_f, eval_f = self._loaded[name]
        return copy.deepcopy(model), arch, train_f, eval_f


def train_hub_model(
    spec: ModelSpec,
    concepts: ConceptSet,
    train_pool: ObjectPool,
    eval_set: EvalSet,
    foundations: FoundationCache | None,
    image_size: int,
) -> tuple[Classifier, dict[str, Any]]:
    """Train one hub model and measure it on held-out images.

    A ``linear`` model is its foundation with a fresh head fitted on frozen features; an
    ``lp-ft`` model fits that head first, then fine-tunes everything at ``spec.lr`` for
    ``spec.epochs``; a ``scratch`` model trains from random weights.

    Parameters
    ----------
    spec : ModelSpec
    concepts : ConceptSet
    train_pool : ObjectPool
        Training images (disjoint from the held-out ones).
    eval_set : EvalSet
        Held-out images, for :func:`evaluate`.
    foundations : FoundationCache
        Needed unless ``spec.init == "scratch"``.
    image_size : int

    Returns
    -------
    model : Classifier
        Trained, in eval mode.
    record : dict
        The model's ground-truth entry: ``concepts`` (logit order), ``architecture``, ``family``,
        ``init``, ``method``, ``kind``, ``test_accuracy``, ``logit_accuracy``, ``logit_pr_auc``,
        ``epochs``, ``n_train_images``, ``n_parameters``, ``train_seconds``.
    """
    started = time.perf_counter()
    rng = rng_for(spec.seed, "hub-model", spec.name)
    torch.manual_seed(spec.seed)
    n_classes = len(spec.concepts)
    members = [concepts.members(name) for name in spec.concepts]
    rows = [train_pool.sample(rng, m, spec.images_per_class) for m in members]
    train_idx = np.concatenate(rows)
    train_labels = np.repeat(np.arange(n_classes), [len(r) for r in rows])
    losses: list[float] = []
    if spec.method == "scratch":
        arch = ARCHITECTURES[spec.architecture]
        model = arch.build(image_size, n_classes)
        losses = fit(model, train_pool.images[train_idx], train_labels, spec.epochs, spec.lr, spec.seed)
        eval_logits = predict(model, eval_set.images)
    else:
        if foundations is None:
            raise ValueError(f"{spec.name} starts from a foundation, but none were given")
        model, arch, train_f, eval_f = foundations.get(spec.init.split(":", 1)[1])
        model.replace_head(n_classes)
        losses.append(fit_linear_head(model.head, train_f[train_idx], train_labels))
        if spec.method == "lp-ft":
            losses += fit(model, train_pool.images[train_idx], train_labels, spec.epochs, spec.lr, spec.seed)
            eval_logits = predict(model, eval_set.images)
        else:
            with torch.no_grad():
                eval_logits = model.head(torch.from_numpy(eval_f)).numpy()
    record = {
        "concepts": list(spec.concepts),
        "architecture": arch.name,
        "family": arch.family,
        "init": spec.init,
        "method": spec.method,
        "kind": spec.kind,
        **evaluate(eval_logits, eval_set, members),
        "epochs": 0 if spec.method == "linear" else spec.epochs,
        "lr": spec.lr,
        "n_train_images": len(train_idx),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "final_train_loss": losses[-1],
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    return model.eval(), record
