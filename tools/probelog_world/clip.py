"""The world's small CLIP: an open_clip model trained contrastively on the world's captions.

The architecture is registered the way open_clip registers its own: a JSON model config whose
file stem is the model name, added with ``open_clip.add_model_config``. The trained weights are an
ordinary open_clip checkpoint (``{"state_dict": ...}``), so the model is loaded by exactly the calls
that load a released CLIP::

    open_clip.add_model_config("clip/probelog-world-clip.json")
    model, _, preprocess = open_clip.create_model_and_transforms(
        "probelog-world-clip", pretrained="clip/checkpoint.pt")
    tokenizer = open_clip.get_tokenizer("probelog-world-clip")

and anything written against these calls runs unchanged on, say, ViT-B-32 with LAION weights.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import open_clip
import torch
import torch.nn.functional as F
from tqdm import tqdm

from probelog.common.files import atomic_write
from probelog_world.captions import Captioner, prompts
from probelog_world.concepts import COARSE_KINDS, ConceptSet, rng_for
from probelog_world.models import param_groups
from probelog_world.render import render_objects, render_scenes

logger = logging.getLogger(__name__)

CLIP_MODEL_NAME = "probelog-world-clip"
CHECKPOINT_NAME = "checkpoint.pt"
REPORT_NAME = "report.json"
ZERO_SHOT_TEMPLATE = "a photo of a {}."

#: ``open_clip.CLIP`` (or ``CustomTextCLIP``): open_clip ships no type information.
ClipModel = Any


@dataclass(frozen=True)
class ClipArchitecture:
    """A small CLIP in open_clip's own config vocabulary.

    ``layers`` an int gives a ViT image tower (``patch_size``, ``width``, ``mlp_ratio``); a tuple
    gives open_clip's ModifiedResNet (the RN50 family), one entry per stage, with stem width
    ``width``.
    """

    image_size: int = 48
    patch_size: int = 8
    width: int = 24
    layers: int | tuple[int, ...] = (1, 1, 1, 1)
    head_width: int = 64
    mlp_ratio: float = 2.0
    text_width: int = 128
    text_heads: int = 4
    text_layers: int = 2
    context_length: int = 32
    embed_dim: int = 128

    def to_open_clip(self) -> dict[str, Any]:
        """The JSON model config open_clip reads (``embed_dim``, ``vision_cfg``, ``text_cfg``)."""
        vision: dict[str, Any] = {
            "image_size": self.image_size,
            "layers": list(self.layers) if isinstance(self.layers, tuple) else self.layers,
            "width": self.width,
            "head_width": self.head_width,
        }
        if not isinstance(self.layers, tuple):
            vision.update({"patch_size": self.patch_size, "mlp_ratio": self.mlp_ratio})
        return {
            "embed_dim": self.embed_dim,
            "vision_cfg": vision,
            "text_cfg": {
                "context_length": self.context_length,
                "vocab_size": 49408,  # open_clip's bundled BPE vocabulary
                "width": self.text_width,
                "heads": self.text_heads,
                "layers": self.text_layers,
            },
        }


@dataclass(frozen=True)
class ClipTraining:
    """How long and how the CLIP is trained.

    Attributes
    ----------
    steps : int
        Optimiser steps; every step draws a fresh batch from the generator.
    batch_size : int
    scene_fraction : float
        Share of each batch that is scenes (the rest single objects).
    lr, min_lr, warmup_steps, weight_decay : float, float, int, float
        AdamW with linear warm-up and cosine decay to ``min_lr``.
    """

    steps: int = 3000
    batch_size: int = 256
    scene_fraction: float = 0.5
    lr: float = 2e-3
    min_lr: float = 5e-5
    warmup_steps: int = 100
    weight_decay: float = 0.1


def write_model_config(directory: Path, arch: ClipArchitecture, name: str = CLIP_MODEL_NAME) -> Path:
    """Write ``directory/<name>.json`` and register it with open_clip.

    Returns
    -------
    pathlib.Path
        The config file; its stem is the model name open_clip knows it by.
    """
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    _write_json(path, arch.to_open_clip())
    open_clip.add_model_config(path)
    return path


def load_clip(world_dir: Path) -> tuple[ClipModel, Callable[[Any], torch.Tensor], Any]:
    """Load a world's CLIP through the encoder's own loader (open_clip's public API).

    Parameters
    ----------
    world_dir : pathlib.Path
        A built world (the directory holding ``clip/``).

    Returns
    -------
    model, preprocess, tokenizer
        As :func:`probelog.clip_encoder.open_clip.load_clip`: the model in eval mode on the CPU,
        open_clip's validation transform, and its tokenizer.
    """
    from probelog.clip_encoder.open_clip import load_clip as load_any_clip

    clip_dir = Path(world_dir) / "clip"
    configs = [p for p in sorted(clip_dir.glob("*.json")) if p.name != REPORT_NAME]
    if len(configs) != 1:
        raise FileNotFoundError(f"expected one open_clip model config in {clip_dir}, found {configs}")
    return load_any_clip(configs[0].stem, str(clip_dir / CHECKPOINT_NAME), str(configs[0]))


def normalisation(model: ClipModel) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The mean and std the model's own preprocessing applies (open_clip's defaults here)."""
    cfg = getattr(model.visual, "preprocess_cfg", {})
    mean = tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN))
    std = tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD))
    return mean, std


