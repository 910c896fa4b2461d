"""The in-memory search index: every indexed logit as a compact sparse row.

Per logit l the index keeps its top-r probe indices t_l (uint16 while n_probes <= 65,536, uint32
otherwise), its z-scored responses a_l at those probes (float16 by default, float32 as an
option), ``||a_l||^2`` and its calibration offset. A query with z-scored descriptor z costs one
pass over those rows (docs/design.md; :mod:`probelog.core.kernels`):

    d^2(l, c) = ||a_l||^2 - 2 <a_l, z[t_l]> + sum_j z[t_lj]^2 = sum_j (z[t_lj] - a_lj)^2
    score(l, c) = sqrt(d^2(l, c)) - offset(l)                       (paper Eq. 5, 6)

Bytes per logit in the default layout at r = 50: 50 * 2 (indices) + 50 * 2 (values) + 4 (norm)
+ 4 (offset) = 208. ``||a_l||^2`` is computed from the stored (rounded) values, so a stored row
is an exact point. The fused kernels sum ``(z - a)^2`` directly (the same number of operations,
no cancellation) and read 204 of those bytes; the sparse-matrix form, for scipy or BLAS
consumers (:meth:`SparseLogitIndex.as_sparse`), uses the norm.

float16 costs little accuracy (bench/results/ranker.md): on a synthetic hub of 50,000 logits with
planted matches, the float16 and float32 indexes return the same top-10 sets for all 200 queries
(the same order for ~96%: neighbours with nearly equal scores swap) and the planted logit's rank
does not change. Values keep 11 significant bits, so a distance moves by about 1e-3 relative.

Each model's rows are one contiguous segment. Adding a model appends its rows (amortised
growth); removing one marks its segment dead (a tombstone) and :meth:`SparseLogitIndex.compact`
reclaims the rows. Neither rebuilds the index. Equal scores are ordered by model id, then logit
index, whatever the insertion order, so a sharded ranker merges into exactly this order.

Everything else is arrays too, with no Python object per logit and none per model beyond a
small dict of the models added since the ids were last sorted: model ids are one fixed-width
bytes array per segment with its sorted order (lookups by binary search), labels are one UTF-8
buffer with an end offset per row, kept apart from the rows a query reads. Resident
memory is therefore close to the arrays' bytes (bench/results/ranker.md), and the whole index can
be written to one file and memory-mapped back (:meth:`SparseLogitIndex.save`,
:meth:`SparseLogitIndex.load`, :mod:`probelog.core.index_file`) without a pass over its rows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from probelog.core import index_file, kernels
from probelog.core.descriptors import zscore
from probelog.core.distance import LogitEntries

__all__ = ["IndexHit", "IndexStats", "SparseLogitIndex"]

G = TypeVar("G", bound=np.generic)

_MIN_CAPACITY = 1024
_MIN_SEGMENTS = 64
#: Segments added since the ids were last sorted that are looked up in a dict; beyond
#: max(this, a quarter of the segments) the ids are sorted again (amortised O(log n) per add).
_MIN_UNSORTED = 1024
#: Version of the file :meth:`SparseLogitIndex.save` writes.
FILE_FORMAT = "probelog-sparse-logit-index/1"


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
    backend : {"numba", "numpy"}, optional
        Scan kernel (:mod:`probelog.core.kernels`); default: numba when installed.

    Notes
    -----
    Thread-safe: mutations and searches take one lock, so a search sees a consistent index.
    """

    def __init__(
        self,
        n_probes: int,
        r: int,
        values_dtype: npt.DTypeLike = np.float16,
        *,
        backend: str | None = None,
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
        self.backend = backend
        self._lock = threading.RLock()
        # Rows: the arrays a query reads (indices, values, offsets), the squared norms of the
        # sparse form, and each row's label as the end of its bytes in _label_bytes.
        self._size = 0
        self._idx: npt.NDArray[np.unsignedinteger[Any]] = np.empty((0, self.r), dtype=self.index_dtype)
        self._val: npt.NDArray[np.floating[Any]] = np.empty((0, self.r), dtype=self.values_dtype)
        self._sq_norm = np.empty(0, dtype=np.float32)
        self._offset = np.empty(0, dtype=np.float32)
        self._label_end = np.empty(0, dtype=np.int64)
        self._label_bytes = np.empty(0, dtype=np.uint8)
        self._n_label_bytes = 0
        # Segments in row order, one per add(): a model's rows are contiguous. Removed models'
        # segments stay (dead) until compaction, so that row numbers never move under a reader.
        # _seg_id holds each segment's model id (UTF-8, fixed width); _sorted is the segments
        # sorted by id as of the last sort, _unsorted the segments added since (id -> segment).
        self._n_segments = 0
        self._n_models = 0
        self._seg_start = np.empty(0, dtype=np.int64)
        self._seg_stop = np.empty(0, dtype=np.int64)
        self._seg_alive = np.empty(0, dtype=np.bool_)
        self._seg_key = np.empty(0, dtype=np.int64)
        self._seg_id = np.empty(0, dtype="S1")
        self._sorted = np.empty(0, dtype=np.int64)
        self._unsorted: dict[str, int] = {}
        self._keys_stale = False
        self._dead_rows = 0

    @classmethod
    def from_arrays(
        cls,
        n_probes: int,
        top_indices: npt.ArrayLike,
        top_values: npt.ArrayLike,
        offsets: npt.ArrayLike,
        model_ids: Sequence[str],
        logits_per_model: Sequence[int] | npt.ArrayLike,
        values_dtype: npt.DTypeLike = np.float16,
        *,
        backend: str | None = None,
    ) -> SparseLogitIndex:
        """An index over pre-built rows, without a call per model (snapshots, benchmarks).

        Parameters
        ----------
        top_indices, top_values : array-like of shape (n_logits, r)
            Rows of all models, model after model.
        offsets : array-like of shape (n_logits,)
        model_ids : sequence of str
            Distinct ids, one per model, in row order.
        logits_per_model : sequence of int
            Rows of each model; sums to n_logits.
        """
        idx = np.asarray(top_indices)
        counts = np.asarray(logits_per_model, dtype=np.int64)
        if idx.ndim != 2:
            raise ValueError(f"top_indices must have shape (n_logits, r), got {idx.shape}")
        index = cls(n_probes, idx.shape[1], values_dtype, backend=backend)
        n = idx.shape[0]
        if len(model_ids) != len(counts) or counts.sum() != n or (counts < 1).any():
            raise ValueError("logits_per_model must give each model at least one row and sum to n_logits")
        ids = _encode_ids(model_ids)
        if len(np.unique(ids)) != len(ids):
            raise ValueError("model ids must be distinct")
        values = np.asarray(top_values, dtype=index.values_dtype)
        offsets = np.asarray(offsets, dtype=np.float32).reshape(-1)
        if values.shape != idx.shape or offsets.shape != (n,):
            raise ValueError("top_values must match top_indices and offsets must have one value per row")
        if n and (idx.min() < 0 or idx.max() >= n_probes):
            raise ValueError(f"top_indices must lie in [0, {n_probes})")
        if not (np.isfinite(values).all() and np.isfinite(offsets).all()):
            raise ValueError("non-finite descriptor values")
        index._reserve(n)
        index._idx[:n] = idx
        index._val[:n] = values
        index._sq_norm[:n] = _sq_norms(values)
        index._offset[:n] = offsets
        index._label_end[:n] = 0
        index._size = n
        m = len(counts)
        stops = np.cumsum(counts)
        index._reserve_segments(m)
        index._seg_start[:m] = stops - counts
        index._seg_stop[:m] = stops
        index._seg_alive[:m] = True
        index._seg_id = ids
        index._n_segments = index._n_models = m
        index._sort_ids()
        return index

    # ------------------------------------------------------------------ files

    def save(self, f: BinaryIO) -> None:
        """Write the index to the binary file ``f`` (from its start), for :meth:`load` to map
        back; through ``probelog.common.files.atomic_write`` for a crash-safe file. Dead rows
        are written too; compact first to drop them."""
        with self._lock:
            self._sort_ids()
            n, m = self._size, self._n_segments
            index_file.write(
                f,
                {
                    "format": FILE_FORMAT,
                    "n_probes": self.n_probes,
                    "r": self.r,
                    "values_dtype": self.values_dtype.name,
                    "n_models": self._n_models,
                    "dead_rows": self._dead_rows,
                },
                {
                    "idx": self._idx[:n],
                    "val": self._val[:n],
                    "sq_norm": self._sq_norm[:n],
                    "offset": self._offset[:n],
                    "label_end": self._label_end[:n],
                    "label_bytes": self._label_bytes[: self._n_label_bytes],
                    "seg_start": self._seg_start[:m],
                    "seg_stop": self._seg_stop[:m],
                    "seg_alive": self._seg_alive[:m],
                    "seg_id": self._seg_id[:m],
                    "sorted": self._sorted,
                },
            )

    @classmethod
    def load(cls, path: str | Path, *, backend: str | None = None) -> SparseLogitIndex:
        """An index memory-mapped from a file :meth:`save` wrote.

        The rows stay in the file (mapped, paged in by the first queries, never written), so loading takes
        the same time whatever the index's size; only the per-segment flags are copied. Adding
        a model copies the rows into memory first.

        Raises
        ------
        ValueError
            The file is not an index file of this format, or is truncated or inconsistent.
        OSError
            The file cannot be read.
        """
        meta, arrays = index_file.read(path)
        if meta.get("format") != FILE_FORMAT:
            raise ValueError(f"{path}: not a {FILE_FORMAT} file (format {meta.get('format')!r})")
        try:
            index = cls(int(meta["n_probes"]), int(meta["r"]), meta["values_dtype"], backend=backend)
            idx, val = arrays["idx"], arrays["val"]
            n, m = len(idx), len(arrays["seg_start"])
            shapes_ok = (
                idx.shape == (n, index.r) and idx.dtype == index.index_dtype
                and val.shape == idx.shape and val.dtype == index.values_dtype
                and all(arrays[a].shape == (n,) for a in ("sq_norm", "offset", "label_end"))
                and all(arrays[a].shape == (m,) for a in ("seg_stop", "seg_alive", "seg_id", "sorted"))
                and (m == 0 or int(arrays["seg_stop"][-1]) == n)
            )
            if not shapes_ok:
                raise ValueError("the arrays' shapes or types do not agree")
            index._idx, index._val = idx, val
            index._sq_norm, index._offset = arrays["sq_norm"], arrays["offset"]
            index._label_end, index._label_bytes = arrays["label_end"], arrays["label_bytes"]
            index._n_label_bytes = len(index._label_bytes)
            index._size = n
            index._seg_start, index._seg_stop = arrays["seg_start"], arrays["seg_stop"]
            index._seg_alive = np.array(arrays["seg_alive"])  # remove() writes it
            index._seg_id, index._sorted = arrays["seg_id"], arrays["sorted"]
            index._seg_key = np.empty(m, dtype=np.int64)
            index._n_segments = m
            index._n_models = int(meta["n_models"])
            index._dead_rows = int(meta["dead_rows"])
            index._keys_stale = True
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a valid index file ({exc})") from None
        return index

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
        encoded_labels = [label.encode() for label in labels] if labels else []
        if encoded_labels and len(encoded_labels) != n:
            raise ValueError(f"model {model_id!r}: {len(encoded_labels)} labels for {n} logits")
        encoded_id = _encode_ids([model_id])
        values = entries.top_values.astype(self.values_dtype)
        if not np.isfinite(values).all():
            raise ValueError(f"model {model_id!r} has values beyond the range of {self.values_dtype}")
        label_lengths = np.array([len(b) for b in encoded_labels] or [0] * n, dtype=np.int64)
        with self._lock:
            self._remove_locked(model_id)
            self._reserve(self._size + n)
            self._reserve_segments(self._n_segments + 1)
            rows = slice(self._size, self._size + n)
            self._idx[rows] = entries.top_indices
            self._val[rows] = values
            self._sq_norm[rows] = _sq_norms(values)
            self._offset[rows] = offsets
            blob = b"".join(encoded_labels)
            if blob:
                self._reserve_label_bytes(self._n_label_bytes + len(blob))
                self._label_bytes[self._n_label_bytes : self._n_label_bytes + len(blob)] = np.frombuffer(
                    blob, np.uint8
                )
            self._label_end[rows] = self._n_label_bytes + np.cumsum(label_lengths)
            self._n_label_bytes += len(blob)
            s = self._n_segments
            if encoded_id.dtype.itemsize > self._seg_id.dtype.itemsize:
                self._seg_id = self._seg_id.astype(encoded_id.dtype)
            self._seg_id[s] = encoded_id[0]
            self._seg_start[s] = self._size
            self._seg_stop[s] = self._size + n
            self._seg_alive[s] = True
            self._n_segments += 1
            self._n_models += 1
            self._unsorted[model_id] = s
            self._keys_stale = True
            self._size += n
            if len(self._unsorted) > max(_MIN_UNSORTED, self._n_segments // 4):
                self._sort_ids()

    def remove(self, model_id: str) -> bool:
        """Mark a model's rows dead. Returns False when the model was not indexed."""
        with self._lock:
            return self._remove_locked(model_id)

    def _remove_locked(self, model_id: str) -> bool:
        s = self._segment(model_id)
        if s < 0:
            return False
        self._unsorted.pop(model_id, None)
        self._seg_alive[s] = False
        self._n_models -= 1
        self._dead_rows += int(self._seg_stop[s] - self._seg_start[s])
        return True

    def compact(self) -> int:
        """Drop dead rows; returns how many were reclaimed."""
        with self._lock:
            if self._dead_rows == 0:
                return 0
            m = self._n_segments
            alive = self._seg_alive[:m]
            lengths = (self._seg_stop[:m] - self._seg_start[:m])[alive]
            starts = self._seg_start[:m][alive]
            keep = np.asarray(
                np.repeat(starts - (np.cumsum(lengths) - lengths), lengths) + np.arange(lengths.sum()), dtype=np.int64
            )
            self._label_bytes, self._label_end = _take_strings(self._label_bytes, self._label_end[: self._size], keep)
            self._n_label_bytes = len(self._label_bytes)
            self._idx = self._idx[keep]
            self._val = self._val[keep]
            self._sq_norm = self._sq_norm[keep]
            self._offset = self._offset[keep]
            self._seg_id = self._seg_id[:m][alive]
            self._seg_stop = np.cumsum(lengths)
            self._seg_start = self._seg_stop - lengths
            self._n_segments = len(lengths)
            self._seg_alive = np.ones(self._n_segments, dtype=np.bool_)
            self._seg_key = np.empty(self._n_segments, dtype=np.int64)
            self._sort_ids()
            reclaimed = self._dead_rows
            self._size = len(keep)
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
        self._label_end = _grow(self._label_end, new_cap)

    def _reserve_label_bytes(self, capacity: int) -> None:
        if capacity > len(self._label_bytes):
            self._label_bytes = _grow(self._label_bytes, max(_MIN_CAPACITY, capacity, 2 * len(self._label_bytes)))

    def _reserve_segments(self, capacity: int) -> None:
        if capacity <= len(self._seg_start):
            return
        new_cap = max(_MIN_SEGMENTS, capacity, 2 * len(self._seg_start))
        self._seg_start = _grow(self._seg_start, new_cap)
        self._seg_stop = _grow(self._seg_stop, new_cap)
        self._seg_alive = _grow(self._seg_alive, new_cap)
        self._seg_key = _grow(self._seg_key, new_cap)
        self._seg_id = _grow(self._seg_id, new_cap)

    def _sort_ids(self) -> None:
        """Sort the segments by model id (dead ones included, ties by segment) for lookups."""
        m = self._n_segments
        self._sorted = np.argsort(self._seg_id[:m], kind="stable").astype(np.int64)
        self._unsorted.clear()
        self._keys_stale = True

    def _segment(self, model_id: str) -> int:
        """The live segment of ``model_id``, or -1."""
        s = self._unsorted.get(model_id)
        if s is not None:
            return s
        encoded = model_id.encode()
        if not encoded or len(encoded) > self._seg_id.dtype.itemsize or b"\0" in encoded:
            return -1
        ids = self._seg_id
        order = self._sorted
        # Binary search through the permutation (no sorted copy of the ids is kept).
        lo, hi = 0, len(order)
        while lo < hi:
            mid = (lo + hi) // 2
            if ids[order[mid]] < encoded:
                lo = mid + 1
            else:
                hi = mid
        while lo < len(order) and ids[order[lo]] == encoded:
            s = int(order[lo])
            if self._seg_alive[s]:
                return s
            lo += 1
        return -1

    def _refresh_keys(self) -> None:
        """Rank segments by model id (the tie-break between equal scores); after mutations."""
        if not self._keys_stale:
            return
        if len(self._sorted) != self._n_segments:  # segments added since the last sort
            self._sort_ids()
        self._seg_key[self._sorted] = np.arange(self._n_segments, dtype=np.int64)
        self._keys_stale = False

    # ------------------------------------------------------------------ queries

    def __contains__(self, model_id: object) -> bool:
        if not isinstance(model_id, str):
            return False
        with self._lock:
            return self._segment(model_id) >= 0

    def model_ids(self) -> list[str]:
        with self._lock:
            m = self._n_segments
            return [i.decode() for i in self._seg_id[:m][self._seg_alive[:m]].tolist()]

    def stats(self) -> IndexStats:
        """Sizes of the index. Does not wait for a running search (it takes no lock), so an
        event loop can ask while a worker thread scans; a concurrent mutation may be half
        counted."""
        size, dead = self._size, self._dead_rows
        return IndexStats(
            n_logits=size - dead,
            n_models=self._n_models,
            n_probes=self.n_probes,
            r=self.r,
            index_bytes=size * self.bytes_per_logit,
            dead_rows=dead,
        )

    @property
    def bytes_per_logit(self) -> int:
        """Bytes of index per logit: indices, values, squared norm, offset."""
        return self.r * (self.index_dtype.itemsize + self.values_dtype.itemsize) + 8

    def nbytes(self) -> dict[str, int]:
        """Bytes of each part of the index as stored now (capacity not yet used excluded):
        ``rows`` (indices, values, norms, offsets), ``labels`` (end offsets and UTF-8 text) and
        ``models`` (per-segment ranges, flags, keys, ids and their order)."""
        with self._lock:
            n, m = self._size, self._n_segments
            return {
                "rows": n * self.bytes_per_logit,
                "labels": n * self._label_end.itemsize + self._n_label_bytes,
                "models": m * (8 + 8 + 1 + 8 + 8 + self._seg_id.dtype.itemsize),
            }

    def arrays(self) -> tuple[npt.NDArray[np.unsignedinteger[Any]], npt.NDArray[np.floating[Any]],
                              npt.NDArray[np.float32], npt.NDArray[np.float32]]:
        """The live prefix of the row arrays (indices, values, squared norms, offsets), dead rows
        included; views, valid until the next mutation."""
        with self._lock:
            n = self._size
            return self._idx[:n], self._val[:n], self._sq_norm[:n], self._offset[:n]

    def as_sparse(self) -> tuple[sp.csr_matrix, npt.NDArray[np.float32]]:
        """The live rows in the sparse inner-product form of docs/design.md.

        Returns
        -------
        A : scipy.sparse.csr_matrix of shape (n_rows, n_probes), float32
            Row l holds a_l at t_l (dead rows included; see :meth:`arrays`), explicit zeros kept.
        sq_norm : ndarray of shape (n_rows,), float32
            ``||a_l||^2``. With M the pattern of A (A with its data set to 1),
            ``d^2 = sq_norm - 2 A @ z + M @ z**2`` for a z-scored query z.
        """
        idx, val, sq_norm, _ = self.arrays()
        n = len(idx)
        indptr = np.arange(0, n * self.r + 1, self.r, dtype=np.int64)
        a = sp.csr_matrix(
            (val.astype(np.float32).ravel(), idx.astype(np.int32).ravel(), indptr),
            shape=(n, self.n_probes),
        )
        return a, sq_norm.copy()

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
            Model ids to restrict to / leave out; the scan skips the other models' rows.

        Returns
        -------
        list of list of IndexHit
            ``result[q]`` holds the hits of query q, best (lowest score) first; equal scores
            are ordered by model id, then logit index.
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
            self._refresh_keys()
            m, n = self._n_segments, self._size
            segments = kernels.Segments(
                start=self._seg_start[:m],
                stop=self._seg_stop[:m],
                allowed=self._allowed_segments(include, exclude),
                key=self._seg_key[:m],
            )
            top = kernels.search(
                self._idx[:n], self._val[:n], self._offset[:n], z, segments, top_k,
                one_hit_per_model=one_hit_per_model, backend=self.backend,
            )
            return [
                [
                    self._hit(int(top.segments[q, i]), int(top.rows[q, i]),
                              float(top.scores[q, i]), float(top.distances[q, i]))
                    for i in range(int(top.counts[q]))
                ]
                for q in range(len(z))
            ]

    def _allowed_segments(
        self, include: Iterable[str] | None, exclude: Iterable[str] | None
    ) -> npt.NDArray[np.bool_]:
        alive = self._seg_alive[: self._n_segments]
        include_set = set(include or ())
        exclude_set = set(exclude or ())
        if not include_set and not exclude_set:
            return alive
        if include_set:
            allowed = np.zeros(self._n_segments, dtype=np.bool_)
            for model_id in include_set - exclude_set:
                s = self._segment(model_id)
                if s >= 0:
                    allowed[s] = True
            return allowed
        allowed = alive.copy()
        for model_id in exclude_set:
            s = self._segment(model_id)
            if s >= 0:
                allowed[s] = False
        return allowed

    def _hit(self, segment: int, row: int, score: float, distance: float) -> IndexHit:
        stop = int(self._label_end[row])
        start = int(self._label_end[row - 1]) if row > 0 else 0
        label = self._label_bytes[start:stop].tobytes().decode() if stop > start else ""
        model_id = self._seg_id[segment].decode()
        return IndexHit(model_id, row - int(self._seg_start[segment]), label, score, distance)


def _grow(arr: npt.NDArray[G], capacity: int) -> npt.NDArray[G]:
    out = np.empty((capacity, *arr.shape[1:]), dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


def _sq_norms(values: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.float32]:
    """``||a_l||^2`` of the stored (rounded) values, in float32."""
    stored = values.astype(np.float32)
    return np.asarray(np.einsum("lr,lr->l", stored, stored), dtype=np.float32)


def _encode_ids(model_ids: Sequence[str]) -> npt.NDArray[np.bytes_]:
    """Model ids as a fixed-width UTF-8 bytes array (numpy pads with NUL, so ids may not hold one)."""
    encoded = [model_id.encode() for model_id in model_ids]
    if any(not e or b"\0" in e for e in encoded):
        raise ValueError("model ids must be non-empty and hold no NUL character")
    width = max((len(e) for e in encoded), default=1)
    return np.array(encoded, dtype=f"S{width}")


def _take_strings(
    blob: npt.NDArray[np.uint8], ends: npt.NDArray[np.int64], keep: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64]]:
    """The strings ``keep`` of a buffer of strings given by their end offsets: (buffer, ends)."""
    starts = np.concatenate(([0], ends[:-1]))[keep]
    lengths = ends[keep] - starts
    new_ends = np.cumsum(lengths)
    picks = np.repeat(starts - (new_ends - lengths), lengths) + np.arange(new_ends[-1] if len(keep) else 0)
    return blob[picks], new_ends.astype(np.int64)
