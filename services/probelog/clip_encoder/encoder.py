"""The CLIP encoder service's logic: probe-set embeddings (cached) and query descriptors."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from probelog.clip_encoder.text_batches import DescriptorCache, TextBatcher
from probelog.common import limits
from probelog.common.errors import InvalidArgument, ResourceExhausted
from probelog.common.files import atomic_write
from probelog.common.ports import Concept, DescriptorStore, ImageQuery
from probelog.core.descriptors import image_set_descriptor, text_descriptors

logger = logging.getLogger(__name__)

DEFAULT_PROMPT_TEMPLATES = ("a photo of a {}.",)
#: Largest encoded query image accepted, and most images per query.
MAX_IMAGE_BYTES = 16 * 1024 * 1024
MAX_QUERY_IMAGES = 64
MAX_TEXT_CHARS = 1000
#: Images that may wait for a decoding thread, per thread, before queries are refused.
MAX_PENDING_DECODES = 64
#: Text descriptors kept by default (16 KB each at 4,000 probes).
DEFAULT_TEXT_CACHE_SIZE = 1024


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


@dataclass(frozen=True)
class QueryLimits:
    """What one query may ask of the encoder (the encoder's settings)."""

    max_prompt_templates: int = limits.DEFAULT_MAX_PROMPT_TEMPLATES
    max_template_chars: int = limits.DEFAULT_MAX_TEMPLATE_CHARS
    #: Width x height of one decoded image; read from the header, before decoding.
    max_image_pixels: int = limits.DEFAULT_MAX_IMAGE_PIXELS
    #: Threads that decode query images (never the event loop).
    image_decode_workers: int = 2

    def check_templates(self, templates: Sequence[str]) -> tuple[str, ...]:
        return limits.check_templates(
            templates, max_templates=self.max_prompt_templates, max_chars=self.max_template_chars
        )


def decode_image(data: bytes, where: str, max_pixels: int = limits.DEFAULT_MAX_IMAGE_PIXELS) -> Image.Image:
    """An RGB PIL image from encoded bytes; InvalidArgument naming ``where`` otherwise.

    The size is read from the header first: an image of more than ``max_pixels`` is refused
    before a single pixel is decoded (a small PNG can decode to gigabytes). Runs in a worker
    thread: decoding is CPU work.
    """
    if not data:
        raise InvalidArgument(f"{where} is empty")
    if len(data) > MAX_IMAGE_BYTES:
        raise InvalidArgument(f"{where} is larger than {MAX_IMAGE_BYTES // (1024 * 1024)} MiB")
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > max_pixels:
                raise InvalidArgument(
                    f"{where} is {width} x {height} pixels, more than the limit of {max_pixels}"
                )
            img.load()
            return img.convert("RGB")
    except Image.DecompressionBombError:  # Pillow's own guard, from the header as well
        raise InvalidArgument(f"{where} has more pixels than the limit of {max_pixels}") from None
    except UnidentifiedImageError:
        raise InvalidArgument(f"{where} is not a readable image (unknown format)") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise InvalidArgument(f"{where} is not a readable image ({type(exc).__name__})") from None


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
    limits : QueryLimits, optional
        Bounds on templates and images; images are decoded by a pool of
        ``limits.image_decode_workers`` threads, and a query that finds more than
        :data:`MAX_PENDING_DECODES` images per worker waiting is RESOURCE_EXHAUSTED.
    text_cache_size : int
        Descriptors of this many recent texts are kept (0: none); concurrent text encodes share
        forward passes either way (:mod:`probelog.clip_encoder.text_batches`).
    """

    def __init__(
        self,
        encoder: TextImageEncoder,
        probe_sets: DescriptorStore,
        prompt_templates: Sequence[str] = DEFAULT_PROMPT_TEMPLATES,
        cache_dir: str | Path | None = None,
        limits: QueryLimits | None = None,
        text_cache_size: int = DEFAULT_TEXT_CACHE_SIZE,
    ) -> None:
        self.encoder = encoder
        self._texts = TextBatcher(lambda texts, templates: ensemble_text_embeddings(encoder, texts, templates))
        self.text_cache = DescriptorCache(text_cache_size)
        self._probe_sets = probe_sets
        self.limits = limits or QueryLimits()
        # Pillow's own decompression-bomb guard, at the same bound (it raises at twice the value).
        Image.MAX_IMAGE_PIXELS = self.limits.max_image_pixels
        self._decoder = ThreadPoolExecutor(
            max_workers=max(1, self.limits.image_decode_workers), thread_name_prefix="image-decode"
        )
        self._pending_decodes = 0
        self.prompt_templates = self.limits.check_templates(prompt_templates or DEFAULT_PROMPT_TEMPLATES)
        self._cache_dir = Path(cache_dir) if cache_dir else None
        self._probe_embeddings: dict[str, npt.NDArray[np.float32]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        digest = hashlib.sha256(encoder.weights_id.encode())
        digest.update("\0".join(self.prompt_templates).encode())
        self._id = digest.hexdigest()[:16]

    async def encoder_id(self, *, timeout: float | None = None) -> str:
        return self._id

    # ------------------------------------------------------------------ embeddings

    def templates_of(self, prompt_templates: Sequence[str] = ()) -> tuple[str, ...]:
        """A query's templates, checked, or the encoder's own."""
        return self.limits.check_templates(prompt_templates) or self.prompt_templates

    async def encode_text(
        self, texts: Sequence[str], prompt_templates: Sequence[str] = ()
    ) -> npt.NDArray[np.float32]:
        """Unit-norm embedding per text, averaged over the prompt templates."""
        templates = self.templates_of(prompt_templates)
        for i, text in enumerate(texts):
            if not text.strip():
                raise InvalidArgument(f"text {i} is empty")
            if len(text) > MAX_TEXT_CHARS:
                raise InvalidArgument(f"text {i} is longer than {MAX_TEXT_CHARS} characters")
        return await self._texts.encode(texts, templates)

    async def close(self) -> None:
        self._decoder.shutdown(wait=False, cancel_futures=True)

    async def decode_images(self, images: Sequence[bytes], where: str = "image") -> list[Image.Image]:
        """Decode in the bounded pool, never on the event loop (health keeps answering)."""
        if len(images) > MAX_QUERY_IMAGES:
            raise InvalidArgument(f"a query has more than {MAX_QUERY_IMAGES} images")
        backlog = MAX_PENDING_DECODES * max(1, self.limits.image_decode_workers)
        if self._pending_decodes + len(images) > backlog:
            raise ResourceExhausted(f"{self._pending_decodes} images are waiting to be decoded; try again later")
        loop = asyncio.get_running_loop()
        self._pending_decodes += len(images)
        try:
            jobs = [
                loop.run_in_executor(self._decoder, decode_image, data, f"{where} {i}", self.limits.max_image_pixels)
                for i, data in enumerate(images)
            ]
            return list(await asyncio.gather(*jobs))
        finally:
            self._pending_decodes -= len(images)

    async def encode_images(self, images: Sequence[bytes]) -> npt.NDArray[np.float32]:
        decoded = await self.decode_images(images)
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
        templates = self.templates_of(prompt_templates)
        missing: list[int] = []
        for i, concept in enumerate(concepts):
            if isinstance(concept, str):
                cached = self.text_cache.get(probe_set_id, templates, concept)
                if cached is None:
                    missing.append(i)
                else:
                    out[i] = cached
        if missing:
            texts = [str(concepts[i]) for i in missing]
            rows = text_descriptors(await self.encode_text(texts, templates), probes)
            out[missing] = rows
            for text, row in zip(texts, rows, strict=True):
                self.text_cache.put(probe_set_id, templates, text, row.copy())
        for i, concept in enumerate(concepts):
            if isinstance(concept, ImageQuery):
                if not concept.images:
                    raise InvalidArgument(f"concept {i} has no images")
                if len(concept.images) > MAX_QUERY_IMAGES:
                    raise InvalidArgument(f"concept {i} has more than {MAX_QUERY_IMAGES} images")
                decoded = await self.decode_images(concept.images, f"concept {i}: image")
                emb = await asyncio.to_thread(self.encoder.encode_images, decoded)
                out[i] = image_set_descriptor(emb, probes)
        return out