def images_to_tensor(
    images: npt.NDArray[np.uint8], mean: Sequence[float], std: Sequence[float]
) -> torch.Tensor:
    """uint8 images (n, H, W, 3) to the normalised float tensor (n, 3, H, W) a CLIP takes.

    Equal to open_clip's ``preprocess`` (ToTensor, Normalize) for images already at the model's
    input size, without a round trip through PIL.
    """
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


@torch.no_grad()
def encode_images(
    model: ClipModel, images: npt.NDArray[np.uint8], batch_size: int = 512
) -> npt.NDArray[np.float32]:
    """L2-normalised CLIP image embeddings.

    Parameters
    ----------
    model : open_clip.CLIP
    images : ndarray of shape (n, H, W, 3), uint8
        At the model's input size.

    Returns
    -------
    ndarray of shape (n, embed_dim), float32
    """
    mean, std = normalisation(model)
    out = []
    for start in range(0, images.shape[0], batch_size):
        x = images_to_tensor(images[start : start + batch_size], mean, std)
        out.append(F.normalize(model.encode_image(x), dim=-1))
    return torch.cat(out).numpy().astype(np.float32)


@torch.no_grad()
def encode_texts(
    model: ClipModel, tokenizer: Any, texts: Sequence[str], batch_size: int = 512
) -> npt.NDArray[np.float32]:
    """L2-normalised CLIP text embeddings, shape (n, embed_dim), float32."""
    out = []
    for start in range(0, len(texts), batch_size):
        tokens = tokenizer(list(texts[start : start + batch_size]))
        out.append(F.normalize(model.encode_text(tokens), dim=-1))
    return torch.cat(out).numpy().astype(np.float32)


