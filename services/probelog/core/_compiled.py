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
#: Blocks of eight probes per chunk of the summation order (kernels.CHUNK_BLOCKS), and the
#: blocks a scan reads before its first early-exit check. Checked after every block, most rows
#: leave after 16 or 24 probes, and which is hard to predict: each row ended on a mispredicted
#: branch behind its whole chain of loads and adds, which cost more than the blocks a row now
#: reads in vain. After 32 probes nearly every row leaves at the first check, a branch the
#: processor predicts, so it overlaps consecutive rows (first checks after 16 to 40 probes
#: measured; bench/results/ranker.md).
_CHUNK_BLOCKS = 4


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
        buffer = cgutils.alloca_once(builder, context.get_value_type(types.float32), size=size)
        buffer.align = 64  # whole cache lines: vector loads and stores never straddle two
        return buffer

    return types.CPointer(types.float32)(n), codegen


@intrinsic
def _f16_to_f32(typingctx: Any, h: Any) -> Any:
    """float16 bits (uint16) -> float32, exactly: LLVM's fpext (one vcvtph2ps with F16C)."""
    if h != types.uint16:
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        return builder.fpext(builder.bitcast(args[0], ir.HalfType()), ir.FloatType())

    return types.float32(types.uint16), codegen


def _rows_fit(z: Any, idx: Any, val: Any) -> bool:
    """The arrays the single-query scan reads: a float32 query, C-contiguous rows."""
    return (
        isinstance(z, types.Array) and z.ndim == 1 and z.dtype == types.float32
        and isinstance(idx, types.Array) and idx.ndim == 2 and idx.layout == "C"
        and idx.dtype in (types.uint16, types.uint32)
        and isinstance(val, types.Array) and val.ndim == 2 and val.layout == "C"
        and val.dtype in (types.uint16, types.float32)
    )


def _decoded8(context: Any, builder: Any, val_ty: Any, values: Any) -> Any:
    """<8 x float> of the eight values at ``values``: one load, and one float16 decode
    (vcvtph2ps) when stored as float16 bits."""
    f32x8 = ir.VectorType(ir.FloatType(), 8)
    if val_ty.dtype == types.uint16:
        bits = builder.load(builder.bitcast(values, ir.VectorType(ir.IntType(16), 8).as_pointer()), align=2)
        return builder.fpext(builder.bitcast(bits, ir.VectorType(ir.HalfType(), 8)), f32x8)
    return builder.load(builder.bitcast(values, f32x8.as_pointer()), align=4)


def _squares8(context: Any, builder: Any, sig: Any, args: Any, j: Any) -> Any:
    """<8 x float> of ``(z[idx[row, j + i]] - val[row, j + i])^2``, i < 8, for a codegen whose
    first arguments are z, idx, val, row.

    The eight query values go into one register by scalar loads (this host's AMD gathers are
    slower than the loads they replace); one subtract and one multiply serve all eight.
    """
    z_ty, idx_ty, val_ty, row_ty = sig.args[:4]
    i32, i64 = ir.IntType(32), ir.IntType(64)
    at = [context.cast(builder, args[3], row_ty, types.intp), j]

    def entry(ty: Any, arg: Any) -> Any:
        return cgutils.get_item_pointer(context, builder, ty, context.make_array(ty)(context, builder, arg), at)

    a = _decoded8(context, builder, val_ty, entry(val_ty, args[2]))
    indices = entry(idx_ty, args[1])
    probes = [builder.zext(builder.load(builder.gep(indices, [ir.Constant(i64, i)])), i64) for i in range(8)]
    zdata = context.make_array(z_ty)(context, builder, args[0]).data
    g = a.type(ir.Undefined)
    for i, t in enumerate(probes):
        g = builder.insert_element(g, builder.load(builder.gep(zdata, [t]), align=4), ir.Constant(i32, i))
    d = builder.fsub(g, a)
    return builder.fmul(d, d)


def _tree8(builder: Any, lanes: list[Any]) -> Any:
    """((l0 + l1) + (l2 + l3)) + ((l4 + l5) + (l6 + l7)), element-wise over eight values."""
    add = builder.fadd
    return add(add(add(lanes[0], lanes[1]), add(lanes[2], lanes[3])), add(add(lanes[4], lanes[5]), add(lanes[6], lanes[7])))


