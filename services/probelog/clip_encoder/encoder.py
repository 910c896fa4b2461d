"""The CLIP encoder service's logic: probe-set embeddings (cached) and query descriptors."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from probelog.common.errors import InvalidArgument
from probelog.common.files import atomic_write
from probelog.common.ports import Concept, DescriptorStore, ImageQuery
from probelog.core.descriptors import image_set_descriptor, text_descriptors

logger = logging.getLogger(__name__)

DEFAULT_PROMPT_TEMPLATES = ("a photo of a {}.",)
#: Largest encoded query image accepted, and most images per query.
MAX_IMAGE_BYTES = 16 * 1024 * 1024
MAX_QUERY_IMAGES = 64
MAX_TEXT_CHARS = 1000


class TextImageEncoder(Protocol):
    model_name: str
    pretrained: str
    embedding_dim: int
    weights_id: str

    def encode_text(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...

    def encode_images(self, images: Sequence[Image.Image]) -> npt.NDArray[np.float32]: ...


def ensemble_text_embeddings(
    encoder: TextImageEncoder, texts: Sequence[str], templates: Sequence[str]
) -> npt.NDArray[np.float32]:
    """One unit-norm embedding per text: the renormalised mean of its embeddings through each
    prompt template (CLIP's prompt ensembling), shape (n_texts, dim)."""
    prompts = [t.format(text.strip()) for text in texts for t in templates]
    emb = encoder.encode_text(prompts).reshape(len(texts), len(templates), -1).mean(axis=1)
    return np.asarray(emb / np.linalg.norm(emb, axis=1, keepdims=True), dtype=np.float32)


def check_templates(templates: Sequence[str]) -> tuple[str, ...]:
    for template in templates:
        if template.count("{}") != 1:
            raise InvalidArgument(f"prompt template {template!r} must contain exactly one '{{}}'")
    return tuple(templates)


def decode_image(data: bytes, where: str) -> Image.Image:
    """An RGB PIL image from encoded bytes; InvalidArgument naming ``where`` otherwise."""
    if not data:
        raise InvalidArgument(f"{where} is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidArgument(f"{where} is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise InvalidArgument(f"{where} is not a readable image ({exc})") from None


class ClipEncoder:
    """Embeds concepts and probes with one CLIP model.

    Parameters
    ----------
    encoder : TextImageEncoder
    probe_sets : DescriptorStore
        Where probe images come from.
    prompt_templates : sequence of str
        Default templates; a text's embedding is the renormalised mean over templates.
    cache_dir : path, optional
        Probe-set embeddings are kept here across restarts, keyed by encoder and probe set.
    """

    def __init__(
        self,
        encoder: TextImageEncoder,
        probe_sets: DescriptorStore,
        prompt_templates: Sequence[str] = DEFAULT_PROMPT_TEMPLATES,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.encoder = encoder
        self._probe_sets = probe_sets
        self.prompt_templates = check_templates(prompt_templates or DEFAULT_PROMPT_TEMPLATES)
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._probe_embeddings: dict[str, npt.NDArray[np.float32]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        digest = hashlib.sha256(encoder.weights_id.encode())
        digest.update("\0".join(self.prompt_templates).encode())
        self._id = digest.hexdigest()[:16]

    async def encoder_id(self, *, timeout: float | None = None) -> str:
        return self._id

    # ------------------------------------------------------------------ embeddings

    async def encode_text(
        self, texts: Sequence[str], prompt_templates: Sequence[str] = ()
    ) -> npt.NDArray[np.float32]:
        """Unit-norm embedding per text, averaged over the prompt templates."""
        templates = check_templates(prompt_templates) or self.prompt_templates
        for i, text in enumerate(texts):
            if not text.strip():
                raise InvalidArgument(f"text {i} is empty")
            if len(text) > MAX_TEXT_CHARS:
                raise InvalidArgument(f"text {i} is longer than {MAX_TEXT_CHARS} characters")
        return await asyncio.to_thread(ensemble_text_embeddings, self.encoder, texts, templates)

    async def encode_images(self, images: Sequence[bytes]) -> npt.NDArray[np.float32]:
        decoded = [decode_image(data, f"image {i}") for i, data in enumerate(images)]
        return await asyncio.to_thread(self.encoder.encode_images, decoded)

    def _cache_path(self, probe_set_id: str) -> Path | None:
        if self._cache_dir is None:
            return None
        return self._cache_dir / f"probe-embeddings-{self._id}-{probe_set_id}.npy"

    async def probe_embeddings(self, probe_set_id: str) -> npt.NDArray[np.float32]:
        """Unit-norm CLIP embedding of every probe, computed once per probe set."""
        if probe_set_id in self._probe_embeddings:
            return self._probe_embeddings[probe_set_id]
        lock = self._locks.setdefault(probe_set_id, asyncio.Lock())
        async with lock:
            if probe_set_id in self._probe_embeddings:
                return self._probe_embeddings[probe_set_id]
            path = self._cache_path(probe_set_id)
            if path is not None and path.exists():
                emb = await asyncio.to_thread(np.load, path)
            else:
                _, images = await self._probe_sets.get_probe_set(probe_set_id)
                logger.info("embedding probe set %s (%d probes)", probe_set_id, len(images))
                pil = [Image.fromarray(img) for img in images]
                emb = await asyncio.to_thread(self.encoder.encode_images, pil)
                if path is not None:
                    await asyncio.to_thread(atomic_write, path, lambda f: np.save(f, emb))
            self._probe_embeddings[probe_set_id] = emb
            return emb

    # ------------------------------------------------------------------ descriptors

    async def compute_descriptors(
        self,
        probe_set_id: str,
        concepts: Sequence[Concept],
        prompt_templates: Sequence[str] = (),
        *,
        timeout: float | None = None,
    ) -> npt.NDArray[np.float32]:
        """Raw descriptors (paper Eq. 3 for text, Eq. 8 for image sets), (n_concepts, n_probes)."""
        if not concepts:
            raise InvalidArgument("at least one concept is required")
        probes = await self.probe_embeddings(probe_set_id)
        out = np.empty((len(concepts), len(probes)), dtype=np.float32)
        text_rows = [i for i, c in enumerate(concepts) if isinstance(c, str)]
        if text_rows:
            texts = [concepts[i] for i in text_rows]
            emb = await self.encode_text(texts, prompt_templates)  # type: ignore[arg-type]
            out[text_rows] = text_descriptors(emb, probes)
        for i, concept in enumerate(concepts):
            if isinstance(concept, ImageQuery):
                if not concept.images:
                    raise InvalidArgument(f"concept {i} has no images")
                if len(concept.images) > MAX_QUERY_IMAGES:
                    raise InvalidArgument(f"concept {i} has more than {MAX_QUERY_IMAGES} images")
                decoded = [
                    decode_image(data, f"image {j} of concept {i}") for j, data in enumerate(concept.images)
                ]
                emb = await asyncio.to_thread(self.encoder.encode_images, decoded)
                out[i] = image_set_descriptor(emb, probes)
        return out