def zero_shot_report(
    model: ClipModel,
    tokenizer: Any,
    concepts: ConceptSet,
    object_images: npt.NDArray[np.uint8],
    object_ids: npt.NDArray[np.int64],
    scene_images: npt.NDArray[np.uint8] | None = None,
    scene_contents: npt.NDArray[np.int64] | None = None,
) -> dict[str, Any]:
    """Zero-shot accuracy of a CLIP on held-out images of the world.

    Parameters
    ----------
    model, tokenizer
        An open_clip model (eval mode) and its tokenizer.
    concepts : ConceptSet
    object_images : ndarray of shape (n, H, W, 3), uint8
        Held-out single-object images.
    object_ids : ndarray of shape (n,), int64
        Fine concept index of each.
    scene_images : ndarray of shape (m, H, W, 3), uint8, optional
    scene_contents : ndarray of shape (m, max_objects), int64, optional
        Fine concept indices per scene, -1 padded.

    Returns
    -------
    dict
        ``fine_top1``: top-1 over all fine concepts with the prompt "a photo of a {}.";
        ``coarse_top1``: mean over the coarse kinds of the top-1 among that kind's concepts;
        ``coarse_top1_by_kind``; and, with scenes, ``scene_auc``: the mean over fine concepts
        of the ROC AUC with which the concept's prompt separates scenes that contain it from
        scenes that do not.
    """
    image_emb = encode_images(model, object_images)
    report: dict[str, Any] = {"template": ZERO_SHOT_TEMPLATE, "n_images": len(object_ids)}
    fine_text = encode_texts(model, tokenizer, prompts([c.name for c in concepts.fine]))
    pred = (image_emb @ fine_text.T).argmax(axis=1)
    report["fine_top1"] = float(np.mean(pred == object_ids))
    attrs = concepts.fine_attributes[object_ids]
    by_kind = {}
    for kind in COARSE_KINDS:
        members = concepts.of_kind(kind)
        text = encode_texts(model, tokenizer, prompts([c.name for c in members]))
        guess = (image_emb @ text.T).argmax(axis=1)
        correct = [
            members[g].covers(*_attribute_names(a)) for g, a in zip(guess.tolist(), attrs, strict=True)
        ]
        by_kind[kind] = float(np.mean(correct))
    report["coarse_top1_by_kind"] = by_kind
    report["coarse_top1"] = float(np.mean(list(by_kind.values())))
    report["text_selectivity"] = text_selectivity(image_emb, object_ids, fine_text)
    if scene_images is not None and scene_contents is not None:
        scene_emb = encode_images(model, scene_images)
        sims = scene_emb @ fine_text.T  # (m, n_fine)
        present = np.zeros_like(sims, dtype=bool)
        rows, cols = np.nonzero(scene_contents >= 0)
        present[rows, scene_contents[rows, cols]] = True
        report["scene_auc"] = float(np.nanmean(_column_auc(sims, present)))
    return report


def text_selectivity(
    image_emb: npt.NDArray[np.float32], image_ids: npt.NDArray[np.int64], text_emb: npt.NDArray[np.float32]
) -> float:
    """Mean R-precision of each fine concept's text query over held-out single objects.

    For concept c with m_c images among them, the share of the m_c images most similar to c's
    prompt that show c; 1.0 is the ceiling. It tells how selective a text descriptor can be on
    a probe set of single objects.

    Parameters
    ----------
    image_emb : ndarray of shape (n, d), float32
    image_ids : ndarray of shape (n,), int64
        Fine concept index of each image.
    text_emb : ndarray of shape (n_fine, d), float32
        One prompt embedding per fine concept, in concept order.
    """
    sims = text_emb @ image_emb.T  # (n_fine, n)
    shares = []
    for c in np.unique(image_ids):
        m = int(np.sum(image_ids == c))
        top = np.argpartition(-sims[c], m - 1)[:m]
        shares.append(float(np.mean(image_ids[top] == c)))
    return float(np.mean(shares))


def _attribute_names(row: npt.NDArray[np.int64]) -> tuple[str, str, str]:
    from probelog_world.concepts import COLOURS, PATTERNS, SHAPES

    return list(COLOURS)[int(row[0])], PATTERNS[int(row[1])], SHAPES[int(row[2])]


def _column_auc(scores: npt.NDArray[np.float32], labels: npt.NDArray[np.bool_]) -> npt.NDArray[np.float64]:
    """ROC AUC of each column (Mann-Whitney U); NaN where a column has one class only."""
    ranks = np.argsort(np.argsort(scores, axis=0), axis=0).astype(np.float64) + 1.0
    n_pos = labels.sum(axis=0).astype(np.float64)
    n_neg = labels.shape[0] - n_pos
    rank_sum = (ranks * labels).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.asarray((rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg), dtype=np.float64)


