"""Compiled (numba) scan kernels behind :mod:`probelog.core.kernels`.

Import this module only through ``kernels``: it needs numba, which is optional (``pip install
probelog[fast]``); ``kernels`` falls back to numpy when the import fails.

Every kernel reads each index row once per call and keeps, per query and per worker, a bounded
max-heap of the k best hits so far, ordered by ``(score, segment key, row)`` -- the total order
of :func:`probelog.core.kernels.search`. The arithmetic is float32 in a fixed order (no
``fastmath``): the squared distance of a row is ``sum_j (z[t_j] - a_j)**2``, the same sum as the
docs/design.md inner-product form, summed in a fixed order of partial sums, without the cancellation of
``||a||^2 - 2<a, z> + sum z^2``.

Most rows cannot enter a full heap. Before taking a square root, a row's ``d^2`` is compared
with ``(threshold + offset)^2``, widened by a relative 1e-5 (far more than float32 rounding), so
the exact score is computed only for rows that might enter; the filter never drops a row that
would have entered.

Worker threads sleep between calls (``OMP_WAIT_POLICY=PASSIVE`` unless set): the ranker's calls
last milliseconds, and spinning workers would take CPU from the gRPC threads beside them.

Compiled code is cached on disk (``cache=True``): in ``$NUMBA_CACHE_DIR`` when set, else in
``__pycache__`` beside this file, else in numba's user-wide cache (``~/.cache/numba``), else in
``<tmp>/probelog-numba-cache`` (read-only root file systems in containers, with an emptyDir on
/tmp). If none is writable, the kernels compile at every process start.
"""

# numba's decorators replace signatures (intrinsics take a typing context) and numba ships
# partial stubs: its calls are not checked here.
# mypy: disable-error-code="call-arg, attr-defined, no-untyped-call"

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Read by OpenMP when numba first starts its workers, after this import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba
import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

logger = logging.getLogger(__name__)

#: Most queries one batch-kernel call scores; callers split larger batches. 32 queries keep the
#: (n_probes, 32) float32 query table (512 KB at 4,000 probes) in a core's L2 cache.
MAX_BATCH = 32
#: Queries are padded to a multiple of this (16 float32 lanes = one AVX-512 register).
LANES = 16
#: Relative widening of the pre-filter bound (float32 rounding is ~6e-8).
_SLACK = np.float32(1e-5)
#: Blocks of eight probes a single-query scan sums before its first early-exit check. Checked
#: after every block, most rows leave after 16 or 24 probes, and which is hard to predict: each
#: row ended on a mispredicted branch behind its whole chain of loads and adds, which cost more
#: than the blocks a row now reads in vain. After 32 probes nearly every row leaves at the first
#: check, a branch the processor predicts, so it overlaps consecutive rows (first check after
#: 24, 32 and 40 probes measured; bench/results/ranker.md).
_HEAD_BLOCKS = 4


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def _ensure_cache_dir() -> None:
    """Point numba at a writable cache directory when its defaults are not writable."""
    if numba.config.CACHE_DIR:
        return
    if _writable(Path(__file__).parent / "__pycache__"):
        return
    user_wide = Path(os.path.expanduser("~")) / ".cache" / "numba"
    if _writable(user_wide):
        return
    fallback = Path(tempfile.gettempdir()) / "probelog-numba-cache"
    if _writable(fallback):
        numba.config.CACHE_DIR = str(fallback)


_ensure_cache_dir()


def _jit(**options: Any) -> Callable[[Callable[..., Any]], Any]:
    """``numba.njit(cache=True, **options)``, without the cache when no directory is writable."""

    def wrap(func: Callable[..., Any]) -> Any:
        try:
            return numba.njit(cache=True, **options)(func)
        except RuntimeError as exc:  # "cannot cache function ...: no locator available"
            logger.warning("numba cannot cache %s (%s); compiling at every start", func.__name__, exc)
            return numba.njit(cache=False, **options)(func)

    return wrap


# ---------------------------------------------------------------------- helpers


@intrinsic
def _stack_f32(typingctx: Any, n: Any) -> Any:
    """A float32 buffer of ``n`` (a literal int) on the stack: LLVM knows it aliases no array,
    so loops storing into it need no run-time overlap checks."""
    if not isinstance(n, types.IntegerLiteral):
        return None
    size = n.literal_value

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return cgutils.alloca_once(builder, context.get_value_type(types.float32), size=size)

    return types.CPointer(types.float32)(n), codegen


