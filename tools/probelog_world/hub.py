"""The model hub: foundation backbones, then many classifiers fine-tuned on concept subsets.

As the paper's INet-Hub (App. E), every hub model is a real classifier trained on a random
subset of the world's concepts, in a random label order, for a few epochs: most start from a
"foundation" backbone pretrained on every fine concept of the world, some from scratch. The
whole hub is planned up front from the seed (:func:`plan_hub`), so an interrupted build resumes
with the same models under the same names.
"""

from __future__ import annotations

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

from probelog_world.concepts import COARSE_KINDS, FINE, ConceptSet, rng_for
from probelog_world.models import ARCHITECTURES, Classifier
from probelog_world.render import render_objects

logger = logging.getLogger(__name__)

U8 = npt.NDArray[np.uint8]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines one hub model before it is trained.

    Attributes
    ----------
    name : str
        Its name in the model repository (``hub-0000``); says nothing about its classes.
    architecture : str
        A key of :data:`~probelog_world.models.ARCHITECTURES`.
    init : str
        ``"foundation:<architecture>"`` or ``"scratch"``.
    kind : str
        ``"fine"`` or the coarse kind all its concepts share.
    concepts : tuple of str
        Concept names in logit order.
    epochs, images_per_class : int
    lr : float
    seed : int
    """

    name: str
    architecture: str
    init: str
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
    """Parameters of a hub plan (see :func:`plan_hub`)."""

    n_models: int
    architectures: tuple[str, ...]
    min_classes: int = 5
    max_classes: int = 50
    scratch_fraction: float = 0.1
    coarse_fraction: float = 0.1
    foundation_epochs: tuple[int, int] = (2, 4)
    scratch_epochs: tuple[int, int] = (4, 6)
    images_per_class: tuple[int, int] = (40, 80)


def plan_hub(concepts: ConceptSet, plan: HubPlan, seed: int) -> list[ModelSpec]:
    """Draw every hub model's architecture, initialisation, concepts and schedule.

    Models cycle through the architectures (so every family is present even in a tiny hub); a
    ``scratch_fraction`` of them start from random weights, the rest from the foundation of their
    architecture. A ``coarse_fraction`` classify coarse concepts of one kind (e.g. ten
    "colour shape" concepts), the others fine concepts. The label order is the order drawn.

    Returns
    -------
    list of ModelSpec
        ``n_models`` specs named ``hub-0000`` onwards.
    """
    rng = rng_for(seed, "hub", "plan")
    n = plan.n_models
    n_scratch = round(n * plan.scratch_fraction)
    n_coarse = round(n * plan.coarse_fraction)
    scratch = np.zeros(n, dtype=bool)
    scratch[rng.choice(n, n_scratch, replace=False)] = True
    coarse = np.zeros(n, dtype=bool)
    coarse[rng.choice(n, n_coarse, replace=False)] = True
    arch_order = rng.permutation(n) % len(plan.architectures)
    specs = []
    for i in range(n):
        kind = FINE if not coarse[i] else COARSE_KINDS[int(rng.integers(0, len(COARSE_KINDS)))]
        pool = concepts.of_kind(kind)
        hi = min(plan.max_classes, len(pool))
        k = int(rng.integers(min(plan.min_classes, hi), hi + 1))
        chosen = rng.choice(len(pool), k, replace=False)
        arch = plan.architectures[int(arch_order[i])]
        epochs = plan.scratch_epochs if scratch[i] else plan.foundation_epochs
        specs.append(
            ModelSpec(
                name=f"hub-{i:04d}",
                architecture=arch,
                init="scratch" if scratch[i] else f"foundation:{arch}",
                kind=kind,
                concepts=tuple(pool[int(j)].name for j in chosen),
                epochs=int(rng.integers(epochs[0], epochs[1] + 1)),
                images_per_class=int(rng.integers(plan.images_per_class[0], plan.images_per_class[1] + 1)),
                lr=float(3e-3 if scratch[i] else 1.5e-3) * float(rng.uniform(0.7, 1.3)),
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
    """Random horizontal flips and a random shift of up to 2 px (whole batch)."""
    flip = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    dy, dx = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


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
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
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


def train_foundation(
    architecture: str,
    pool: ObjectPool,
    epochs: int,
    seed: int,
    image_size: int,
    path: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Pretrain a backbone on every fine concept of the world and save it.

    The analogue of an ImageNet-21k checkpoint: a classifier over all fine concepts, trained on
    the foundation pool (never the hub's own images). Its weights go to ``path``.

    Returns
    -------
    dict
        ``architecture``, ``epochs``, ``train_seconds``, ``losses``.
    """
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = ARCHITECTURES[architecture].build(image_size, pool.n_fine)
    with tqdm(total=epochs, desc=f"foundation {architecture}", disable=not progress, leave=False) as bar:
        losses = fit(model, pool.images, pool.labels, epochs, 2e-3, seed, batch_size=128, progress=bar)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    seconds = time.perf_counter() - started
    logger.info("foundation %s: %d epochs in %.0f s, loss %.3f", architecture, epochs, seconds, losses[-1])
    return {
        "architecture": architecture,
        "epochs": epochs,
        "train_seconds": round(seconds, 1),
        "losses": losses,
    }


