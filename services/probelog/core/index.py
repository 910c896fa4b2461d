"""The in-memory search index: every indexed logit as a compact sparse row.

Per logit l the index keeps its top-r probe indices t_l (uint16 while n_probes < 65,536, uint32
otherwise), its z-scored responses a_l at those probes (float16 by default, float32 as an
option), ``||a_l||^2`` and its calibration offset. A query with z-scored descriptor z costs one
pass over those rows (DESIGN.md):

    d^2(l, c) = ||a_l||^2 + sum_j z[t_lj] * (z[t_lj] - 2 a_lj)
    score(l, c) = sqrt(d^2(l, c)) - offset(l)                       (paper Eq. 5, 6)

Bytes per logit in the default layout at r = 50: 50 * 2 (indices) + 50 * 2 (values) + 4 (norm)
+ 4 (offset) = 208. ``||a_l||^2`` is computed from the stored (rounded) values, so a stored row
is an exact point and distances to it are never negative.

Adding a model appends its rows (amortised growth); removing one marks its rows dead
(tombstones) and :meth:`SparseLogitIndex.compact` reclaims them. Neither rebuilds the index.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from probelog.core import kernels
from probelog.core.descriptors import zscore
from probelog.core.distance import LogitEntries

__all__ = ["IndexHit", "IndexStats", "SparseLogitIndex"]

_MIN_CAPACITY = 1024


@dataclass(frozen=True)
class IndexHit:
    """One ranked logit."""

    model_id: str
    logit_index: int
    label: str
    score: float
    distance: float


@dataclass(frozen=True)
class IndexStats:
    n_logits: int
    n_models: int
    n_probes: int
    r: int
    index_bytes: int
    dead_rows: int


@dataclass
class _Model:
    model_id: str
    start: int
    stop: int
    labels: tuple[str, ...] = field(default_factory=tuple)


class SparseLogitIndex:
    """All indexed logits of one probe set, scored through the sparse inner-product form.

    Parameters
    ----------
    n_probes : int
        Size of the probe set; every row's indices lie in [0, n_probes).
    r : int
        Probes kept per logit.
    values_dtype : {np.float16, np.float32}
        Storage type of the z-scored values. float16 halves the bytes a query reads.

    Notes
    -----
    Thread-safe: mutations and searches take one lock, so a search sees a consistent index.
    """

    def __init__(
        self, n_probes: int, r: int, values_dtype: npt.DTypeLike = np.float16
    ) -> None:
        if n_probes < 2:
            raise ValueError(f"n_probes must be at least 2, got {n_probes}")
        if not 1 <= r <= n_probes:
            raise ValueError(f"r must be in [1, {n_probes}], got {r}")
        self.n_probes = int(n_probes)
        self.r = int(r)
        self.values_dtype = np.dtype(values_dtype)
        if self.values_dtype not in (np.dtype(np.float16), np.dtype(np.float32)):
            raise ValueError(f"values_dtype must be float16 or float32, got {self.values_dtype}")
        self.index_dtype = np.dtype(np.uint16 if n_probes <= 65536 else np.uint32)
        self._lock = threading.RLock()
        self._size = 0
        self._idx = np.empty((0, self.r), dtype=self.index_dtype)
        self._val = np.empty((0, self.r), dtype=self.values_dtype)
        self._sq_norm = np.empty(0, dtype=np.float32)
        self._offset = np.empty(0, dtype=np.float32)
        self._alive = np.empty(0, dtype=bool)
        # Row segments in row order: each model's rows are contiguous. Dead segments stay until
        # compaction so that row numbers never move under a reader.
        self._models: dict[str, _Model] = {}
        self._segments: list[_Model] = []
        self._dead_rows = 0

    # ------------------------------------------------------------------ mutation

    def add(
        self,
        model_id: str,
        entries: LogitEntries,
        offsets: npt.ArrayLike,
        labels: Sequence[str] | None = None,
    ) -> None:
        """Add a model's logits, replacing any earlier version of the same model.

        Parameters
        ----------
        model_id : str
        entries : LogitEntries
            Top-r indices and z-scored values, shape (n_logits, r) each.
        offsets : array-like of shape (n_logits,)
            Calibration offsets (paper Eq. 6).
        labels : sequence of str, optional
            The model's own label per logit, shown in hits.
        """
        offsets = np.asarray(offsets, dtype=np.float32).reshape(-1)
        n = entries.n_logits
        if entries.n_probes != self.n_probes:
            raise ValueError(
                f"model {model_id!r} was probed with {entries.n_probes} probes, "
                f"the index holds {self.n_probes}"
            )
        if entries.r != self.r:
            raise ValueError(f"model {model_id!r} has r = {entries.r}, the index uses {self.r}")
        if n == 0:
            raise ValueError(f"model {model_id!r} has no logits")
        if offsets.shape != (n,):
            raise ValueError(f"offsets must have shape ({n},), got {offsets.shape}")
        if not (np.isfinite(entries.top_values).all() and np.isfinite(offsets).all()):
            raise ValueError(f"model {model_id!r} has non-finite descriptor values")
        label_tuple = tuple(labels) if labels else ()
        if label_tuple and len(label_tuple) != n:
            raise ValueError(f"model {model_id!r}: {len(label_tuple)} labels for {n} logits")
        values = entries.top_values.astype(self.values_dtype)
        stored = values.astype(np.float32)
        with self._lock:
            self._remove_locked(model_id)
            self._reserve(self._size + n)
            rows = slice(self._size, self._size + n)
            self._idx[rows] = entries.top_indices
            self._val[rows] = values
            self._sq_norm[rows] = np.einsum("lr,lr->l", stored, stored)
            self._offset[rows] = offsets
            self._alive[rows] = True
            model = _Model(model_id, self._size, self._size + n, label_tuple)
            self._models[model_id] = model
            self._segments.append(model)
            self._size += n

    def remove(self, model_id: str) -> bool:
        """Mark a model's rows dead. Returns False when the model was not indexed."""
        with self._lock:
            return self._remove_locked(model_id)

    def _remove_locked(self, model_id: str) -> bool:
        model = self._models.pop(model_id, None)
        if model is None:
            return False
        self._alive[model.start : model.stop] = False
        self._dead_rows += model.stop - model.start
        return True

    def compact(self) -> int:
        """Drop dead rows; returns how many were reclaimed."""
        with self._lock:
            if self._dead_rows == 0:
                return 0
            keep = np.flatnonzero(self._alive[: self._size])
            self._idx = self._idx[keep].copy()
            self._val = self._val[keep].copy()
            self._sq_norm = self._sq_norm[keep].copy()
            self._offset = self._offset[keep].copy()
            self._alive = np.ones(len(keep), dtype=bool)
            segments, start = [], 0
            for model in self._segments:
                if self._models.get(model.model_id) is not model:
                    continue
                n = model.stop - model.start
                model.start, model.stop = start, start + n
                segments.append(model)
                start += n
            self._segments = segments
            reclaimed = self._dead_rows
            self._size = start
            self._dead_rows = 0
            return reclaimed

    def _reserve(self, capacity: int) -> None:
        if capacity <= len(self._sq_norm):
            return
        new_cap = max(_MIN_CAPACITY, capacity, 2 * len(self._sq_norm))
        self._idx = _grow(self._idx, new_cap)
        self._val = _grow(self._val, new_cap)
        self._sq_norm = _grow(self._sq_norm, new_cap)
        self._offset = _grow(self._offset, new_cap)
        self._alive = _grow(self._alive, new_cap)

    # ------------------------------------------------------------------ queries

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._models

    def model_ids(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def stats(self) -> IndexStats:
        with self._lock:
            live = self._size - self._dead_rows
            per_row = (
                self.r * (self.index_dtype.itemsize + self.values_dtype.itemsize) + 4 + 4
            )
            return IndexStats(
                n_logits=live,
                n_models=len(self._models),
                n_probes=self.n_probes,
                r=self.r,
                index_bytes=self._size * per_row,
                dead_rows=self._dead_rows,
            )

    @property
    def bytes_per_logit(self) -> int:
        """Bytes a query reads per logit: indices, values, squared norm, offset."""
        return self.r * (self.index_dtype.itemsize + self.values_dtype.itemsize) + 8

    def search(
        self,
        queries: npt.ArrayLike,
        top_k: int,
        *,
        one_hit_per_model: bool = False,
        include: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        normalized: bool = False,
    ) -> list[list[IndexHit]]:
        """Rank indexed logits for each query by calibrated truncated distance.

        Parameters
        ----------
        queries : array-like of shape (n_queries, n_probes) or (n_probes,)
            Raw query descriptors (z-scored here), or z-scored ones with ``normalized=True``.
        top_k : int
            Hits per query (fewer when fewer logits or models match).
        one_hit_per_model : bool
            Return each model once, through its best logit.
        include, exclude : iterable of str, optional
            Model ids to restrict to / leave out; applied while scoring.

        Returns
        -------
        list of list of IndexHit
            ``result[q]`` holds the hits of query q, best (lowest score) first; equal scores
            are ordered by insertion order of the logits.
        """
        if top_k < 1:
            raise ValueError(f"top_k must be at least 1, got {top_k}")
        z = np.asarray(queries, dtype=np.float32)
        if z.ndim == 1:
            z = z[None, :]
        if z.ndim != 2 or z.shape[1] != self.n_probes:
            raise ValueError(
                f"query descriptors must have {self.n_probes} values (the probe set's size), "
                f"got shape {z.shape}"
            )
        if not normalized:
            z = zscore(z, what="query")
        with self._lock:
            allowed = self._allowed_rows(include, exclude)
            scores, dists = kernels.score(
                self._idx[: self._size],
                self._val[: self._size],
                self._sq_norm[: self._size],
                self._offset[: self._size],
                np.ascontiguousarray(z),
                allowed,
            )
            if one_hit_per_model:
                return [self._best_per_model(s, d, top_k) for s, d in zip(scores, dists, strict=True)]
            return [self._top_rows(s, d, top_k) for s, d in zip(scores, dists, strict=True)]

    def _allowed_rows(
        self, include: Iterable[str] | None, exclude: Iterable[str] | None
    ) -> npt.NDArray[np.bool_]:
        include_set = set(include or ())
        exclude_set = set(exclude or ())
        if not include_set and not exclude_set:
            return self._alive[: self._size]
        allowed = np.zeros(self._size, dtype=bool)
        for model in self._segments:
            if self._models.get(model.model_id) is not model:
                continue
            if include_set and model.model_id not in include_set:
                continue
            if model.model_id in exclude_set:
                continue
            allowed[model.start : model.stop] = True
        return allowed

    def _hit(self, row: int, score: float, distance: float) -> IndexHit:
        model = self._segment_of(row)
        logit = row - model.start
        label = model.labels[logit] if model.labels else ""
        return IndexHit(model.model_id, logit, label, float(score), float(distance))

    def _segment_of(self, row: int) -> _Model:
        lo, hi = 0, len(self._segments)
        while lo < hi:
            mid = (lo + hi) // 2
            if self._segments[mid].stop <= row:
                lo = mid + 1
            else:
                hi = mid
        return self._segments[lo]

    def _top_rows(
        self, scores: npt.NDArray[np.float32], dists: npt.NDArray[np.float32], top_k: int
    ) -> list[IndexHit]:
        rows = _smallest(scores, top_k)
        return [self._hit(int(i), scores[i], dists[i]) for i in rows]

    def _best_per_model(
        self, scores: npt.NDArray[np.float32], dists: npt.NDArray[np.float32], top_k: int
    ) -> list[IndexHit]:
        if not self._segments:
            return []
        starts = np.fromiter((m.start for m in self._segments), dtype=np.int64)
        seg_min = np.minimum.reduceat(scores, starts) if len(scores) else scores
        hits = []
        for seg in _smallest(seg_min, top_k):
            model = self._segments[int(seg)]
            row = model.start + int(np.argmin(scores[model.start : model.stop]))
            hits.append(self._hit(row, scores[row], dists[row]))
        return hits


def _smallest(values: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    """Indices of the k smallest finite values, ascending, ties in index order."""
    finite = np.isfinite(values)
    n_finite = int(finite.sum())
    k = min(k, n_finite)
    if k == 0:
        return np.empty(0, dtype=np.int64)
    if k < len(values):
        cand = np.argpartition(values, k - 1)[:k]
        kth = values[cand].max()
        # Everything equal to the k-th value competes on index order.
        cand = np.flatnonzero(values <= kth)
    else:
        cand = np.flatnonzero(finite)
    order = np.lexsort((cand, values[cand]))
    return cand[order][:k].astype(np.int64)


def _grow(arr: npt.NDArray[np.generic], capacity: int) -> npt.NDArray[np.generic]:
    out = np.empty((capacity, *arr.shape[1:]), dtype=arr.dtype)
    out[: len(arr)] = arr
    return out