@intrinsic
def _f16_to_f32(typingctx: Any, h: Any) -> Any:
    """float16 bits (uint16) -> float32, exactly: LLVM's fpext (one vcvtph2ps with F16C)."""
    if h != types.uint16:
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(types.uint16), codegen


@intrinsic
def _block8_sq(typingctx: Any, z: Any, idx: Any, val: Any, row: Any, j: Any) -> Any:
    """``((d0^2 + d1^2) + (d2^2 + d3^2)) + ((d4^2 + d5^2) + (d6^2 + d7^2))`` with
    ``d_i = z[idx[row, j + i]] - val[row, j + i]``: a block of eight probes in the shared
    summation order, in vector registers.

    The eight query values go into one register by scalar loads (this host's AMD gathers are
    slower than the loads they replace); the eight values are one load and one float16 decode;
    one subtract and one multiply serve all eight; the pairwise sums are the scalar tree's, lane
    by lane, so the result is bit-identical to eight scalar terms. idx and val must be
    C-contiguous (a row's entries adjacent).
    """
    arrays_fit = (
        isinstance(z, types.Array) and z.ndim == 1 and z.dtype == types.float32
        and isinstance(idx, types.Array) and idx.ndim == 2 and idx.layout == "C"
        and idx.dtype in (types.uint16, types.uint32)
        and isinstance(val, types.Array) and val.ndim == 2 and val.layout == "C"
        and val.dtype in (types.uint16, types.float32)
    )
    if not arrays_fit:
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        z_ty, idx_ty, val_ty, row_ty, j_ty = sig.args
        at = [context.cast(builder, args[3], row_ty, types.intp), context.cast(builder, args[4], j_ty, types.intp)]
        f32, i32, i64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
        f32x8 = ir.VectorType(f32, 8)

        def entry(ty: Any, arg: Any) -> Any:
            return cgutils.get_item_pointer(context, builder, ty, context.make_array(ty)(context, builder, arg), at)

        # Values: one unaligned load of eight, decoded together (vcvtph2ps ymm).
        values = entry(val_ty, args[2])
        if val_ty.dtype == types.uint16:
            bits = builder.load(builder.bitcast(values, ir.VectorType(ir.IntType(16), 8).as_pointer()), align=2)
            a = builder.fpext(builder.bitcast(bits, ir.VectorType(ir.HalfType(), 8)), f32x8)
        else:
            a = builder.load(builder.bitcast(values, f32x8.as_pointer()), align=4)
        zdata = context.make_array(z_ty)(context, builder, args[0]).data
        indices = entry(idx_ty, args[1])
        g = f32x8(ir.Undefined)
        for i in range(8):
            t = builder.zext(builder.load(builder.gep(indices, [ir.Constant(i64, i)])), i64)
            g = builder.insert_element(g, builder.load(builder.gep(zdata, [t]), align=4), ir.Constant(i32, i))
        d = builder.fsub(g, a)
        sq = builder.fmul(d, d)

        def pairs(v: Any, n: int) -> Any:
            """[v0 + v1, v2 + v3, ...]: n sums of adjacent lanes."""
            even = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, n), list(range(0, 2 * n, 2))))
            odd = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, n), list(range(1, 2 * n, 2))))
            return builder.fadd(even, odd)

        halves = pairs(pairs(sq, 4), 2)
        return builder.fadd(builder.extract_element(halves, ir.Constant(i32, 0)), builder.extract_element(halves, ir.Constant(i32, 1)))

    return types.float32(z, idx, val, row, j), codegen


def _value(val: Any, row: Any, j: Any) -> Any:  # pragma: no cover - typing stub
    """``val[row, j]`` as float32 (float16 bits decoded)."""
    raise NotImplementedError


@overload(_value, inline="always")
def _value_impl(val: Any, row: Any, j: Any) -> Any:
    if isinstance(val, types.Array) and val.dtype == types.uint16:

        def decode(val: Any, row: Any, j: Any) -> Any:
            return _f16_to_f32(val[row, j])

        return decode

    if isinstance(val, types.Array) and val.dtype == types.float32:

        def read(val: Any, row: Any, j: Any) -> Any:
            return val[row, j]

        return read
    return None


@_jit(inline="always")
def _less(s1: float, k1: int, r1: int, s2: float, k2: int, r2: int) -> bool:
    """(s1, k1, r1) < (s2, k2, r2) lexicographically."""
    if s1 != s2:
        return s1 < s2
    if k1 != k2:
        return k1 < k2
    return r1 < r2


