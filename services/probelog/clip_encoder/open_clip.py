"""An open_clip model as a text/image encoder.

Loads exactly as a released CLIP loads: ``open_clip.create_model_and_transforms(name,
pretrained=...)`` and ``open_clip.get_tokenizer(name)``. The model is named as open_clip names
it:

- an architecture with a pretrained tag: ``ViT-B-32`` + ``laion2b_s34b_b79k`` (the tags
  ``open_clip.list_pretrained_tags_by_model`` lists; an unknown tag is refused at start-up);
- an architecture with a local checkpoint file: ``ViT-B-32`` + ``/weights/clip.pt``;
- a Hugging Face Hub model: ``hf-hub:timm/ViT-B-16-SigLIP`` (its config and weights come from
  the hub; no pretrained tag);
- a custom architecture (the trained miniature world's), registered first from its model-config
  JSON with ``open_clip.add_model_config``; its file stem is its model name.

Weights are never silently random: an empty pretrained value is refused, and only the explicit
:data:`NO_WEIGHTS` (``none``, for tests) builds an untrained model. Downloaded weights go to
``cache_dir`` (the chart mounts a volume there), so a restarted pod does not fetch them again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from probelog.common.errors import FailedPrecondition

logger = logging.getLogger(__name__)

_BATCH = 128
#: The ``pretrained`` value that asks for random weights (tests only).
NO_WEIGHTS = "none"
HF_HUB = "hf-hub:"
DEVICES = ("auto", "cpu", "cuda")


def _file_fingerprint(path: Path) -> str:
    """Size plus the SHA-256 of the first and last MiB: enough to tell checkpoints apart
    without reading a multi-GB file at start-up."""
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(str(size).encode())
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
        if size > 2 << 20:
            f.seek(-(1 << 20), 2)
            digest.update(f.read(1 << 20))
    return digest.hexdigest()[:16]


def _looks_like_path(pretrained: str) -> bool:
    return "/" in pretrained or pretrained.endswith((".pt", ".pth", ".bin", ".safetensors"))


def _check_weights(open_clip: Any, model_name: str, pretrained: str) -> None:
    """Refuse, before anything loads, what would give random weights or fail late."""
    if model_name.startswith(HF_HUB):
        if pretrained and pretrained != NO_WEIGHTS:
            raise FailedPrecondition(
                f"CLIP {model_name} brings its own weights from the hub; leave the pretrained value empty"
            )
        return
    if model_name not in open_clip.list_models():
        raise FailedPrecondition(
            f"unknown CLIP model {model_name!r}; name an open_clip architecture, an hf-hub: model, "
            "or register its config with PROBELOG_CLIP_CONFIG"
        )
    if not pretrained:
        raise FailedPrecondition(
            f"no weights given for CLIP {model_name}: set PROBELOG_CLIP_PRETRAINED (--clip-pretrained) to a "
            f"pretrained tag or a checkpoint file ('{NO_WEIGHTS}' for random weights, in tests)"
        )
    if pretrained == NO_WEIGHTS:
        return
    if _looks_like_path(pretrained):
        if not Path(pretrained).is_file():
            raise FailedPrecondition(f"CLIP checkpoint {pretrained} does not exist")
        return
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if pretrained not in tags:
        known = ", ".join(tags) or "none: give a checkpoint file"
        raise FailedPrecondition(f"unknown pretrained tag {pretrained!r} for CLIP {model_name} (known: {known})")


def resolve_device(device: str) -> str:
    """"cuda" or "cpu" for a ``--device`` of auto, cpu or cuda; FailedPrecondition for cuda
    where no GPU is visible."""
    import torch

    if device not in DEVICES:
        raise FailedPrecondition(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise FailedPrecondition("device cuda was asked for, but torch sees no CUDA GPU")
    return device


def load_clip(
    model_name: str, pretrained: str, config_file: str = "", *, cache_dir: str = ""
) -> tuple[Any, Any, Any]:
    """Load a CLIP as a released one loads, the one way every part of ProbeLog loads it.

    Parameters
    ----------
    model_name : str
        open_clip model name, e.g. "ViT-B-32", or a custom config's name (its file stem).
    pretrained : str
        Checkpoint path, or an open_clip pretrained tag where weights can be downloaded; empty
        for an ``hf-hub:`` model; :data:`NO_WEIGHTS` for random weights.
    config_file : str
        Optional model-config JSON registered with ``open_clip.add_model_config`` first.
    cache_dir : str
        Where downloaded weights are kept ("" : open_clip's default, under ~/.cache).

    Returns
    -------
    model : open_clip.CLIP
        In eval mode, on the CPU.
    preprocess : callable
        open_clip's validation transform: PIL image -> float tensor of shape (3, H, W).
    tokenizer : callable
        list of str -> int64 tensor of shape (n, context_length).

    Raises
    ------
    FailedPrecondition
        If the config, the model name or the checkpoint is missing or does not load.
    """
    import open_clip

    if config_file:
        if not Path(config_file).is_file():
            raise FailedPrecondition(f"CLIP model config {config_file} does not exist")
        open_clip.add_model_config(config_file)
    _check_weights(open_clip, model_name, pretrained)
    weights = None if pretrained in ("", NO_WEIGHTS) else pretrained
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=weights, cache_dir=cache_dir or None
        )
    except (RuntimeError, OSError, ValueError) as exc:
        raise FailedPrecondition(f"cannot load CLIP {model_name} from {pretrained!r}: {exc}") from exc
    model.eval()
    return model, preprocess, open_clip.get_tokenizer(model_name)


class OpenClipEncoder:
    """A :class:`~probelog.clip_encoder.encoder.TextImageEncoder` over open_clip.

    Parameters
    ----------
    model_name : str
        open_clip model name, e.g. "ViT-B-32", or a custom config's name.
    pretrained : str
        Checkpoint path, or an open_clip pretrained tag where weights can be downloaded.
    config_file : str
        Optional model-config JSON to register before loading.
    threads : int
        torch intra-op threads (0 keeps torch's default).
    device : str
        "auto" (CUDA when torch sees a GPU), "cpu" or "cuda". On a GPU the forward passes run
        under fp16 autocast; embeddings come back as float32 either way.
    cache_dir : str
        Where downloaded weights are kept.
    """

    def __init__(
        self,
        model_name: str,
        pretrained: str,
        config_file: str = "",
        threads: int = 0,
        *,
        device: str = "auto",
        cache_dir: str = "",
    ) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.device = resolve_device(device)
        model, preprocess, tokenizer = load_clip(model_name, pretrained, config_file, cache_dir=cache_dir)
        self._torch = torch
        self._model = model.to(self.device)
        self._preprocess = preprocess
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self.model_name = model_name
        self.pretrained = pretrained
        with self._inference():
            self.embedding_dim = int(self._model.encode_text(self._tokenizer(["x"]).to(self.device)).shape[-1])
        fingerprint = _file_fingerprint(Path(pretrained)) if pretrained and Path(pretrained).is_file() else pretrained
        self.weights_id = f"{model_name}:{fingerprint}"
        logger.info(
            "loaded CLIP %s (%s) on %s, embedding dim %d", model_name, pretrained or "hub", self.device,
            self.embedding_dim,
        )

    def _inference(self) -> Any:
        """No gradients; fp16 autocast on a GPU (CLIP's own training precision)."""
        import contextlib

        stack = contextlib.ExitStack()
        stack.enter_context(self._torch.no_grad())
        if self.device == "cuda":
            stack.enter_context(self._torch.autocast("cuda", dtype=self._torch.float16))
        return stack

    def _normalized(self, features: Any) -> npt.NDArray[np.float32]:
        features = features / features.norm(dim=-1, keepdim=True)
        return np.asarray(features.float().cpu().numpy(), dtype=np.float32)

    def encode_text(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-norm text embeddings, shape (n, dim)."""
        out = []
        with self._lock, self._inference():
            for start in range(0, len(texts), _BATCH):
                tokens = self._tokenizer(list(texts[start : start + _BATCH])).to(self.device)
                out.append(self._normalized(self._model.encode_text(tokens)))
        return np.concatenate(out) if out else np.empty((0, self.embedding_dim), np.float32)

    def encode_images(self, images: Sequence[Image.Image]) -> npt.NDArray[np.float32]:
        """Unit-norm image embeddings, shape (n, dim), through the model's own preprocessing."""
        out = []
        with self._lock, self._inference():
            for start in range(0, len(images), _BATCH):
                batch = self._torch.stack([self._preprocess(img) for img in images[start : start + _BATCH]])
                batch = batch.to(self.device)
                out.append(self._normalized(self._model.encode_image(batch)))
        return np.concatenate(out) if out else np.empty((0, self.embedding_dim), np.float32)