def train_hub_model(
    spec: ModelSpec,
    concepts: ConceptSet,
    train_pool: ObjectPool,
    test_pool: ObjectPool,
    foundations: dict[str, Path],
    image_size: int,
    test_per_class: int,
) -> tuple[Classifier, dict[str, Any]]:
    """Train one hub model and measure it on held-out images.

    Parameters
    ----------
    spec : ModelSpec
    concepts : ConceptSet
    train_pool, test_pool : ObjectPool
        Training images and held-out test images (disjoint streams).
    foundations : dict
        Architecture name -> saved foundation weights, for ``spec.init == "foundation:..."``.
    image_size, test_per_class : int

    Returns
    -------
    model : Classifier
        Trained, in eval mode.
    record : dict
        The model's ground-truth entry: ``concepts`` (logit order), ``architecture``, ``family``,
        ``init``, ``kind``, ``test_accuracy``, ``logit_accuracy`` (recall of each logit on its
        class's test images), ``epochs``, ``n_train_images``, ``n_parameters``,
        ``train_seconds``.
    """
    started = time.perf_counter()
    rng = rng_for(spec.seed, "hub-model", spec.name)
    torch.manual_seed(spec.seed)
    arch = ARCHITECTURES[spec.architecture]
    n_classes = len(spec.concepts)
    if spec.init == "scratch":
        model = arch.build(image_size, n_classes)
    else:
        source = spec.init.split(":", 1)[1]
        model = arch.build(image_size, len(concepts.fine))
        model.load_state_dict(torch.load(foundations[source], map_location="cpu", weights_only=True))
        model.replace_head(n_classes)
    members = [concepts.members(name) for name in spec.concepts]
    rows = [train_pool.sample(rng, m, spec.images_per_class) for m in members]
    train_idx = np.concatenate(rows)
    train_labels = np.repeat(np.arange(n_classes), [len(r) for r in rows])
    losses = fit(model, train_pool.images[train_idx], train_labels, spec.epochs, spec.lr, spec.seed)

    test_rows = [test_pool.sample(rng, m, test_per_class) for m in members]
    test_idx = np.concatenate(test_rows)
    test_labels = np.repeat(np.arange(n_classes), [len(r) for r in test_rows])
    pred = predict(model, test_pool.images[test_idx]).argmax(axis=1)
    correct = pred == test_labels
    logit_accuracy = [float(correct[test_labels == c].mean()) for c in range(n_classes)]
    record = {
        "concepts": list(spec.concepts),
        "architecture": spec.architecture,
        "family": arch.family,
        "init": spec.init,
        "kind": spec.kind,
        "test_accuracy": float(correct.mean()),
        "logit_accuracy": logit_accuracy,
        "epochs": spec.epochs,
        "lr": spec.lr,
        "n_train_images": len(train_idx),
        "n_test_images": len(test_idx),
        "n_parameters": int(sum(p.numel() for p in model.parameters())),
        "final_train_loss": losses[-1],
        "train_seconds": round(time.perf_counter() - started, 2),
    }
    return model, record