@_jit(inline="always")
def _push(
    hs: Any, hk: Any, hr: Any, hd: Any, hg: Any, n: int,
    score: float, key: int, row: int, dist: float, seg: int,
) -> int:
    """Offer a hit to a bounded max-heap (root = worst kept hit); returns the new size."""
    k = hs.shape[0]
    if n < k:
        i = n
        while i > 0:
            parent = (i - 1) >> 1
            if _less(hs[parent], hk[parent], hr[parent], score, key, row):
                hs[i] = hs[parent]
                hk[i] = hk[parent]
                hr[i] = hr[parent]
                hd[i] = hd[parent]
                hg[i] = hg[parent]
                i = parent
            else:
                break
        hs[i] = score
        hk[i] = key
        hr[i] = row
        hd[i] = dist
        hg[i] = seg
        return n + 1
    if not _less(score, key, row, hs[0], hk[0], hr[0]):
        return n
    i = 0
    while True:
        c = 2 * i + 1
        if c >= k:
            break
        if c + 1 < k and _less(hs[c], hk[c], hr[c], hs[c + 1], hk[c + 1], hr[c + 1]):
            c += 1
        if _less(score, key, row, hs[c], hk[c], hr[c]):
            hs[i] = hs[c]
            hk[i] = hk[c]
            hr[i] = hr[c]
            hd[i] = hd[c]
            hg[i] = hg[c]
            i = c
        else:
            break
    hs[i] = score
    hk[i] = key
    hr[i] = row
    hd[i] = dist
    hg[i] = seg
    return n


@_jit(inline="always")
def _bound2(threshold: float, off: float) -> Any:
    """Largest d^2 a row with this offset may have to enter a heap whose worst score is
    ``threshold``, widened by _SLACK; negative when no d^2 can (+inf while the heap is not full).

    sqrt(d^2) - offset <= threshold needs d^2 <= (threshold + offset)^2 with threshold + offset
    >= 0; float32 rounding of the score moves this by ~1e-7 relative, far inside the slack.
    """
    b = threshold + off + _SLACK * (abs(threshold) + abs(off))
    if b > 0:
        return b * b
    return np.float32(-1)


# ---------------------------------------------------------------------- search, one query
#
# Summation order, shared by every kernel and by the numpy fallback so that a row's score does
# not depend on the batch it is scored in: blocks of eight probes, each summed as the tree
# ((d0^2 + d1^2) + (d2^2 + d3^2)) + ((d4^2 + d5^2) + (d6^2 + d7^2)) and added to the running
# sum, then the r mod 8 remaining probes one by one.
#
# Early exit: every term is >= 0 and float rounding is monotone, so the running sum never
# decreases; once it exceeds the row's bound (_bound2) the row cannot enter the heap and the
# rest of its probes are not read. The rows that are completed get the same sum, in the same
# order, as without the exit.


@_jit(inline="always")
def _row_sq(idx: Any, val: Any, row: int, z: Any, bound2: float) -> Any:
    """sum_j (z[t_j] - a_j)^2 in the shared order; stops early (returning a partial sum above
    ``bound2``) when the sum exceeds ``bound2``, checked after the first _HEAD_BLOCKS blocks
    and after each block from then on (the r mod 8 last probes are summed without a check). Values are decoded as they are read, so the probes past
    an early exit cost nothing."""
    r = idx.shape[1]
    acc = np.float32(0)
    j = 0
    head = min(_HEAD_BLOCKS * 8, r - r % 8)
    while j < head:
        acc += _block8_sq(z, idx, val, row, j)
        j += 8
    if acc > bound2:
        return acc
    while j + 8 <= r:
        acc += _block8_sq(z, idx, val, row, j)
        j += 8
        if acc > bound2:
            return acc
    while j < r:
        d0 = z[idx[row, j]] - _value(val, row, j)
        acc += d0 * d0
        j += 1
    return acc