def _hsum8(builder: Any, v: Any) -> Any:
    """_tree8 of the eight elements of one <8 x float> register, by pairwise shuffles."""
    i32 = ir.IntType(32)

    def pairs(v: Any, n: int) -> Any:
        """[v0 + v1, v2 + v3, ...]: n sums of adjacent elements."""
        even = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, n), list(range(0, 2 * n, 2))))
        odd = builder.shuffle_vector(v, v, ir.Constant(ir.VectorType(i32, n), list(range(1, 2 * n, 2))))
        return builder.fadd(even, odd)

    halves = pairs(pairs(v, 4), 2)
    return builder.fadd(builder.extract_element(halves, ir.Constant(i32, 0)), builder.extract_element(halves, ir.Constant(i32, 1)))


@intrinsic
def _chunk_sq(typingctx: Any, z: Any, idx: Any, val: Any, row: Any, j: Any, n_blocks: Any) -> Any:
    """One chunk of the shared order for one query: ``tree8(L)`` with ``L[i] = sum_b (z[t] -
    a)^2`` over probes j + 8b + i, b = 0 .. n_blocks - 1 (a literal, 1 to _CHUNK_BLOCKS) in
    order. The eight lanes are one vector register: the blocks add up vertically, and only the
    chunk's sum needs a horizontal tree. idx and val must be C-contiguous.
    """
    if not _rows_fit(z, idx, val) or not isinstance(n_blocks, types.IntegerLiteral):
        return None
    count = n_blocks.literal_value
    if not 1 <= count <= _CHUNK_BLOCKS:
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        j0 = context.cast(builder, args[4], sig.args[4], types.intp)
        lanes = _squares8(context, builder, sig, args, j0)
        for b in range(1, count):
            lanes = builder.fadd(lanes, _squares8(context, builder, sig, args, builder.add(j0, ir.Constant(j0.type, 8 * b))))
        return _hsum8(builder, lanes)

    return types.float32(z, idx, val, row, j, n_blocks), codegen


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
def _lift(threshold: float) -> Any:
    """``threshold + _SLACK * |threshold|``: with a row's offset added as ``off + _SLACK *
    |off|``, the sum ``b`` bounds what a row may score to enter a heap whose worst score is
    ``threshold``: it may enter only if ``b > 0`` and ``d^2 <= b^2``.

    ``sqrt(d^2) - off <= threshold`` needs ``d^2 <= (threshold + off)^2`` with ``threshold + off
    >= 0``; float32 rounding of the score moves this by ~1e-7 relative, far inside the slack.
    The threshold's part changes only when a heap does, so a row costs one add and one multiply.
    """
    return threshold + _SLACK * abs(threshold)


# ---------------------------------------------------------------------- search, one query
#
# Summation order, shared by every kernel and by the numpy fallback so that a row's score does
# not depend on the batch it is scored in: the full blocks of eight probes form chunks of
# _CHUNK_BLOCKS blocks (the last chunk may be shorter); chunk c's sum is
#     T_c = ((L0 + L1) + (L2 + L3)) + ((L4 + L5) + (L6 + L7)),
# where lane L_i adds (z[t] - a)^2 of probe i of each block of the chunk, block after block;
# the row's sum is (((0 + T_0) + T_1) + ...), then the r mod 8 remaining probes one by one.
# A single query holds the eight lanes in one vector register, a batch one register per lane
# and 16 queries: in both, the blocks add up vertically.
#
# Early exit: every term is >= 0 and float rounding is monotone, so the running sum never
# decreases, and the tree of a chunk's lanes part-way is a lower bound of the chunk's sum; once
# a bound exceeds the row's limit the row cannot enter the heap and the rest of its probes are
# not read. The rows that are completed get the same sum, in the same order, as without the
# exit.