def _lr_at(step: int, cfg: ClipTraining) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(1.0, progress)))


def contrastive_loss(
    image: torch.Tensor, text: torch.Tensor, logit_scale: torch.Tensor, same: torch.Tensor
) -> torch.Tensor:
    """Symmetric InfoNCE where pairs with identical captions all count as positives.

    Parameters
    ----------
    image, text : Tensor of shape (b, d), float32
        L2-normalised embeddings of matching pairs.
    logit_scale : Tensor, scalar
        log of the temperature's inverse.
    same : Tensor of shape (b, b), bool
        ``same[i, j]``: captions i and j are the same string (the diagonal is true).
    """
    logits = logit_scale.exp() * image @ text.T
    target = same.float() / same.float().sum(dim=1, keepdim=True)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target.T))


class ClipTrainer:
    """Contrastive training of the world's CLIP on freshly generated captioned images.

    Every step draws a new batch from the generator (never the held-out images): single objects
    of uniformly random fine concepts and scenes, each with a caption from
    :class:`~probelog_world.captions.Captioner`. The trainer's whole state (weights, optimiser,
    random streams, loss curve) can be saved and restored, so a long run survives interruption.

    Parameters
    ----------
    model_name : str
        A registered open_clip model name (see :func:`write_model_config`).
    concepts : ConceptSet
    training : ClipTraining
    image_size : int
    seed : int
    """

    def __init__(
        self, model_name: str, concepts: ConceptSet, training: ClipTraining, image_size: int, seed: int
    ) -> None:
        torch.manual_seed(int(seed))
        self.model_name = model_name
        self.model = open_clip.create_model(model_name)
        self.model.train()
        self.mean, self.std = normalisation(self.model)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.training = training
        self.image_size = image_size
        self.optimiser = torch.optim.AdamW(
            param_groups(self.model, training.weight_decay), lr=training.lr, betas=(0.9, 0.98), eps=1e-6
        )
        self.captioner = Captioner(concepts)
        self.fine_attrs = concepts.fine_attributes
        self.rng = rng_for(seed, "clip", "train")
        self.step = 0
        self.curve: list[dict[str, float]] = []
        self._window: list[float] = []
        self.data_seconds = 0.0
        self.train_seconds = 0.0

    def batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A fresh batch: images (b, 3, H, W), tokens (b, context), same-caption mask (b, b)."""
        cfg = self.training
        n_scenes = round(cfg.batch_size * cfg.scene_fraction)
        ids = self.rng.integers(0, self.fine_attrs.shape[0], cfg.batch_size - n_scenes)
        objects = render_objects(self.rng, self.fine_attrs[ids], self.image_size)
        scenes, contents = render_scenes(self.rng, n_scenes, self.fine_attrs, self.image_size)
        captions = self.captioner.object_captions(self.rng, ids)
        captions += self.captioner.scene_captions(self.rng, contents)
        images = images_to_tensor(np.concatenate([objects, scenes]), self.mean, self.std)
        codes = {c: i for i, c in enumerate(dict.fromkeys(captions))}
        caption_ids = torch.tensor([codes[c] for c in captions])
        return images, self.tokenizer(captions), caption_ids[:, None] == caption_ids[None, :]

    def train(self, steps: int, progress: bool = False) -> None:
        """Run up to ``steps`` more optimiser steps (never past ``training.steps``)."""
        cfg = self.training
        stop = min(cfg.steps, self.step + steps)
        self.model.train()
        bar = tqdm(
            total=cfg.steps, initial=self.step, desc="clip", unit="step", disable=not progress, leave=False
        )
        while self.step < stop:
            t0 = time.perf_counter()
            images, tokens, same = self.batch()
            t1 = time.perf_counter()
            for group in self.optimiser.param_groups:
                group["lr"] = _lr_at(self.step, cfg)
            image_emb = F.normalize(self.model.encode_image(images), dim=-1)
            text_emb = F.normalize(self.model.encode_text(tokens), dim=-1)
            loss = contrastive_loss(image_emb, text_emb, self.model.logit_scale, same)
            self.optimiser.zero_grad(set_to_none=True)
            torch.autograd.backward(loss)
            self.optimiser.step()
            with torch.no_grad():
                self.model.logit_scale.clamp_(0, math.log(100))
            self.step += 1
            self.data_seconds += t1 - t0
            self.train_seconds += time.perf_counter() - t0
            self._window.append(loss.item())
            if len(self._window) == 25 or self.step == cfg.steps:
                self.curve.append({"step": self.step, "loss": float(np.mean(self._window))})
                self._window = []
                bar.set_postfix(loss=f"{self.curve[-1]['loss']:.3f}")
                logger.debug("clip step %d loss %.4f", self.step, self.curve[-1]["loss"])
            bar.update(1)
        bar.close()
        self.model.eval()

    @property
    def finished(self) -> bool:
        return self.step >= self.training.steps

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "curve": self.curve,
            "window": self._window,
            "data_seconds": self.data_seconds,
            "train_seconds": self.train_seconds,
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        self.curve = list(state["curve"])
        self._window = list(state["window"])
        self.data_seconds = float(state["data_seconds"])
        self.train_seconds = float(state["train_seconds"])


def train_clip(
    out_dir: Path,
    concepts: ConceptSet,
    arch: ClipArchitecture,
    training: ClipTraining,
    seed: int,
    eval_objects: tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]],
    eval_scenes: tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]] | None = None,
    progress: bool = True,
    save_every: int = 250,
    model_name: str = CLIP_MODEL_NAME,
) -> dict[str, Any]:
    """Train a CLIP of the world and write its config, checkpoint and report into ``out_dir``.

    Parameters
    ----------
    out_dir : pathlib.Path
        Receives ``<name>.json``, ``checkpoint.pt`` and ``report.json``; ``train_state.pt``
        holds the trainer's state while training runs, so an interrupted run resumes.
    concepts : ConceptSet
    arch : ClipArchitecture
    training : ClipTraining
    seed : int
    eval_objects : (images, fine_ids)
        Held-out single objects, uint8 (n, H, W, 3) and int64 (n,), for the zero-shot report.
    eval_scenes : (images, contents), optional
        Scenes and their contents (m, max_objects), for the report's ``scene_auc``.
    progress : bool
        Show a progress bar.
    save_every : int
        Steps between saves of the training state.
    model_name : str
        The name open_clip knows the model by (the config file's stem).

    Returns
    -------
    dict
        The report written to ``report.json``.
    """
    config_path = write_model_config(out_dir, arch, model_name)
    trainer = ClipTrainer(config_path.stem, concepts, training, arch.image_size, seed)
    state_path = out_dir / "train_state.pt"
    if state_path.is_file():
        # Our own file: it holds numpy random state, which weights_only loading refuses.
        trainer.restore(torch.load(state_path, map_location="cpu", weights_only=False))
        logger.info("clip: resuming at step %d of %d", trainer.step, training.steps)
    while not trainer.finished:
        trainer.train(save_every, progress=progress)
        _atomic_torch_save(trainer.state(), state_path)
        logger.info("clip: step %d/%d, loss %.3f", trainer.step, training.steps, trainer.curve[-1]["loss"])
    model = trainer.model.eval()
    _save_checkpoint(out_dir / CHECKPOINT_NAME, model, trainer.model_name, trainer.step)
    report = zero_shot_report(
        model,
        trainer.tokenizer,
        concepts,
        eval_objects[0],
        eval_objects[1],
        *(eval_scenes if eval_scenes is not None else (None, None)),
    )
    report.update(
        {
            "carried": False,
            "model_name": trainer.model_name,
            "architecture": asdict(arch),
            "training": asdict(training),
            "pairs_seen": trainer.step * training.batch_size,
            "loss_curve": trainer.curve,
            "train_seconds": round(trainer.train_seconds, 1),
            "data_seconds": round(trainer.data_seconds, 1),
            "n_parameters": int(sum(p.numel() for p in model.parameters())),
        }
    )
    _write_json(out_dir / REPORT_NAME, report)
    state_path.unlink(missing_ok=True)
    logger.info(
        "clip: %d steps in %.0f s, zero-shot top-1 fine %.3f coarse %.3f",
        training.steps,
        trainer.train_seconds,
        report["fine_top1"],
        report["coarse_top1"],
    )
    return report


def check_report(report: dict[str, Any], arch: ClipArchitecture, training: ClipTraining, path: Path) -> None:
    """Refuse a finished CLIP trained with another architecture or recipe than the build asks for."""
    if report.get("architecture") != json.loads(json.dumps(asdict(arch))) or report.get("training") != json.loads(
        json.dumps(asdict(training))
    ):
        raise ValueError(
            f"{path} describes a CLIP trained with {report.get('architecture')} / {report.get('training')}, not "
            f"{asdict(arch)} / {asdict(training)}; remove its directory to train it again"
        )


def install_carried(
    checkpoint: Path,
    out_dir: Path,
    model_name: str,
    arch: ClipArchitecture,
    training: ClipTraining,
    concepts: ConceptSet,
    eval_objects: tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]],
    eval_scenes: tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]] | None = None,
) -> dict[str, Any]:
    """Install a CLIP checkpoint carried by the package (float16) as a world's CLIP, and report on it.

    The checkpoint was produced by :func:`train_clip` with ``arch`` and ``training`` (its
    provenance is in ``data/README.md``); its config beside it must equal ``arch``'s.

    Returns
    -------
    dict
        The report written to ``out_dir/report.json`` (``carried`` is true).
    """
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if saved.get("architecture") != json.loads(json.dumps(asdict(arch))):
        raise ValueError(f"{checkpoint} holds a CLIP of architecture {saved.get('architecture')}, not {asdict(arch)}")
    config_path = write_model_config(out_dir, arch, model_name)
    model = open_clip.create_model(config_path.stem)
    model.load_state_dict({k: v.float() for k, v in saved["state_dict"].items()})
    model.eval()
    _save_checkpoint(out_dir / CHECKPOINT_NAME, model, model_name, int(saved["step"]))
    report = zero_shot_report(
        model,
        open_clip.get_tokenizer(model_name),
        concepts,
        eval_objects[0],
        eval_objects[1],
        *(eval_scenes if eval_scenes is not None else (None, None)),
    )
    report.update(
        {
            "carried": True,
            "carried_file": checkpoint.name,
            "model_name": model_name,
            "architecture": asdict(arch),
            "training": asdict(training),
            "pairs_seen": int(saved["step"]) * training.batch_size,
            "n_parameters": int(sum(p.numel() for p in model.parameters())),
        }
    )
    _write_json(out_dir / REPORT_NAME, report)
    return report


def save_half(checkpoint: Path, out: Path, arch: ClipArchitecture) -> Path:
    """A float16 copy of a trained CLIP checkpoint (what the demo scale carries), with its
    architecture recorded so a build can check it."""
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    _atomic_torch_save(
        {
            "step": int(saved.get("step", 0)),
            "name": saved.get("name"),
            "architecture": json.loads(json.dumps(asdict(arch))),
            "state_dict": {k: v.half() if v.is_floating_point() else v for k, v in saved["state_dict"].items()},
        },
        out,
    )
    return out


def _save_checkpoint(path: Path, model: torch.nn.Module, name: str, steps: int) -> None:
    """An open_clip training checkpoint (``{"epoch", "name", "state_dict"}``), written atomically."""
    _atomic_torch_save({"epoch": 1, "step": steps, "name": name, "state_dict": model.state_dict()}, path)


def _atomic_torch_save(state: Any, path: Path) -> None:
    atomic_write(path, lambda f: torch.save(state, f))


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda f: f.write((json.dumps(data, indent=1) + "\n").encode("utf-8")))