@_jit(parallel=True, nogil=True)
def search_one(
    idx: Any, val: Any, offset: Any, z: Any,
    part_seg: Any, seg_start: Any, seg_stop: Any, seg_allowed: Any, seg_key: Any,
    one_hit: bool,
    hs: Any, hk: Any, hr: Any, hd: Any, hg: Any, hn: Any,
) -> None:
    """Top-k of one query. Heaps ``h*[p, 0, :k]`` (size ``hn[p, 0]``) receive part p's hits.

    z : (n_probes,) float32, z-scored query. Parts are contiguous ranges of segments
    (``part_seg[p]:part_seg[p + 1]``); call with ``numba.set_parallel_chunksize(1)`` so that
    they go one at a time to idle workers.
    """
    k = hs.shape[2]
    n_parts = part_seg.shape[0] - 1
    for p in prange(n_parts):
        n = 0
        threshold = np.float32(np.inf)
        for s in range(part_seg[p], part_seg[p + 1]):
            if not seg_allowed[s]:
                continue
            key = seg_key[s]
            best_s = np.float32(np.inf)
            best_d = np.float32(0)
            best_r = -1
            for row in range(seg_start[s], seg_stop[s]):
                off = offset[row]
                bound2 = _bound2(min(threshold, best_s) if one_hit else threshold, off)
                if bound2 < 0:
                    continue
                sq = _row_sq(idx, val, row, z, bound2)
                if sq > bound2:
                    continue
                dist = np.sqrt(sq)
                score = dist - off
                if one_hit:
                    if score < best_s:
                        best_s = score
                        best_d = dist
                        best_r = row
                else:
                    n = _push(hs[p, 0], hk[p, 0], hr[p, 0], hd[p, 0], hg[p, 0], n, score, key, row, dist, s)
                    if n == k:
                        threshold = hs[p, 0, 0]
            if one_hit and best_r >= 0:
                n = _push(hs[p, 0], hk[p, 0], hr[p, 0], hd[p, 0], hg[p, 0], n, best_s, key, best_r, best_d, s)
                if n == k:
                    threshold = hs[p, 0, 0]
        hn[p, 0] = n


# ---------------------------------------------------------------------- search, a batch


@_jit(inline="always")
def _batch_sq(idx: Any, val: Any, row: int, zt: Any, acc: Any, bound2: Any) -> bool:
    """acc[q] = sum_j (zt[t_j, q] - a_j)^2 for q < zt.shape[1], in the shared order. Returns
    False as soon as every acc[q] exceeds bound2[q] (the row enters no heap), else True."""
    r = idx.shape[1]
    width = zt.shape[1]
    for q in range(width):
        acc[q] = 0
    j = 0
    while j + 8 <= r:
        z0 = zt[idx[row, j]]
        z1 = zt[idx[row, j + 1]]
        z2 = zt[idx[row, j + 2]]
        z3 = zt[idx[row, j + 3]]
        z4 = zt[idx[row, j + 4]]
        z5 = zt[idx[row, j + 5]]
        z6 = zt[idx[row, j + 6]]
        z7 = zt[idx[row, j + 7]]
        v0 = _value(val, row, j)
        v1 = _value(val, row, j + 1)
        v2 = _value(val, row, j + 2)
        v3 = _value(val, row, j + 3)
        v4 = _value(val, row, j + 4)
        v5 = _value(val, row, j + 5)
        v6 = _value(val, row, j + 6)
        v7 = _value(val, row, j + 7)
        for q in range(width):
            d0 = z0[q] - v0
            d1 = z1[q] - v1
            d2 = z2[q] - v2
            d3 = z3[q] - v3
            d4 = z4[q] - v4
            d5 = z5[q] - v5
            d6 = z6[q] - v6
            d7 = z7[q] - v7
            acc[q] += ((d0 * d0 + d1 * d1) + (d2 * d2 + d3 * d3)) + (
                (d4 * d4 + d5 * d5) + (d6 * d6 + d7 * d7)
            )
        j += 8
        alive = False
        for q in range(width):
            alive |= acc[q] <= bound2[q]
        if not alive:
            return False
    while j < r:
        z0 = zt[idx[row, j]]
        v0 = _value(val, row, j)
        for q in range(width):
            d0 = z0[q] - v0
            acc[q] += d0 * d0
        j += 1
    return True