@_jit(inline="always")
def _row_sq(idx: Any, val: Any, row: int, z: Any, bound2: float) -> Any:
    """sum_j (z[t_j] - a_j)^2 in the shared order; stops early (returning a partial sum above
    ``bound2``) at the end of the first chunk whose sum takes it past ``bound2`` (the r mod 8
    last probes are summed without a check). Values are decoded as they are read, so the
    probes past an early exit cost nothing."""
    r = idx.shape[1]
    full = r - r % 8
    acc = np.float32(0)
    j = 0
    while j + 8 * _CHUNK_BLOCKS <= full:
        acc += _chunk_sq(z, idx, val, row, j, _CHUNK_BLOCKS)
        j += 8 * _CHUNK_BLOCKS
        if acc > bound2:
            return acc
    left = (full - j) // 8
    if left == 3:
        acc += _chunk_sq(z, idx, val, row, j, 3)
    elif left == 2:
        acc += _chunk_sq(z, idx, val, row, j, 2)
    elif left == 1:
        acc += _chunk_sq(z, idx, val, row, j, 1)
    if acc > bound2:
        return acc
    for j in range(full, r):
        d0 = z[idx[row, j]] - _value(val, row, j)
        acc += d0 * d0
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
            lifted = _lift(threshold)
            for row in range(seg_start[s], seg_stop[s]):
                off = offset[row]
                b = lifted + (off + _SLACK * abs(off))
                if not b > 0:
                    continue
                bound2 = b * b
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
                        lifted = _lift(min(threshold, best_s))
                else:
                    n = _push(hs[p, 0], hk[p, 0], hr[p, 0], hd[p, 0], hg[p, 0], n, score, key, row, dist, s)
                    if n == k:
                        threshold = hs[p, 0, 0]
                        lifted = _lift(threshold)
            if one_hit and best_r >= 0:
                n = _push(hs[p, 0], hk[p, 0], hr[p, 0], hd[p, 0], hg[p, 0], n, best_s, key, best_r, best_d, s)
                if n == k:
                    threshold = hs[p, 0, 0]
        hn[p, 0] = n


# ---------------------------------------------------------------------- search, a batch


@intrinsic
def _decode8(typingctx: Any, val: Any, row: Any, j: Any, out: Any) -> Any:
    """out[j .. j + 7] = val[row, j .. j + 7] as float32: one load, one decode, one store."""
    arrays_fit = (
        isinstance(val, types.Array) and val.ndim == 2 and val.layout == "C" and val.dtype in (types.uint16, types.float32)
        and isinstance(out, types.Array) and out.ndim == 1 and out.dtype == types.float32
    )
    if not arrays_fit:
        return None

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        val_ty, row_ty, j_ty, out_ty = sig.args
        j0 = context.cast(builder, args[2], j_ty, types.intp)
        at = [context.cast(builder, args[1], row_ty, types.intp), j0]
        source = cgutils.get_item_pointer(context, builder, val_ty, context.make_array(val_ty)(context, builder, args[0]), at)
        decoded = _decoded8(context, builder, val_ty, source)
        target = builder.gep(context.make_array(out_ty)(context, builder, args[3]).data, [j0])
        builder.store(decoded, builder.bitcast(target, decoded.type.as_pointer()), align=4)
        return context.get_dummy_value()

    return types.none(val, row, j, out), codegen


