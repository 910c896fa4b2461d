"""Evidence for hits and thumbnails of probes: what a person needs to see why a hit is a hit.

Evidence is read from the descriptor store (each logit's top-r probes and z-scored values, as
indexed) and the query's z-scored descriptor; the ranker is not involved, so a search that asks
for no evidence costs what it did before. Thumbnails are cut from the stored probe set and kept
in a bounded cache, since a results page shows the same probes again and again.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from probelog.common.errors import InvalidArgument
from probelog.common.ports import DescriptorStore, StoredModel
from probelog.core.evidence import match_evidence, top_probes
from probelog.v1 import search_pb2, types_pb2

logger = logging.getLogger(__name__)

#: Evidence probes (and top probes per logit) a request may ask for.
MAX_EVIDENCE_PROBES = 100
#: Probe images one GetProbeImages call may ask for.
MAX_PROBE_IMAGES = 100
#: Thumbnail size (the longer side, pixels) when a request sets none, and its bounds.
DEFAULT_THUMBNAIL_PX = 64
MIN_THUMBNAIL_PX, MAX_THUMBNAIL_PX = 16, 256
#: Encoded thumbnails kept (a 64-pixel PNG is a few kilobytes).
THUMBNAIL_CACHE_SIZE = 8192
#: Probe sets whose decoded images are kept in memory for thumbnails.
PROBE_SET_CACHE_SIZE = 2


def check_evidence_probes(value: int, *, field: str = "evidence_probes") -> int:
    """A request's evidence count: 0 (none) to :data:`MAX_EVIDENCE_PROBES`."""
    if value > MAX_EVIDENCE_PROBES:
        raise InvalidArgument(f"{field} must be at most {MAX_EVIDENCE_PROBES}, got {value}", field=field)
    return int(value)


def check_thumbnail_px(value: int, *, field: str = "size_px") -> int:
    """A thumbnail size: :data:`DEFAULT_THUMBNAIL_PX` for 0, else within the bounds."""
    value = value or DEFAULT_THUMBNAIL_PX
    if not MIN_THUMBNAIL_PX <= value <= MAX_THUMBNAIL_PX:
        raise InvalidArgument(
            f"{field} must be between {MIN_THUMBNAIL_PX} and {MAX_THUMBNAIL_PX}, got {value}", field=field
        )
    return int(value)


def check_probe_indices(indices: Sequence[int], *, field: str = "probe_indices") -> tuple[int, ...]:
    """1 to :data:`MAX_PROBE_IMAGES` probe indices (their range is checked against the set)."""
    if not 1 <= len(indices) <= MAX_PROBE_IMAGES:
        raise InvalidArgument(
            f"{field} must name 1 to {MAX_PROBE_IMAGES} probes, got {len(indices)}", field=field
        )
    return tuple(int(i) for i in indices)


@dataclass(frozen=True)
class EvidenceTarget:
    """One hit (or task assignment) to explain: the message to fill and its query's z-scores."""

    message: types_pb2.Hit | search_pb2.ConceptAssignment
    model_id: str
    logit_index: int
    query_z: npt.NDArray[np.float32]  # (n_probes,)


async def _stored_models(
    store: DescriptorStore, probe_set_id: str, model_ids: Sequence[str], timeout: float | None
) -> dict[str, StoredModel]:
    """Each model's stored descriptors: one store read per distinct model, concurrently."""
    unique = list(dict.fromkeys(model_ids))
    stored = await asyncio.gather(
        *(store.get_model(probe_set_id, m, include_descriptors=True, timeout=timeout) for m in unique)
    )
    return dict(zip(unique, stored, strict=True))


async def add_evidence(
    store: DescriptorStore,
    probe_set_id: str,
    targets: Sequence[EvidenceTarget],
    n: int,
    *,
    timeout: float | None = None,
) -> None:
    """Fill each target's ``evidence`` with its logit's ``n`` best-agreeing probes
    (:func:`probelog.core.evidence.match_evidence`)."""
    if not targets or n < 1:
        return
    models = await _stored_models(store, probe_set_id, [t.model_id for t in targets], timeout)
    for target in targets:
        entries = models[target.model_id].entries
        if entries is None or target.logit_index >= entries.n_logits:
            # The model changed between ranking and this read: its hit keeps no evidence.
            continue
        row = target.logit_index
        indices, logit_z, query_z = match_evidence(
            entries.top_indices[row], entries.top_values[row], target.query_z, n
        )
        for i, a, q in zip(indices.tolist(), logit_z.tolist(), query_z.tolist(), strict=True):
            target.message.evidence.add(probe_index=i, logit_value=a, query_value=q)