@_jit(parallel=True, nogil=True)
def search_batch(
    idx: Any, val: Any, offset: Any, zt: Any, n_queries: int,
    part_seg: Any, seg_start: Any, seg_stop: Any, seg_allowed: Any, seg_key: Any,
    one_hit: bool,
    hs: Any, hk: Any, hr: Any, hd: Any, hg: Any, hn: Any,
) -> None:
    """Top-k of up to MAX_BATCH queries in one pass over the rows.

    zt : (n_probes, width) float32, the z-scored queries as columns (a gathered probe row of
    all queries is contiguous), width a multiple of LANES <= MAX_BATCH, columns >= n_queries
    zero. Heaps as in :func:`search_one`, one per (part, query).
    """
    n_parts = part_seg.shape[0] - 1
    k = hs.shape[2]
    width = zt.shape[1]
    for p in prange(n_parts):
        acc = numba.carray(_stack_f32(MAX_BATCH), MAX_BATCH)
        # Padding columns never keep a row alive.
        bound2 = np.full(width, -1, np.float32)
        threshold = np.full(n_queries, np.inf, np.float32)
        best_s = np.empty(n_queries, np.float32)
        best_d = np.empty(n_queries, np.float32)
        best_r = np.empty(n_queries, np.int64)
        for q in range(n_queries):
            hn[p, q] = 0
        for s in range(part_seg[p], part_seg[p + 1]):
            if not seg_allowed[s]:
                continue
            key = seg_key[s]
            if one_hit:
                for q in range(n_queries):
                    best_s[q] = np.inf
                    best_r[q] = -1
            for row in range(seg_start[s], seg_stop[s]):
                off = offset[row]
                alive = False
                for q in range(n_queries):
                    limit = min(threshold[q], best_s[q]) if one_hit else threshold[q]
                    bound2[q] = _bound2(limit, off)
                    alive |= bound2[q] >= 0
                if not alive:
                    continue
                if not _batch_sq(idx, val, row, zt, acc, bound2):
                    continue
                for q in range(n_queries):
                    if acc[q] > bound2[q]:
                        continue
                    dist = np.sqrt(acc[q])
                    score = dist - off
                    if one_hit:
                        if score < best_s[q]:
                            best_s[q] = score
                            best_d[q] = dist
                            best_r[q] = row
                    else:
                        n = _push(hs[p, q], hk[p, q], hr[p, q], hd[p, q], hg[p, q], hn[p, q],
                                  score, key, row, dist, s)
                        hn[p, q] = n
                        if n == k:
                            threshold[q] = hs[p, q, 0]
            if one_hit:
                for q in range(n_queries):
                    if best_r[q] >= 0:
                        n = _push(hs[p, q], hk[p, q], hr[p, q], hd[p, q], hg[p, q], hn[p, q],
                                  best_s[q], key, best_r[q], best_d[q], s)
                        hn[p, q] = n
                        if n == k:
                            threshold[q] = hs[p, q, 0]


# ---------------------------------------------------------------------- calibration


@_jit(parallel=True, nogil=True)
def calibration_offsets(
    idx: Any, val: Any, bt: Any, n_background: int, k: int, block_rows: int, out: Any
) -> None:
    """out[l] = mean of the k smallest truncated distances of row l to the background concepts
    (paper Eq. 6).

    bt : (n_slices, n_probes, MAX_BATCH) float32, the z-scored background descriptors as
    columns, MAX_BATCH per slice, columns >= n_background zero. Rows are processed in blocks of
    ``block_rows``; each block sweeps the slices in turn so that the slice being read stays in
    cache.
    """
    n_rows = idx.shape[0]
    n_slices = bt.shape[0]
    width = n_slices * MAX_BATCH
    n_blocks = (n_rows + block_rows - 1) // block_rows
    for b in prange(n_blocks):
        lo = b * block_rows
        hi = min(n_rows, lo + block_rows)
        d2 = np.empty((hi - lo, width), np.float32)
        acc = numba.carray(_stack_f32(MAX_BATCH), MAX_BATCH)
        everything = np.full(MAX_BATCH, np.inf, np.float32)
        for c in range(n_slices):
            table = bt[c]
            for row in range(lo, hi):
                _batch_sq(idx, val, row, table, acc, everything)
                for q in range(MAX_BATCH):
                    d2[row - lo, c * MAX_BATCH + q] = acc[q]
        best = np.empty(k, np.float32)
        for row in range(lo, hi):
            # The k smallest squared distances, by insertion into a sorted buffer.
            n = 0
            for q in range(n_background):
                v = d2[row - lo, q]
                if n == k and v >= best[k - 1]:
                    continue
                i = n if n < k else k - 1
                while i > 0 and best[i - 1] > v:
                    best[i] = best[i - 1]
                    i -= 1
                best[i] = v
                if n < k:
                    n += 1
            total = 0.0
            for i in range(k):
                total += np.sqrt(np.float64(best[i]))
            out[row] = total / k


@_jit(nogil=True)
def decode_f16(bits: Any, out: Any) -> None:
    """out[i] = float16 bits[i] as float32, through the kernels' decoding (for tests)."""
    for i in range(bits.shape[0]):
        out[i] = _f16_to_f32(bits[i])