@intrinsic
def _batch_chunk(
    typingctx: Any, zt: Any, idx: Any, values: Any, row: Any, j: Any, n_blocks: Any,
    check_blocks: Any, groups: Any, acc: Any, bound2: Any,
) -> Any:
    """One chunk of the shared order for ``16 * groups`` queries (groups a literal, 1 or 2):
    ``acc[q] += tree8(L[:, q])`` with ``L[i, q] = sum_b (zt[t, q] - a)^2`` over probes j + 8b + i,
    b = 0 .. n_blocks - 1 (a literal, 1 to _CHUNK_BLOCKS) in order. L lives in eight vector
    registers per group of 16 queries; ``values`` holds the row's decoded values, each
    subtracted by a broadcast from memory.

    Returns False as soon as every query's sum is known to exceed its bound2 (acc then holds
    no sum of use), else True: at the chunk's end, and, when ``check_blocks`` (a literal),
    after each block inside it, where ``acc + tree8(L so far)`` is a lower bound of the sum.
    """
    arrays_fit = (
        isinstance(zt, types.Array) and zt.ndim == 2 and zt.layout == "C" and zt.dtype == types.float32
        and isinstance(idx, types.Array) and idx.ndim == 2 and idx.layout == "C"
        and idx.dtype in (types.uint16, types.uint32)
        and all(isinstance(a, types.Array) and a.ndim == 1 and a.dtype == types.float32 for a in (values, acc, bound2))
        and isinstance(n_blocks, types.IntegerLiteral) and 1 <= n_blocks.literal_value <= _CHUNK_BLOCKS
        and isinstance(check_blocks, types.BooleanLiteral)
        and isinstance(groups, types.IntegerLiteral) and groups.literal_value in (1, 2)
    )
    if not arrays_fit:
        return None
    count = n_blocks.literal_value
    inner_checks = check_blocks.literal_value
    n_groups = groups.literal_value

    def codegen(context: Any, builder: Any, sig: Any, args: Any) -> Any:
        zt_ty, idx_ty, values_ty, row_ty, j_ty = sig.args[:5]
        acc_ty, bound_ty = sig.args[8:]
        i32, i64 = ir.IntType(32), ir.IntType(64)
        vec = ir.VectorType(ir.FloatType(), LANES)
        mask = ir.IntType(LANES)
        j0 = context.cast(builder, args[4], j_ty, types.intp)
        row = context.cast(builder, args[3], row_ty, types.intp)

        def data(ty: Any, arg: Any) -> Any:
            return context.make_array(ty)(context, builder, arg).data

        def group_ptrs(ty: Any, arg: Any) -> list[Any]:
            first = builder.bitcast(data(ty, arg), vec.as_pointer())
            return [builder.gep(first, [ir.Constant(i64, g)]) for g in range(n_groups)]

        table = data(zt_ty, args[0])
        indices = cgutils.get_item_pointer(context, builder, idx_ty, context.make_array(idx_ty)(context, builder, args[1]), [row, j0])
        row_values = builder.gep(data(values_ty, args[2]), [j0])
        acc_ptrs = group_ptrs(acc_ty, args[8])
        accs = [builder.load(p, align=4) for p in acc_ptrs]
        bounds = [builder.load(p, align=4) for p in group_ptrs(bound_ty, args[9])]
        splat = ir.Constant(ir.VectorType(i32, LANES), [0] * LANES)

        def any_within(sums: list[Any]) -> Any:
            within = [builder.bitcast(builder.fcmp_ordered("<=", s, b), mask) for s, b in zip(sums, bounds, strict=True)]
            merged = within[0] if n_groups == 1 else builder.or_(within[0], within[1])
            return builder.icmp_unsigned("!=", merged, ir.Constant(mask, 0))

        def sums(lanes: list[list[Any]]) -> list[Any]:
            return [builder.fadd(accs[g], _tree8(builder, lanes[g])) for g in range(n_groups)]

        leave = builder.append_basic_block("chunk.leave")
        done = builder.append_basic_block("chunk.done")
        lanes: list[list[Any]] = [[] for _ in range(n_groups)]
        for b in range(count):
            for i in range(8):
                at = ir.Constant(i64, 8 * b + i)
                t = builder.zext(builder.load(builder.gep(indices, [at])), i64)
                probe_row = builder.bitcast(builder.gep(table, [builder.mul(t, ir.Constant(i64, LANES * n_groups))]), vec.as_pointer())
                a = builder.insert_element(vec(ir.Undefined), builder.load(builder.gep(row_values, [at])), ir.Constant(i32, 0))
                a = builder.shuffle_vector(a, vec(ir.Undefined), splat)
                for g in range(n_groups):
                    d = builder.fsub(builder.load(builder.gep(probe_row, [ir.Constant(i64, g)]), align=4), a)
                    sq = builder.fmul(d, d)
                    if b == 0:
                        lanes[g].append(sq)
                    else:
                        lanes[g][i] = builder.fadd(lanes[g][i], sq)
            if inner_checks and b < count - 1:
                go_on = builder.append_basic_block("chunk.next")
                builder.cbranch(any_within(sums(lanes)), go_on, leave)
                builder.position_at_end(go_on)
        totals = sums(lanes)
        for total, ptr in zip(totals, acc_ptrs, strict=True):
            builder.store(total, ptr, align=4)
        alive = any_within(totals)
        end = builder.block
        builder.branch(done)
        builder.position_at_end(leave)
        builder.branch(done)
        builder.position_at_end(done)
        result = builder.phi(ir.IntType(1))
        result.add_incoming(alive, end)
        result.add_incoming(ir.Constant(ir.IntType(1), 0), leave)
        return result

    return types.boolean(zt, idx, values, row, j, n_blocks, check_blocks, groups, acc, bound2), codegen


