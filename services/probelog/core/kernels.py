"""Scan kernels of :class:`probelog.core.index.SparseLogitIndex`: top-k by calibrated distance.

A kernel reads each index row once per batch of queries (paper Eq. 5, 6; docs/design.md):

    d^2[q, l] = sum_j (z[q, t_lj] - a_lj)^2          (= ||a_l||^2 - 2 <a_l, z_q[t_l]> + sum z_q[t_l]^2)
    score[q, l] = sqrt(d^2[q, l]) - offset[l]

and keeps, per query, the k best rows in the total order ``(score, segment key, row)``. A
segment is a model's contiguous run of rows; its key is the rank of its model id among all
model ids, so equal scores are ordered by model id, then logit index. That order does not depend
on insertion order, which lets a sharded ranker merge shards into exactly one ranker's order.
Filters act on whole segments, skipped during the scan without reading their rows; with
``one_hit_per_model`` each segment offers only its best row (ties: the lower row).

Two back ends give the same ranking:

- ``numba`` (:mod:`probelog.core._compiled`, the optional ``fast`` extra): fused, parallel, no
  score matrix; one query, or batches of up to 32 queries per pass;
- ``numpy``: chunked gathers with a running top-k, used when numba is not installed.

Both compute in float32 with the same operations in the same order (chunks of up to 32 probes
summed lane by lane, see :func:`_sum_sq`; no fused multiply-add, no reassociation), so they
give bit-identical scores, whatever the batch a query is scored in.
``PROBELOG_KERNEL=numpy`` forces the fallback.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "BACKENDS",
    "Segments",
    "TopK",
    "calibration_offsets",
    "compiled_available",
    "default_backend",
    "search",
    "warm_up",
]

logger = logging.getLogger(__name__)

BACKENDS = ("numba", "numpy")

_compiled: ModuleType | None
try:
    from probelog.core import _compiled
except ImportError as exc:  # numba is an optional dependency
    _compiled = None
    logger.debug("numba kernels unavailable (%s); using numpy", exc)

# numba's parallel regions must not be entered from two threads at once; they use every core.
_COMPILED_LOCK = threading.Lock()


#: Rows (times 16-query groups) below which one more worker thread costs more than it saves.
_ROWS_PER_THREAD = 1 << 17


@contextlib.contextmanager
def _compiled_call(work_rows: int) -> Iterator[None]:
    """One compiled call at a time, on as many workers as ``work_rows`` rows deserve; its
    parts go to workers one by one (chunk size 1), so a worker slowed by a noisy neighbour
    takes fewer of them."""
    assert _compiled is not None
    numba = _compiled.numba
    with _COMPILED_LOCK:
        threads = numba.get_num_threads()
        chunk = numba.set_parallel_chunksize(1)
        numba.set_num_threads(max(1, min(threads, work_rows // _ROWS_PER_THREAD)))
        try:
            yield
        finally:
            numba.set_num_threads(threads)
            numba.set_parallel_chunksize(chunk)


#: Bytes of per-worker heaps a search may allocate; bounds the number of parts for large k.
_HEAP_BUDGET_BYTES = 64 << 20
#: numpy fallback: bytes of the gathered (n_queries, rows, r) float32 block per chunk.
_GATHER_BUDGET_BYTES = 32 << 20
_MAX_KEY = np.iinfo(np.int64).max


def compiled_available() -> bool:
    """Whether the numba kernels can be used."""
    return _compiled is not None


def default_backend() -> str:
    """``PROBELOG_KERNEL`` when set (numba or numpy), else numba when installed, else numpy."""
    wanted = os.environ.get("PROBELOG_KERNEL", "").strip().lower()
    if wanted in BACKENDS:
        if wanted == "numba" and _compiled is None:
            raise RuntimeError("PROBELOG_KERNEL=numba but numba is not installed (pip install probelog[fast])")
        return wanted
    if wanted not in ("", "auto"):
        raise ValueError(f"PROBELOG_KERNEL must be numba, numpy or auto, got {wanted!r}")
    return "numba" if _compiled is not None else "numpy"


def _resolve(backend: str | None) -> str:
    backend = backend or default_backend()
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "numba" and _compiled is None:
        raise RuntimeError("the numba back end needs numba (pip install probelog[fast])")
    return backend


@dataclass(frozen=True)
class Segments:
    """The rows of the index grouped by model, in row order.

    Attributes
    ----------
    start, stop : ndarray of shape (n_segments,), int64
        Segment s holds rows ``start[s]:stop[s]``; segments are contiguous and ascending.
    allowed : ndarray of shape (n_segments,), bool
        Segments to score (alive and passing the filters); the others are not read.
    key : ndarray of shape (n_segments,), int64
        Tie-break between equal scores: lower key first.
    """

    start: npt.NDArray[np.int64]
    stop: npt.NDArray[np.int64]
    allowed: npt.NDArray[np.bool_]
    key: npt.NDArray[np.int64]


@dataclass(frozen=True)
class TopK:
    """The k best rows per query, best first.

    Attributes
    ----------
    scores, distances : ndarray of shape (n_queries, k), float32
        ``scores[q, i]`` is the calibrated distance of the (i+1)-th best row of query q and
        ``distances[q, i]`` its truncated distance (paper Eq. 5); +inf past ``counts[q]``.
    rows, segments : ndarray of shape (n_queries, k), int64
        Row and segment of each hit; -1 past ``counts[q]``.
    counts : ndarray of shape (n_queries,), int64
        Hits found per query (< k when fewer rows are allowed).
    """

    scores: npt.NDArray[np.float32]
    distances: npt.NDArray[np.float32]
    rows: npt.NDArray[np.int64]
    segments: npt.NDArray[np.int64]
    counts: npt.NDArray[np.int64]


def _empty(n_queries: int, k: int) -> TopK:
    return TopK(
        scores=np.full((n_queries, k), np.inf, dtype=np.float32),
        distances=np.full((n_queries, k), np.inf, dtype=np.float32),
        rows=np.full((n_queries, k), -1, dtype=np.int64),
        segments=np.full((n_queries, k), -1, dtype=np.int64),
        counts=np.zeros(n_queries, dtype=np.int64),
    )


def search(
    idx: npt.NDArray[np.unsignedinteger[Any]],
    val: npt.NDArray[np.floating[Any]],
    offset: npt.NDArray[np.float32],
    z: npt.NDArray[np.float32],
    segments: Segments,
    k: int,
    *,
    one_hit_per_model: bool = False,
    backend: str | None = None,
) -> TopK:
    """The k best rows per query by calibrated truncated distance (paper Eq. 5, 6).

    Parameters
    ----------
    idx : ndarray of shape (n_rows, r), uint16 or uint32, C-contiguous
        Top-r probe indices per row.
    val : ndarray of shape (n_rows, r), float16 or float32, C-contiguous
        Z-scored values at those probes.
    offset : ndarray of shape (n_rows,), float32
        Calibration offsets.
    z : ndarray of shape (n_queries, n_probes), float32
        Z-scored query descriptors.
    segments : Segments
        Models' row ranges, which to score, and the tie-break keys.
    k : int
        Hits per query, >= 1.
    one_hit_per_model : bool
        Each segment offers only its best row.
    backend : {"numba", "numpy"}, optional
        Default: :func:`default_backend`.

    Returns
    -------
    TopK
        ``rows[q, i]`` is the (i+1)-th best row of query q in the order (score, key, row).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    z = np.ascontiguousarray(z, dtype=np.float32)
    if z.ndim != 2:
        raise ValueError(f"z must have shape (n_queries, n_probes), got {z.shape}")
    n_queries = z.shape[0]
    if not segments.allowed.any():
        return _empty(n_queries, k)
    if _resolve(backend) == "numba":
        return _search_compiled(idx, val, offset, z, segments, k, one_hit_per_model)
    return _search_numpy(idx, val, offset, z, segments, k, one_hit_per_model)


