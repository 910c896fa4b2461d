"""An open_clip model as a text/image encoder.

Loads exactly as a released CLIP loads: ``open_clip.create_model_and_transforms(name,
pretrained=...)`` and ``open_clip.get_tokenizer(name)``. A custom architecture (the trained
miniature world's) is registered first from its model-config JSON with
``open_clip.add_model_config``; its file stem is its model name.
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


def load_clip(model_name: str, pretrained: str, config_file: str = "") -> tuple[Any, Any, Any]:
    """Load a CLIP as a released one loads, the one way every part of ProbeLog loads it.

    Parameters
    ----------
    model_name : str
        open_clip model name, e.g. "ViT-B-32", or a custom config's name (its file stem).
    pretrained : str
        Checkpoint path, or an open_clip pretrained tag where weights can be downloaded.
    config_file : str
        Optional model-config JSON registered with ``open_clip.add_model_config`` first.

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
    if model_name not in open_clip.list_models():
        raise FailedPrecondition(
            f"unknown CLIP model {model_name!r}; register its config with PROBELOG_CLIP_CONFIG"
        )
    looks_like_path = "/" in pretrained or pretrained.endswith((".pt", ".bin", ".safetensors"))
    if pretrained and looks_like_path and not Path(pretrained).is_file():
        raise FailedPrecondition(f"CLIP checkpoint {pretrained} does not exist")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained or None)
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
    """

    def __init__(self, model_name: str, pretrained: str, config_file: str = "", threads: int = 0) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        model, preprocess, tokenizer = load_clip(model_name, pretrained, config_file)
        self._torch = torch
        self._model = model
        self._preprocess = preprocess
        self._tokenizer = tokenizer
        self._lock = threading.Lock()
        self.model_name = model_name
        self.pretrained = pretrained
        with torch.no_grad():
            self.embedding_dim = int(self._model.encode_text(self._tokenizer(["x"])).shape[-1])
        fingerprint = _file_fingerprint(Path(pretrained)) if pretrained and Path(pretrained).is_file() else pretrained
        self.weights_id = f"{model_name}:{fingerprint}"
        logger.info("loaded CLIP %s (%s), embedding dim %d", model_name, pretrained, self.embedding_dim)

    def _normalized(self, features: Any) -> npt.NDArray[np.float32]:
        features = features / features.norm(dim=-1, keepdim=True)
        return np.asarray(features.float().cpu().numpy(), dtype=np.float32)

    def encode_text(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Unit-norm text embeddings, shape (n, dim)."""
        out = []
        with self._lock, self._torch.no_grad():
            for start in range(0, len(texts), _BATCH):
                tokens = self._tokenizer(list(texts[start : start + _BATCH]))
                out.append(self._normalized(self._model.encode_text(tokens)))
        return np.concatenate(out) if out else np.empty((0, self.embedding_dim), np.float32)

    def encode_images(self, images: Sequence[Image.Image]) -> npt.NDArray[np.float32]:
        """Unit-norm image embeddings, shape (n, dim), through the model's own preprocessing."""
        out = []
        with self._lock, self._torch.no_grad():
            for start in range(0, len(images), _BATCH):
                batch = self._torch.stack([self._preprocess(img) for img in images[start : start + _BATCH]])
                out.append(self._normalized(self._model.encode_image(batch)))
        return np.concatenate(out) if out else np.empty((0, self.embedding_dim), np.float32)