@_jit(inline="always")
def _batch_sq(idx: Any, val: Any, row: int, zt: Any, groups: int, values: Any, acc: Any, bound2: Any) -> bool:
    """acc[q] = sum_j (zt[t_j, q] - a_j)^2 for the ``16 * groups`` queries of zt (groups a
    literal), in the shared order; ``values``: scratch for the row's r decoded values. Returns
    False as soon as every query's sum is known to exceed bound2[q] (the row enters no heap),
    else True: checked at the end of the first chunk, then after every block (as a single
    query's scan, a check inside the first chunk costs more than the blocks it saves)."""
    r = idx.shape[1]
    full = r - r % 8
    for i in range(0, full, 8):
        _decode8(val, row, i, values)
    for i in range(full, r):
        values[i] = _value(val, row, i)
    width = zt.shape[1]
    for q in range(width):
        acc[q] = 0
    j = 0
    if full >= 8 * _CHUNK_BLOCKS:
        if not _batch_chunk(zt, idx, values, row, 0, _CHUNK_BLOCKS, False, groups, acc, bound2):
            return False
        j = 8 * _CHUNK_BLOCKS
    while j + 8 * _CHUNK_BLOCKS <= full:
        if not _batch_chunk(zt, idx, values, row, j, _CHUNK_BLOCKS, True, groups, acc, bound2):
            return False
        j += 8 * _CHUNK_BLOCKS
    left = (full - j) // 8
    alive: bool = True
    if left == 3:
        alive = _batch_chunk(zt, idx, values, row, j, 3, True, groups, acc, bound2)
    elif left == 2:
        alive = _batch_chunk(zt, idx, values, row, j, 2, True, groups, acc, bound2)
    elif left == 1:
        alive = _batch_chunk(zt, idx, values, row, j, 1, True, groups, acc, bound2)
    if not alive:
        return False
    for j in range(full, r):
        z0 = zt[idx[row, j]]
        v0 = values[j]
        for q in range(width):
            d0 = z0[q] - v0
            acc[q] += d0 * d0
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
        bound2 = numba.carray(_stack_f32(MAX_BATCH), MAX_BATCH)
        values = np.empty(idx.shape[1], np.float32)
        # _lift of each query's limit; -inf in the padding columns, which never keep a row alive.
        lifted = np.full(width, -np.inf, np.float32)
        threshold = np.full(n_queries, np.inf, np.float32)
        best_s = np.full(n_queries, np.inf, np.float32)
        best_d = np.empty(n_queries, np.float32)
        best_r = np.empty(n_queries, np.int64)
        for q in range(n_queries):
            hn[p, q] = 0
            lifted[q] = np.inf
        for s in range(part_seg[p], part_seg[p + 1]):
            if not seg_allowed[s]:
                continue
            key = seg_key[s]
            if one_hit:
                for q in range(n_queries):
                    best_s[q] = np.inf
                    best_r[q] = -1
                    lifted[q] = _lift(threshold[q])
            for row in range(seg_start[s], seg_stop[s]):
                off = offset[row]
                lifted_off = off + _SLACK * abs(off)
                alive = False
                for q in range(width):
                    b = lifted[q] + lifted_off
                    bound2[q] = b * b if b > 0 else np.float32(-1)
                    alive |= b > 0
                if not alive:
                    continue
                if width == 2 * LANES:
                    alive = _batch_sq(idx, val, row, zt, 2, values, acc, bound2)
                else:
                    alive = _batch_sq(idx, val, row, zt, 1, values, acc, bound2)
                if not alive:
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
                            lifted[q] = _lift(min(threshold[q], score))
                    else:
                        n = _push(hs[p, q], hk[p, q], hr[p, q], hd[p, q], hg[p, q], hn[p, q],
                                  score, key, row, dist, s)
                        hn[p, q] = n
                        if n == k:
                            threshold[q] = hs[p, q, 0]
                            lifted[q] = _lift(threshold[q])
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
        values = np.empty(idx.shape[1], np.float32)
        everything = np.full(MAX_BATCH, np.inf, np.float32)
        for c in range(n_slices):
            table = bt[c]
            for row in range(lo, hi):
                _batch_sq(idx, val, row, table, 2, values, acc, everything)
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