# ---------------------------------------------------------------------- numba


def _value_array(val: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.generic]:
    # numba has no float16 on the CPU: the kernel decodes the bits itself.
    return val.view(np.uint16) if val.dtype == np.float16 else val


def _parts(segments: Segments, n_parts: int) -> npt.NDArray[np.int64]:
    """Boundaries of ``n_parts`` contiguous segment ranges holding about equal allowed rows."""
    rows = (segments.stop - segments.start) * segments.allowed
    cum = np.cumsum(rows)
    targets = np.linspace(0, cum[-1], n_parts + 1)[1:-1]
    inner = np.searchsorted(cum, targets, side="left") + 1
    bounds = np.concatenate(([0], inner, [len(rows)])).astype(np.int64)
    return np.unique(bounds)


def _n_parts(n_queries: int, k: int, n_segments: int) -> int:
    assert _compiled is not None
    threads = _compiled.numba.get_num_threads()
    by_memory = max(1, _HEAP_BUDGET_BYTES // (32 * n_queries * k))
    # Several parts per thread: parts go to idle workers, which evens out noisy neighbours.
    return int(max(1, min(4 * threads, by_memory, n_segments)))


def _merge(
    hs: npt.NDArray[np.float32],
    hk: npt.NDArray[np.int64],
    hr: npt.NDArray[np.int64],
    hd: npt.NDArray[np.float32],
    hg: npt.NDArray[np.int64],
    hn: npt.NDArray[np.int64],
    k: int,
) -> TopK:
    """Merge per-part heaps (n_parts, n_queries, k) into one top-k per query."""
    n_parts, n_queries, _ = hs.shape
    valid = np.arange(k)[None, None, :] < hn[:, :, None]

    def flat(a: npt.NDArray[np.generic], fill: float) -> npt.NDArray[np.generic]:
        return np.where(valid, a, fill).transpose(1, 0, 2).reshape(n_queries, n_parts * k)

    scores = flat(hs, np.inf)
    keys = flat(hk, _MAX_KEY)
    rows = flat(hr, _MAX_KEY)
    order = np.lexsort((rows, keys, scores), axis=-1)[:, :k]
    counts = np.minimum(hn.sum(axis=0), k)
    past = np.arange(k)[None, :] >= counts[:, None]
    take = np.take_along_axis
    return TopK(
        scores=np.where(past, np.inf, take(scores, order, axis=1)).astype(np.float32),
        distances=np.where(past, np.inf, take(flat(hd, np.inf), order, axis=1)).astype(np.float32),
        rows=np.where(past, -1, take(rows, order, axis=1)).astype(np.int64),
        segments=np.where(past, -1, take(flat(hg, -1), order, axis=1)).astype(np.int64),
        counts=counts.astype(np.int64),
    )


def _search_compiled(
    idx: npt.NDArray[np.unsignedinteger[Any]],
    val: npt.NDArray[np.floating[Any]],
    offset: npt.NDArray[np.float32],
    z: npt.NDArray[np.float32],
    segments: Segments,
    k: int,
    one_hit: bool,
) -> TopK:
    assert _compiled is not None
    n_queries, n_probes = z.shape
    # The compiled scan reads a row's entries eight at a time: rows must be contiguous.
    idx = np.ascontiguousarray(idx)
    values = np.ascontiguousarray(_value_array(val))
    start = np.ascontiguousarray(segments.start, dtype=np.int64)
    stop = np.ascontiguousarray(segments.stop, dtype=np.int64)
    allowed = np.ascontiguousarray(segments.allowed, dtype=np.bool_)
    key = np.ascontiguousarray(segments.key, dtype=np.int64)
    batch = 1 if n_queries == 1 else _compiled.MAX_BATCH
    results = []
    for q0 in range(0, n_queries, batch):
        zq = z[q0 : q0 + batch]
        nq = zq.shape[0]
        parts = _parts(segments, _n_parts(nq, k, len(start)))
        n_parts = len(parts) - 1
        hs = np.empty((n_parts, nq, k), dtype=np.float32)
        hk = np.empty((n_parts, nq, k), dtype=np.int64)
        hr = np.empty((n_parts, nq, k), dtype=np.int64)
        hd = np.empty((n_parts, nq, k), dtype=np.float32)
        hg = np.empty((n_parts, nq, k), dtype=np.int64)
        hn = np.zeros((n_parts, nq), dtype=np.int64)
        rows = int(((stop - start) * allowed).sum())
        with _compiled_call(rows * -(-nq // _compiled.LANES)):
            if nq == 1:
                _compiled.search_one(
                    idx, values, offset, np.ascontiguousarray(zq[0]),
                    parts, start, stop, allowed, key, one_hit, hs, hk, hr, hd, hg, hn,
                )
            else:
                width = -(-nq // _compiled.LANES) * _compiled.LANES
                zt = np.zeros((n_probes, width), dtype=np.float32)
                zt[:, :nq] = zq.T
                _compiled.search_batch(
                    idx, values, offset, zt, nq,
                    parts, start, stop, allowed, key, one_hit, hs, hk, hr, hd, hg, hn,
                )
        results.append(_merge(hs, hk, hr, hd, hg, hn, k))
    if len(results) == 1:
        return results[0]
    return TopK(*(np.concatenate([getattr(r, f) for r in results]) for f in TopK.__dataclass_fields__))


# ---------------------------------------------------------------------- numpy


#: Blocks of eight probes per chunk of the summation order; the compiled kernels' _CHUNK_BLOCKS.
CHUNK_BLOCKS = 4


def _sum_sq(diff: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """sum over the last axis of diff**2 in the kernels' order (see _compiled): the full blocks
    of eight form chunks of CHUNK_BLOCKS blocks; lane i of a chunk adds the square of probe i of
    each of its blocks in turn, the chunk's sum is ((L0 + L1) + (L2 + L3)) + ((L4 + L5) + (L6 +
    L7)), the chunks' sums are added in order, then the rest one by one. Every float32
    operation is the compiled kernels', so both back ends give identical scores."""
    sq = diff * diff
    r = sq.shape[-1]
    full = r - r % 8
    acc = np.zeros(sq.shape[:-1], dtype=np.float32)
    for c0 in range(0, full, 8 * CHUNK_BLOCKS):
        lanes = sq[..., c0 : c0 + 8]
        for b in range(c0 + 8, min(c0 + 8 * CHUNK_BLOCKS, full), 8):
            lanes = lanes + sq[..., b : b + 8]
        l0, l1, l2, l3, l4, l5, l6, l7 = (lanes[..., i] for i in range(8))
        acc += ((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7))
    for j in range(full, r):
        acc += sq[..., j]
    return acc


def _search_numpy(
    idx: npt.NDArray[np.unsignedinteger[Any]],
    val: npt.NDArray[np.floating[Any]],
    offset: npt.NDArray[np.float32],
    z: npt.NDArray[np.float32],
    segments: Segments,
    k: int,
    one_hit: bool,
) -> TopK:
    n_queries = z.shape[0]
    r = idx.shape[1]
    chunk_rows = max(64, _GATHER_BUDGET_BYTES // (4 * n_queries * r))
    segs = np.flatnonzero(segments.allowed)
    lengths = segments.stop[segs] - segments.start[segs]
    cum = np.cumsum(lengths)
    # Groups of whole segments of about chunk_rows rows (a larger segment is a group alone).
    cuts = np.unique(np.searchsorted(cum, np.arange(chunk_rows, cum[-1], chunk_rows), side="right"))
    bounds = np.concatenate(([0], cuts[(cuts > 0) & (cuts < len(segs))], [len(segs)]))
    # Running best per query: score, key, row, distance, segment.
    best = [tuple(np.empty(0, dt) for dt in (np.float32, np.int64, np.int64, np.float32, np.int64))
            for _ in range(n_queries)]
    for g0, g1 in itertools.pairwise(bounds):
        group = segs[g0:g1]
        glen = lengths[g0:g1]
        seg_of_row = np.repeat(group, glen)
        rows = np.repeat(segments.start[group] - np.cumsum(glen) + glen, glen) + np.arange(glen.sum())
        a = val[rows].astype(np.float32)
        diff = z[:, idx[rows].astype(np.intp)] - a[None]  # (n_queries, n_rows, r)
        dist = np.sqrt(_sum_sq(diff))
        scores = dist - offset[rows][None]
        keys = segments.key[seg_of_row]
        for q in range(n_queries):
            s = scores[q]
            if one_hit:
                # Each segment's best row: order by segment, score, row; keep the first of each.
                order = np.lexsort((rows, s, seg_of_row))
                first = np.ones(len(order), dtype=bool)
                first[1:] = seg_of_row[order][1:] != seg_of_row[order][:-1]
                pick = order[first]
            elif len(s) > k:
                kth = np.partition(s, k - 1)[k - 1]
                pick = np.flatnonzero(s <= kth)
            else:
                pick = np.arange(len(s))
            cand = (s[pick], keys[pick], rows[pick], dist[q, pick], seg_of_row[pick])
            merged = tuple(np.concatenate((b, c)) for b, c in zip(best[q], cand, strict=True))
            order = np.lexsort((merged[2], merged[1], merged[0]))[:k]
            best[q] = tuple(m[order] for m in merged)
    out = _empty(n_queries, k)
    for q, (s, _, rows_q, d, g) in enumerate(best):
        n = len(s)
        out.scores[q, :n] = s
        out.distances[q, :n] = d
        out.rows[q, :n] = rows_q
        out.segments[q, :n] = g
        out.counts[q] = n
    return out


# ---------------------------------------------------------------------- calibration


def calibration_offsets(
    top_indices: npt.NDArray[np.integer[Any]],
    top_values: npt.NDArray[np.floating[Any]],
    background_z: npt.NDArray[np.float32],
    k: int,
    *,
    block_rows: int = 65_536,
    progress: Callable[[int], None] | None = None,
    backend: str | None = None,
) -> npt.NDArray[np.float32]:
    """Hubness offsets (paper Eq. 6) of many logits in one pass over them.

    Parameters
    ----------
    top_indices : ndarray of shape (n_logits, r), integer
        Top-r probe indices per logit, each in [0, n_probes).
    top_values : ndarray of shape (n_logits, r), float
        Z-scored values at those probes.
    background_z : ndarray of shape (n_background, n_probes), float32
        Z-scored background concept descriptors.
    k : int
        1 <= k <= n_background.
    block_rows : int
        Logits per block; ``progress(n)`` is called after each block with its size.
    backend : {"numba", "numpy"}, optional

    Returns
    -------
    ndarray of shape (n_logits,), float32
        ``out[l]`` = mean of the k smallest truncated distances of logit l to the background.
    """
    from probelog.core.distance import LogitEntries
    from probelog.core.distance import calibration_offsets as reference_offsets

    bz = np.ascontiguousarray(background_z, dtype=np.float32)
    if bz.ndim != 2:
        raise ValueError(f"background descriptors must be 2-D, got shape {bz.shape}")
    n_background, n_probes = bz.shape
    if not 1 <= k <= n_background:
        raise ValueError(f"k must be in [1, {n_background}] (the background size), got {k}")
    if top_indices.shape != top_values.shape or top_indices.ndim != 2:
        raise ValueError("top_indices and top_values must both have shape (n_logits, r)")
    n_logits = top_indices.shape[0]
    if n_logits and (top_indices.min() < 0 or top_indices.max() >= n_probes):
        raise ValueError(f"top_indices must lie in [0, {n_probes})")
    out = np.empty(n_logits, dtype=np.float32)
    compiled = _resolve(backend) == "numba"
    if compiled:
        assert _compiled is not None
        width = _compiled.MAX_BATCH
        n_slices = -(-n_background // width)
        padded = np.zeros((n_slices * width, n_probes), dtype=np.float32)
        padded[:n_background] = bz
        # (n_slices, n_probes, width): each slice's probe rows contiguous.
        bt = np.ascontiguousarray(padded.reshape(n_slices, width, n_probes).transpose(0, 2, 1))
        index_dtype = np.uint16 if n_probes <= 65536 else np.uint32
        # Inner blocks small enough that a block's squared distances stay in cache.
        inner = max(16, min(1024, 2**20 // (4 * n_slices * width)))
    for start in range(0, n_logits, block_rows):
        stop = min(start + block_rows, n_logits)
        if compiled:
            assert _compiled is not None
            block_out = np.empty(stop - start, dtype=np.float64)
            with _compiled_call((stop - start) * n_slices * 2):
                _compiled.calibration_offsets(
                    np.ascontiguousarray(top_indices[start:stop], dtype=index_dtype),
                    np.ascontiguousarray(top_values[start:stop], dtype=np.float32),
                    bt, n_background, int(k), inner, block_out,
                )
            out[start:stop] = block_out
        else:
            block = LogitEntries(
                np.asarray(top_indices[start:stop], dtype=np.int64),
                np.asarray(top_values[start:stop], dtype=np.float32),
                n_probes,
            )
            out[start:stop] = reference_offsets(block, bz, k)
        if progress is not None:
            progress(stop - start)
    return out


# ---------------------------------------------------------------------- warm-up


def warm_up(
    index_dtypes: tuple[npt.DTypeLike, ...] = (np.uint16,),
    value_dtypes: tuple[npt.DTypeLike, ...] = (np.float16,),
) -> bool:
    """Compile (or load from the on-disk cache) the kernels for these storage types, so that
    the first query does not pay for it. Returns False when numba is not available, or when
    the compiled kernels fail here; the numpy kernels are used from then on."""
    global _compiled
    if _compiled is None:
        return False
    try:
        _warm_up(index_dtypes, value_dtypes)
    except Exception:
        if os.environ.get("PROBELOG_KERNEL", "").strip().lower() == "numba":
            raise
        logger.exception("the numba kernels do not work on this machine; falling back to numpy")
        _compiled = None
        return False
    return True


def _warm_up(index_dtypes: tuple[npt.DTypeLike, ...], value_dtypes: tuple[npt.DTypeLike, ...]) -> None:
    rng = np.random.default_rng(0)
    n_probes, r = 64, 8
    z = rng.normal(size=(2, n_probes)).astype(np.float32)
    for index_dtype in index_dtypes:
        for value_dtype in value_dtypes:
            idx = rng.integers(0, n_probes, size=(4, r)).astype(index_dtype)
            val = rng.normal(size=(4, r)).astype(value_dtype)
            offset = np.zeros(4, dtype=np.float32)
            segments = Segments(
                start=np.array([0, 2], dtype=np.int64),
                stop=np.array([2, 4], dtype=np.int64),
                allowed=np.ones(2, dtype=np.bool_),
                key=np.array([0, 1], dtype=np.int64),
            )
            for queries in (z[:1], z):
                _search_compiled(idx, val, offset, queries, segments, 2, False)