def logit_top_probes(stored: StoredModel, n: int) -> list[types_pb2.LogitProbes]:
    """Per logit of a stored model, its ``n`` strongest probes (no query involved)."""
    entries = stored.entries
    if entries is None:
        return []
    labels = list(stored.info.labels)
    out = []
    for row in range(entries.n_logits):
        indices, values = top_probes(entries.top_indices[row], entries.top_values[row], n)
        logit = types_pb2.LogitProbes(logit_index=row, label=labels[row] if row < len(labels) else "")
        for i, a in zip(indices.tolist(), values.tolist(), strict=True):
            logit.probes.add(probe_index=i, logit_value=a)
        out.append(logit)
    return out


def thumbnail_png(image: npt.NDArray[np.uint8], size_px: int) -> tuple[bytes, int, int]:
    """One probe image (height, width, channels) scaled so its longer side is ``size_px``,
    as PNG bytes with its width and height."""
    pixels = image[:, :, 0] if image.shape[2] == 1 else image
    picture = Image.fromarray(np.ascontiguousarray(pixels))
    height, width = image.shape[:2]
    scale = size_px / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # Probes are small: enlarging keeps their pixels sharp, shrinking averages them.
    resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.LANCZOS
    picture = picture.resize(size, resample)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue(), size[0], size[1]


class ProbeThumbnails:
    """Thumbnails of a probe set's images, encoded once and cached (bounded, least recently used
    first out). The probe set's images are read from the store once per probe set."""

    def __init__(
        self,
        store: DescriptorStore,
        *,
        cache_size: int = THUMBNAIL_CACHE_SIZE,
        probe_sets_kept: int = PROBE_SET_CACHE_SIZE,
    ) -> None:
        self._store = store
        self._cache: OrderedDict[tuple[str, int, int], search_pb2.ProbeImage] = OrderedDict()
        self._cache_size = cache_size
        self._images: OrderedDict[str, npt.NDArray[np.uint8]] = OrderedDict()
        self._probe_sets_kept = probe_sets_kept
        self._lock = asyncio.Lock()

    async def _probe_set_images(self, probe_set_id: str, timeout: float | None) -> npt.NDArray[np.uint8]:
        async with self._lock:
            if probe_set_id not in self._images:
                _, images = await self._store.get_probe_set(probe_set_id, timeout=timeout)
                self._images[probe_set_id] = images
                while len(self._images) > self._probe_sets_kept:
                    self._images.popitem(last=False)
            self._images.move_to_end(probe_set_id)
            return self._images[probe_set_id]

    async def get(
        self, probe_set_id: str, indices: Sequence[int], size_px: int, *, timeout: float | None = None
    ) -> list[search_pb2.ProbeImage]:
        """Thumbnails of ``indices`` (in that order); InvalidArgument for an index out of range."""
        missing = [i for i in dict.fromkeys(indices) if (probe_set_id, i, size_px) not in self._cache]
        if missing:
            images = await self._probe_set_images(probe_set_id, timeout)
            bad = [i for i in missing if i >= len(images)]
            if bad:
                raise InvalidArgument(
                    f"probe index {bad[0]} is out of range: the probe set has {len(images)} probes",
                    field="probe_indices",
                )
            encoded = await asyncio.to_thread(lambda: [thumbnail_png(images[i], size_px) for i in missing])
            for i, (data, width, height) in zip(missing, encoded, strict=True):
                self._cache[(probe_set_id, i, size_px)] = search_pb2.ProbeImage(
                    probe_index=i, data=data, media_type="image/png", width=width, height=height
                )
        out = []
        for i in indices:
            key = (probe_set_id, i, size_px)
            self._cache.move_to_end(key)
            out.append(self._cache[key])
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return out
