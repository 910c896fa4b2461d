"""The scan kernels against a direct float64 transcription of Eq. 5-6 with the same selection
rule: k best rows per query in the order (score, segment key, row), filters by segment, one
hit per segment. Both back ends, both storage types, single queries and batches."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probelog.core import calibration_offsets as reference_offsets
from probelog.core import kernels, logit_entries, zscore

BACKENDS = [
    "numpy",
    "numba",
]
N_PROBES = 300


def random_index(rng, n_segments=40, r=12, n_probes=N_PROBES, dtype=np.float16, duplicates=5):
    lengths = rng.integers(1, 7, size=n_segments)
    n = int(lengths.sum())
    idx = np.stack([rng.choice(n_probes, size=r, replace=False) for _ in range(n)])
    idx = idx.astype(np.uint16 if n_probes <= 65536 else np.uint32)
    val = (np.sort(rng.gamma(4.0, 0.6, size=(n, r)), axis=1)[:, ::-1] + 0.5).astype(dtype)
    offset = rng.normal(5.0, 0.5, size=n).astype(np.float32)
    stop = np.cumsum(lengths).astype(np.int64)
    start = stop - lengths
    # Identical rows in other segments: exact ties, broken by segment key, then row.
    for _ in range(duplicates):
        a, b = rng.integers(0, n, size=2)
        idx[b], val[b], offset[b] = idx[a], val[a], offset[a]
    key = rng.permutation(n_segments).astype(np.int64)
    return idx, val, offset, start, stop, key


def reference(idx, val, offset, z, start, stop, allowed, key, k, one_hit):
    """Per query: (rows, scores) of the k best, by a float64 transcription of Eq. 5-6."""
    a = val.astype(np.float64)
    out = []
    for zq in np.asarray(z, dtype=np.float64):
        d = np.sqrt(((zq[idx.astype(np.int64)] - a) ** 2).sum(axis=1))
        s = d - offset.astype(np.float64)
        cands = []
        for seg in np.flatnonzero(allowed):
            rows = range(int(start[seg]), int(stop[seg]))
            if one_hit:
                best = min(rows, key=lambda row: (s[row], row))
                cands.append((s[best], key[seg], best))
            else:
                cands.extend((s[row], key[seg], row) for row in rows)
        cands.sort()
        out.append(([c[2] for c in cands[:k]], [c[0] for c in cands[:k]]))
    return out


def run(backend, idx, val, offset, z, start, stop, allowed, key, k, one_hit):
    segments = kernels.Segments(start, stop, allowed, key)
    return kernels.search(idx, val, offset, z, segments, k, one_hit_per_model=one_hit, backend=backend)


def assert_matches(top, want):
    for q, (rows, scores) in enumerate(want):
        n = int(top.counts[q])
        assert list(top.rows[q, :n]) == rows, q
        np.testing.assert_allclose(top.scores[q, :n], scores, rtol=1e-5, atol=1e-5)
        assert np.all(np.isinf(top.scores[q, n:])) and np.all(top.rows[q, n:] == -1)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
@pytest.mark.parametrize("n_queries", [1, 3, 17, 40])
@pytest.mark.parametrize("one_hit", [False, True])
def test_kernel_equals_reference(backend, dtype, n_queries, one_hit):
    rng = np.random.default_rng(n_queries * 2 + one_hit)
    idx, val, offset, start, stop, key = random_index(rng, dtype=dtype)
    z = zscore(rng.normal(size=(n_queries, N_PROBES)))
    allowed = rng.random(len(start)) < 0.8
    for k in (1, 7, 10_000):
        want = reference(idx, val, offset, z, start, stop, allowed, key, k, one_hit)
        top = run(backend, idx, val, offset, z, start, stop, allowed, key, k, one_hit)
        assert_matches(top, want)
        # The raw distance travels with each hit: score + offset of its row.
        n = int(top.counts[0])
        np.testing.assert_allclose(
            top.distances[0, :n], top.scores[0, :n] + offset[top.rows[0, :n]], rtol=1e-5, atol=1e-5
        )
        assert all(start[g] <= row < stop[g] for g, row in zip(top.segments[0, :n], top.rows[0, :n], strict=True))


@pytest.mark.parametrize("backend", BACKENDS)
def test_wide_indices(backend):
    rng = np.random.default_rng(11)
    idx, val, offset, start, stop, key = random_index(rng, n_probes=70_000, r=6)
    assert idx.dtype == np.uint32
    z = zscore(rng.normal(size=(2, 70_000)))
    allowed = np.ones(len(start), dtype=bool)
    want = reference(idx, val, offset, z, start, stop, allowed, key, 9, False)
    assert_matches(run(backend, idx, val, offset, z, start, stop, allowed, key, 9, False), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_nothing_allowed_gives_no_hits(backend):
    rng = np.random.default_rng(12)
    idx, val, offset, start, stop, key = random_index(rng)
    z = zscore(rng.normal(size=(2, N_PROBES)))
    top = run(backend, idx, val, offset, z, start, stop, np.zeros(len(start), bool), key, 5, False)
    assert top.counts.tolist() == [0, 0] and top.rows.shape == (2, 5)


@pytest.mark.parametrize("n_queries", [1, 5])
def test_prefilter_never_drops_a_row_near_the_threshold(n_queries):
    # Offsets equal to each row's own distance put every score within rounding of 0, where
    # the bound (threshold + offset)^2 is tightest. The top-k with pruning must be the first k
    # of the kernel's own full ranking (k = all rows: the heap never fills, nothing is pruned).
    rng = np.random.default_rng(13)
    idx, val, offset, start, stop, key = random_index(rng, duplicates=0)
    z = zscore(rng.normal(size=(n_queries, N_PROBES)))
    allowed = np.ones(len(start), dtype=bool)
    d = np.sqrt(((z[0][idx.astype(np.int64)] - val.astype(np.float32)) ** 2).sum(axis=1))
    offset = d.astype(np.float32)
    n = len(offset)
    full = run("numba", idx, val, offset, z, start, stop, allowed, key, n, False)
    for k in (1, 3, 20):
        top = run("numba", idx, val, offset, z, start, stop, allowed, key, k, False)
        assert np.array_equal(top.rows, full.rows[:, :k])
        assert np.array_equal(top.scores, full.scores[:, :k])


def test_float16_decoding_is_exact_for_every_finite_value():
    from probelog.core import _compiled

    bits = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16)
    want = bits.view(np.float16).astype(np.float32)
    got = np.empty(len(bits), dtype=np.float32)
    _compiled.decode_f16(bits, got)
    finite = np.isfinite(want)
    assert np.array_equal(got[finite].view(np.uint32), want[finite].view(np.uint32))


@st.composite
def small_index(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n_segments = draw(st.integers(1, 12))
    index = random_index(rng, n_segments=n_segments, r=draw(st.integers(1, 9)), n_probes=40,
                         duplicates=draw(st.integers(0, 4)))
    z = zscore(rng.normal(size=(draw(st.integers(1, 35)), 40)))
    allowed = rng.random(n_segments) < draw(st.floats(0.0, 1.0))
    return index, z, allowed, draw(st.integers(1, 30)), draw(st.booleans())


@settings(max_examples=60, deadline=None)
@given(small_index())
def test_back_ends_agree_with_the_reference_on_random_hubs(case):
    (idx, val, offset, start, stop, key), z, allowed, k, one_hit = case
    want = reference(idx, val, offset, z, start, stop, allowed, key, k, one_hit)
    for backend in ("numpy", "numba") if kernels.compiled_available() else ("numpy",):
        assert_matches(run(backend, idx, val, offset, z, start, stop, allowed, key, k, one_hit), want)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_calibration_offsets_equal_eq6(backend):
    rng = np.random.default_rng(14)
    entries = logit_entries(rng.normal(size=(300, N_PROBES)), 20)
    background = zscore(rng.normal(size=(70, N_PROBES)))
    done = []
    got = kernels.calibration_offsets(
        entries.top_indices, entries.top_values, background, 6,
        block_rows=128, progress=done.append, backend=backend,
    )
    assert done == [128, 128, 44]
    np.testing.assert_allclose(got, reference_offsets(entries, background, 6), rtol=2e-6, atol=2e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_calibration_rejects_bad_input(backend):
    rng = np.random.default_rng(15)
    entries = logit_entries(rng.normal(size=(3, 50)), 5)
    background = zscore(rng.normal(size=(4, 50)))
    with pytest.raises(ValueError, match="k must be"):
        kernels.calibration_offsets(entries.top_indices, entries.top_values, background, 5, backend=backend)
    with pytest.raises(ValueError, match="lie in"):
        kernels.calibration_offsets(entries.top_indices + 50, entries.top_values, background, 2, backend=backend)


def test_backend_selection(monkeypatch):
    monkeypatch.setenv("PROBELOG_KERNEL", "numpy")
    assert kernels.default_backend() == "numpy"
    monkeypatch.setenv("PROBELOG_KERNEL", "fastest")
    with pytest.raises(ValueError, match="PROBELOG_KERNEL"):
        kernels.default_backend()
    monkeypatch.delenv("PROBELOG_KERNEL")
    assert kernels.default_backend() == ("numba" if kernels.compiled_available() else "numpy")


@pytest.mark.parametrize("r", [5, 8, 24, 40, 50, 72])
def test_scores_are_bit_identical_across_back_ends_and_batch_sizes(r):
    rng = np.random.default_rng(16)
    idx, val, offset, start, stop, key = random_index(rng, r=r)
    z = zscore(rng.normal(size=(37, N_PROBES)))
    allowed = np.ones(len(start), dtype=bool)
    n = len(offset)
    batch = run("numba", idx, val, offset, z, start, stop, allowed, key, n, False)
    fallback = run("numpy", idx, val, offset, z, start, stop, allowed, key, n, False)
    singles = [run("numba", idx, val, offset, z[q : q + 1], start, stop, allowed, key, n, False) for q in range(3)]
    assert np.array_equal(batch.rows, fallback.rows)
    assert np.array_equal(batch.scores.view(np.uint32), fallback.scores.view(np.uint32))
    assert np.array_equal(batch.distances.view(np.uint32), fallback.distances.view(np.uint32))
    for q, single in enumerate(singles):
        assert np.array_equal(single.rows[0], batch.rows[q])
        assert np.array_equal(single.scores[0].view(np.uint32), batch.scores[q].view(np.uint32))


def test_compiled_code_is_cached_in_tmp_when_the_tree_is_read_only(monkeypatch, tmp_path):
    from probelog.core import _compiled

    monkeypatch.setattr(_compiled.numba.config, "CACHE_DIR", "")
    monkeypatch.setattr(_compiled.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(_compiled, "_writable", lambda folder: str(folder).startswith(str(tmp_path)))
    _compiled._ensure_cache_dir()
    assert str(tmp_path / "probelog-numba-cache") == _compiled.numba.config.CACHE_DIR


@pytest.mark.parametrize(
    ("index_dtype", "value_dtype"),
    [(np.uint16, np.float16), (np.uint16, np.float32), (np.uint32, np.float16), (np.uint32, np.float32)],
)
@pytest.mark.parametrize("r", [5, 8, 20, 24, 31, 50])
def test_one_query_scan_with_early_exits_equals_the_fallback(index_dtype, value_dtype, r):
    # The single-query scan sums chunks of up to four blocks of eight probes in vector registers
    # and checks for an early exit after each chunk. With a small k the heap fills at once and
    # most rows leave early; hits and their float32 bits must still be the numpy fallback's,
    # exact ties (duplicated rows) and k beyond the number of rows included.
    rng = np.random.default_rng(r)
    idx, val, offset, start, stop, key = random_index(rng, n_segments=300, r=r, dtype=value_dtype, duplicates=40)
    idx = idx.astype(index_dtype)
    z = zscore(rng.normal(size=(4, N_PROBES)))
    allowed = rng.random(len(start)) < 0.9
    for one_hit in (False, True):
        for k in (1, 10, len(offset) + 7):
            for q in range(len(z)):
                args = (idx, val, offset, z[q : q + 1], start, stop, allowed, key, k, one_hit)
                fast, slow = run("numba", *args), run("numpy", *args)
                assert fast.counts.tolist() == slow.counts.tolist()
                assert np.array_equal(fast.rows, slow.rows)
                assert np.array_equal(fast.scores.view(np.uint32), slow.scores.view(np.uint32))
                assert np.array_equal(fast.distances.view(np.uint32), slow.distances.view(np.uint32))
            if k == 10:
                want = reference(idx, val, offset, z[:1], start, stop, allowed, key, k, one_hit)
                assert_matches(run("numba", idx, val, offset, z[:1], start, stop, allowed, key, k, one_hit), want)


def order_transcribed(d):
    """The summation order as docs/design.md states it, one float32 operation at a time: full
    blocks of eight probes in chunks of four blocks (the last chunk shorter); lane i of a chunk
    sums the squares of probe i of its blocks in turn; a chunk adds ((L0 + L1) + (L2 + L3)) +
    ((L4 + L5) + (L6 + L7)) to the row's sum; the r mod 8 last probes are added one by one."""
    f = np.float32
    r = len(d)
    full = r - r % 8
    total = f(0)
    for c0 in range(0, full, 32):
        lanes = [f(0)] * 8
        for b in range(c0, min(c0 + 32, full), 8):
            lanes = [f(lanes[i] + f(d[b + i] * d[b + i])) for i in range(8)]
        total = f(total + f(f(f(lanes[0] + lanes[1]) + f(lanes[2] + lanes[3])) + f(f(lanes[4] + lanes[5]) + f(lanes[6] + lanes[7]))))
    for j in range(full, r):
        total = f(total + f(d[j] * d[j]))
    return total


@pytest.mark.parametrize("r", [1, 7, 8, 9, 16, 31, 32, 33, 40, 50, 64, 72, 100])
def test_summation_order_is_the_documented_one(r):
    from probelog.core import _compiled

    assert kernels.CHUNK_BLOCKS == _compiled._CHUNK_BLOCKS == 4
    rng = np.random.default_rng(r)
    d = (rng.normal(size=(50, r)) * 3).astype(np.float32)
    got = kernels._sum_sq(d)
    want = np.array([order_transcribed(row) for row in d], dtype=np.float32)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
