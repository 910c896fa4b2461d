"""The index against the paper's math (calibrated_distances), with each scan back end."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from probelog.common.files import atomic_write
from probelog.core import (
    SparseLogitIndex,
    calibrated_distances,
    calibration_offsets,
    logit_entries,
    truncated_distances,
    zscore,
)

N_PROBES, R, K = 200, 12, 4


@pytest.fixture(
    autouse=True,
    params=[
        "numpy",
        "numba",
    ],
)
def backend(request, monkeypatch):
    """Every test here runs with each scan kernel."""
    monkeypatch.setenv("PROBELOG_KERNEL", request.param)
    return request.param


def make_hub(rng, n_models=6):
    models = {}
    background = rng.normal(size=(20, N_PROBES))
    for m in range(n_models):
        logits = rng.normal(size=(int(rng.integers(1, 6)), N_PROBES))
        models[f"m{m}"] = logits
    return models, background


def build(models, background, dtype=np.float32):
    index = SparseLogitIndex(N_PROBES, R, values_dtype=dtype)
    bz = zscore(background)
    for model_id, logits in models.items():
        entries = logit_entries(logits, R)
        index.add(model_id, entries, calibration_offsets(entries, bz, K))
    return index


def reference_ranking(models, background, query):
    rows = [(mid, j) for mid, logits in models.items() for j in range(len(logits))]
    all_logits = np.concatenate(list(models.values()))
    d = calibrated_distances(all_logits, query[None, :], background, r=R, k=K)[:, 0]
    order = np.argsort(d, kind="stable")
    return [rows[i] for i in order], d[order]


def test_same_ranking_as_calibrated_distances():
    rng = np.random.default_rng(0)
    models, background = make_hub(rng)
    index = build(models, background)
    query = rng.normal(size=N_PROBES)
    want_rows, want_scores = reference_ranking(models, background, query)
    hits = index.search(query, top_k=len(want_rows))[0]
    assert [(h.model_id, h.logit_index) for h in hits] == want_rows
    np.testing.assert_allclose([h.score for h in hits], want_scores, rtol=1e-4, atol=1e-4)


def test_raw_distance_is_eq5():
    rng = np.random.default_rng(1)
    models, background = make_hub(rng, 2)
    index = build(models, background)
    query = rng.normal(size=N_PROBES)
    for hit in index.search(query, top_k=100)[0]:
        logit = models[hit.model_id][hit.logit_index]
        want = truncated_distances(logit[None], query[None], r=R)[0, 0]
        assert hit.distance == pytest.approx(want, rel=1e-4)


def test_float16_values_keep_the_top_of_the_ranking():
    rng = np.random.default_rng(2)
    models, background = make_hub(rng, 20)
    exact, compact = build(models, background), build(models, background, np.float16)
    query = rng.normal(size=N_PROBES)
    a = [(h.model_id, h.logit_index) for h in exact.search(query, 5)[0]]
    b = [(h.model_id, h.logit_index) for h in compact.search(query, 5)[0]]
    assert a[:3] == b[:3]
    assert compact.bytes_per_logit == R * 4 + 8
    assert exact.bytes_per_logit == R * 6 + 8


def test_default_layout_is_208_bytes_per_logit_at_r50():
    assert SparseLogitIndex(4000, 50).bytes_per_logit == 208
    assert SparseLogitIndex(70000, 50).index_dtype == np.uint32


def test_one_hit_per_model_uses_best_logit():
    rng = np.random.default_rng(3)
    models, background = make_hub(rng)
    index = build(models, background)
    query = rng.normal(size=N_PROBES)
    rows, _ = reference_ranking(models, background, query)
    seen, want = set(), []
    for mid, j in rows:
        if mid not in seen:
            seen.add(mid)
            want.append((mid, j))
    hits = index.search(query, top_k=100, one_hit_per_model=True)[0]
    assert [(h.model_id, h.logit_index) for h in hits] == want


def test_filters():
    rng = np.random.default_rng(4)
    models, background = make_hub(rng)
    index = build(models, background)
    query = rng.normal(size=N_PROBES)
    only = index.search(query, 100, include=["m1", "m3"])[0]
    assert {h.model_id for h in only} == {"m1", "m3"}
    assert len(only) == len(models["m1"]) + len(models["m3"])
    without = index.search(query, 100, exclude=["m0"])[0]
    assert "m0" not in {h.model_id for h in without}
    best = index.search(query, 100, one_hit_per_model=True, exclude=["m2"])[0]
    assert [h.model_id for h in best] == [m for m in dict.fromkeys(h.model_id for h in index.search(query, 100)[0]) if m != "m2"]


def test_remove_replace_and_compact_keep_the_ranking():
    rng = np.random.default_rng(5)
    models, background = make_hub(rng)
    index = build(models, background)
    query = rng.normal(size=N_PROBES)
    assert index.remove("m2")
    assert not index.remove("m2")
    replacement = rng.normal(size=(3, N_PROBES))
    entries = logit_entries(replacement, R)
    index.add("m4", entries, calibration_offsets(entries, zscore(background), K))
    models = {k: v for k, v in models.items() if k != "m2"}
    models["m4"] = replacement
    want, _ = reference_ranking(models, background, query)
    before = [(h.model_id, h.logit_index) for h in index.search(query, 100)[0]]
    assert sorted(before) == sorted(want)
    assert index.stats().dead_rows > 0
    assert index.compact() > 0
    after = [(h.model_id, h.logit_index) for h in index.search(query, 100)[0]]
    assert before == after == want or sorted(after) == sorted(want)
    assert index.stats().dead_rows == 0
    assert index.stats().n_logits == sum(len(v) for v in models.values())


def test_labels_travel_with_hits():
    rng = np.random.default_rng(6)
    index = SparseLogitIndex(N_PROBES, R)
    logits = rng.normal(size=(2, N_PROBES))
    index.add("m", logit_entries(logits, R), [0.0, 0.0], labels=["cat", "dog"])
    hits = index.search(logits[1], 2)[0]
    assert hits[0].label == "dog"


def test_rejects_bad_queries_and_models():
    rng = np.random.default_rng(7)
    index = SparseLogitIndex(N_PROBES, R)
    with pytest.raises(ValueError, match="probe set's size"):
        index.search(rng.normal(size=N_PROBES + 1), 3)
    with pytest.raises(ValueError, match="constant"):
        index.search(np.ones(N_PROBES), 3)
    with pytest.raises(ValueError, match="top_k"):
        index.search(rng.normal(size=N_PROBES), 0)
    with pytest.raises(ValueError, match="probes"):
        index.add("m", logit_entries(rng.normal(size=(1, 50)), R), [0.0])
    with pytest.raises(ValueError, match="offsets"):
        index.add("m", logit_entries(rng.normal(size=(2, N_PROBES)), R), [0.0])
    with pytest.raises(ValueError, match="labels"):
        index.add("m", logit_entries(rng.normal(size=(2, N_PROBES)), R), [0.0, 0.0], labels=["a"])


def test_empty_index_returns_no_hits():
    index = SparseLogitIndex(N_PROBES, R)
    assert index.search(np.random.default_rng(8).normal(size=N_PROBES), 5) == [[]]
    assert index.search(np.random.default_rng(8).normal(size=N_PROBES), 5, one_hit_per_model=True) == [[]]


def test_batch_equals_single_queries():
    rng = np.random.default_rng(9)
    models, background = make_hub(rng)
    index = build(models, background)
    queries = rng.normal(size=(4, N_PROBES))
    batch = index.search(queries, 7)
    for q, hits in zip(queries, batch, strict=True):
        single = index.search(q, 7)[0]
        assert [(h.model_id, h.logit_index) for h in hits] == [
            (h.model_id, h.logit_index) for h in single
        ]
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in single], rtol=1e-5, atol=1e-5)


def test_equal_scores_are_ordered_by_model_id_whatever_the_insertion_order():
    rng = np.random.default_rng(10)
    logits = rng.normal(size=(2, N_PROBES))
    entries = logit_entries(logits, R)
    index = SparseLogitIndex(N_PROBES, R)
    for model_id in ("zeta", "alpha", "mid"):  # identical descriptors: exact ties
        index.add(model_id, entries, [0.5, 0.5])
    hits = index.search(logits[0], 6)[0]
    assert [(h.model_id, h.logit_index) for h in hits[:3]] == [("alpha", 0), ("mid", 0), ("zeta", 0)]
    assert [h.model_id for h in index.search(logits[0], 3, one_hit_per_model=True)[0]] == ["alpha", "mid", "zeta"]
    # Re-adding moves "alpha" to the end of the rows, not in the ranking.
    index.add("alpha", entries, [0.5, 0.5])
    index.compact()
    assert [h.model_id for h in index.search(logits[0], 3)[0]] == ["alpha", "mid", "zeta"]


def test_from_arrays_equals_adding_model_by_model():
    rng = np.random.default_rng(11)
    models, background = make_hub(rng, 8)
    added = build(models, background, np.float16)
    bz = zscore(background)
    entries = [logit_entries(v, R) for v in models.values()]
    bulk = SparseLogitIndex.from_arrays(
        N_PROBES,
        np.concatenate([e.top_indices for e in entries]),
        np.concatenate([e.top_values for e in entries]),
        np.concatenate([calibration_offsets(e, bz, K) for e in entries]),
        list(models),
        [e.n_logits for e in entries],
    )
    queries = rng.normal(size=(3, N_PROBES))
    assert bulk.search(queries, 10) == added.search(queries, 10)
    assert bulk.stats() == added.stats()
    two = logit_entries(rng.normal(size=(2, N_PROBES)), R)
    with pytest.raises(ValueError, match="distinct"):
        SparseLogitIndex.from_arrays(N_PROBES, two.top_indices, two.top_values, [0, 0], ["a", "a"], [1, 1])


def test_filters_never_score_other_models_and_unknown_ids_are_ignored():
    rng = np.random.default_rng(12)
    models, background = make_hub(rng)
    index = build(models, background)
    query = rng.normal(size=N_PROBES)
    assert index.search(query, 5, include=["nope"])[0] == []
    assert {h.model_id for h in index.search(query, 100, include=["m1", "nope"], exclude=["m1"])[0]} == set()
    full = index.search(query, 100)[0]
    assert index.search(query, 100, exclude=["nope"])[0] == full


def test_searches_see_a_consistent_index_while_models_come_and_go():
    rng = np.random.default_rng(13)
    models, background = make_hub(rng, 30)
    index = build(models, background)
    bz = zscore(background)
    churn = {f"c{i}": logit_entries(rng.normal(size=(3, N_PROBES)), R) for i in range(20)}
    query = rng.normal(size=N_PROBES)
    errors = []

    def mutate():
        try:
            for i, (model_id, entries) in enumerate(churn.items()):
                index.add(model_id, entries, calibration_offsets(entries, bz, K))
                if i % 3 == 2:
                    index.remove(model_id)
                if i % 7 == 6:
                    index.compact()
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=mutate)
    thread.start()
    while thread.is_alive():
        hits = index.search(query, 50)[0]
        assert len({(h.model_id, h.logit_index) for h in hits}) == len(hits)
        scores = [h.score for h in hits]
        assert scores == sorted(scores)
    thread.join()
    assert not errors
    assert index.stats().n_logits == sum(len(v) for v in models.values()) + 3 * (20 - 6)


def test_float16_stays_within_half_precision_of_float32():
    rng = np.random.default_rng(14)
    models, background = make_hub(rng, 40)
    exact, compact = build(models, background), build(models, background, np.float16)
    for query in rng.normal(size=(10, N_PROBES)):
        a = {(h.model_id, h.logit_index): h.score for h in exact.search(query, 1000)[0]}
        b = {(h.model_id, h.logit_index): h.score for h in compact.search(query, 1000)[0]}
        assert a.keys() == b.keys()
        # float16 keeps 11 significant bits of each value: distances move by well under 1%.
        np.testing.assert_allclose([b[key] for key in a], list(a.values()), atol=0.02 * max(map(abs, a.values())))


def test_sparse_form_gives_the_kernels_distances():
    rng = np.random.default_rng(15)
    models, background = make_hub(rng, 6)
    index = build(models, background, np.float16)
    a, sq_norm = index.as_sparse()
    z = zscore(rng.normal(size=N_PROBES))[0].astype(np.float64)
    m = a.copy()
    m.data[:] = 1
    d2 = sq_norm - 2 * (a @ z) + m @ (z * z)
    hits = index.search(z, 1000, normalized=True)[0]
    starts = np.cumsum([0, *(len(v) for v in models.values())])
    rows = {m: s for m, s in zip(models, starts[:-1], strict=True)}
    for h in hits:
        assert h.distance == pytest.approx(np.sqrt(d2[rows[h.model_id] + h.logit_index]), rel=1e-4)
    assert a.nnz == index.stats().n_logits * R


def labelled_hub(rng, n_models=12):
    """A hub with labels on some models (non-ASCII among them) and none on others."""
    models, background = make_hub(rng, n_models)
    index = SparseLogitIndex(N_PROBES, R)
    bz = zscore(background)
    labels = {}
    for i, (model_id, logits) in enumerate(models.items()):
        entries = logit_entries(logits, R)
        labels[model_id] = [f"{model_id}-ü{j}" for j in range(len(logits))] if i % 3 else []
        index.add(model_id, entries, calibration_offsets(entries, bz, K), labels=labels[model_id])
    return models, background, index, labels


def hit_tuples(hits):
    return [(h.model_id, h.logit_index, h.label, h.score, h.distance) for h in hits]


def test_labels_stay_with_their_rows_through_removal_and_compaction():
    rng = np.random.default_rng(16)
    models, _, index, labels = labelled_hub(rng)
    for model_id in ("m1", "m4", "m9"):
        index.remove(model_id)
    index.compact()
    query = rng.normal(size=N_PROBES)
    hits = index.search(query, 1000)[0]
    assert {h.model_id for h in hits} == set(models) - {"m1", "m4", "m9"}
    for h in hits:
        assert h.label == (labels[h.model_id][h.logit_index] if labels[h.model_id] else "")


def test_lookups_by_model_id_hold_while_ids_are_sorted_again(monkeypatch):
    """Ids added since the last sort are found through the dict, older ones by binary search."""
    from probelog.core import index as index_module

    monkeypatch.setattr(index_module, "_MIN_UNSORTED", 2)
    rng = np.random.default_rng(17)
    index = SparseLogitIndex(N_PROBES, R)
    entries = logit_entries(rng.normal(size=(1, N_PROBES)), R)
    ids = [f"model-{i:03d}" for i in rng.permutation(40)] + ["a-much-longer-model-id-than-the-others"]
    for model_id in ids:
        index.add(model_id, entries, [0.0])
    for model_id in ids[::5]:
        assert index.remove(model_id)
        index.add(model_id, entries, [0.0])  # back, in a new segment
    for model_id in ids[1::7]:
        index.remove(model_id)
    gone = set(ids[1::7])
    assert sorted(index.model_ids()) == sorted(set(ids) - gone)
    assert all((model_id in index) == (model_id not in gone) for model_id in ids)
    assert "model-999" not in index and "" not in index
    assert index.stats().n_models == len(ids) - len(gone)
    # Identical rows: exact ties, ranked by model id.
    hits = index.search(rng.normal(size=N_PROBES), 100)[0]
    assert [h.model_id for h in hits] == sorted(set(ids) - gone)
    assert [h.model_id for h in index.search(rng.normal(size=N_PROBES), 100, include=ids[:6])[0]] == sorted(
        set(ids[:6]) - gone
    )


def test_nbytes_counts_rows_labels_and_models_apart():
    rng = np.random.default_rng(18)
    models, _, index, labels = labelled_hub(rng)
    n = sum(len(v) for v in models.values())
    parts = index.nbytes()
    assert parts["rows"] == n * index.bytes_per_logit
    assert parts["labels"] == 8 * n + sum(len(x.encode()) for v in labels.values() for x in v)
    assert 0 < parts["models"] < 100 * len(models)


def test_a_saved_index_maps_back_and_ranks_the_same(tmp_path):
    rng = np.random.default_rng(19)
    _, _, index, _ = labelled_hub(rng)
    index.remove("m2")  # dead rows travel too
    path = tmp_path / "index.plx"
    atomic_write(path, index.save)
    loaded = SparseLogitIndex.load(path)
    assert isinstance(loaded.arrays()[0], np.memmap)  # the rows stay in the file
    queries = rng.normal(size=(3, N_PROBES))
    for kwargs in ({}, {"one_hit_per_model": True}, {"include": ["m1", "m5", "m2"]}, {"exclude": ["m0"]}):
        assert [hit_tuples(h) for h in loaded.search(queries, 20, **kwargs)] == [
            hit_tuples(h) for h in index.search(queries, 20, **kwargs)
        ]
    assert loaded.stats() == index.stats()
    assert sorted(loaded.model_ids()) == sorted(index.model_ids())
    assert "m2" not in loaded and "m3" in loaded


def test_a_loaded_index_takes_changes_like_one_built_in_memory(tmp_path):
    rng = np.random.default_rng(20)
    _, background, index, _ = labelled_hub(rng)
    path = tmp_path / "index.plx"
    atomic_write(path, index.save)
    loaded = SparseLogitIndex.load(path)
    entries = logit_entries(rng.normal(size=(3, N_PROBES)), R)
    offsets = calibration_offsets(entries, zscore(background), K)
    for target in (index, loaded):
        assert target.remove("m3")
        target.add("new", entries, offsets, labels=["x", "y", "z"])
        target.add("m7", entries, offsets)  # a replacement
        assert target.compact() > 0
    queries = rng.normal(size=(2, N_PROBES))
    assert [hit_tuples(h) for h in loaded.search(queries, 50)] == [hit_tuples(h) for h in index.search(queries, 50)]
    # The file itself is unchanged: loading it again gives the saved state.
    assert "m3" in SparseLogitIndex.load(path)


def test_an_empty_index_saves_and_loads(tmp_path):
    path = tmp_path / "empty.plx"
    atomic_write(path, SparseLogitIndex(N_PROBES, R, np.float32).save)
    loaded = SparseLogitIndex.load(path)
    assert (loaded.n_probes, loaded.r, loaded.values_dtype) == (N_PROBES, R, np.dtype(np.float32))
    assert loaded.search(np.random.default_rng(21).normal(size=N_PROBES), 5) == [[]]


def test_loading_a_file_that_is_not_an_index_says_so(tmp_path):
    rng = np.random.default_rng(22)
    _, _, index, _ = labelled_hub(rng)
    other = tmp_path / "other.bin"
    other.write_bytes(b"hello, not an index")
    with pytest.raises(ValueError, match="not an index file"):
        SparseLogitIndex.load(other)
    path = tmp_path / "index.plx"
    atomic_write(path, index.save)
    truncated = tmp_path / "truncated.plx"
    truncated.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated"):
        SparseLogitIndex.load(truncated)
    damaged = tmp_path / "damaged.plx"
    data = bytearray(path.read_bytes())
    data[20:30] = b"#" * 10
    damaged.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="damaged"):
        SparseLogitIndex.load(damaged)
    with pytest.raises(FileNotFoundError):
        SparseLogitIndex.load(tmp_path / "missing.plx")


def test_model_ids_must_be_non_empty_without_nul():
    entries = logit_entries(np.random.default_rng(23).normal(size=(1, N_PROBES)), R)
    index = SparseLogitIndex(N_PROBES, R)
    for bad in ("", "a\0b"):
        with pytest.raises(ValueError, match="model ids"):
            index.add(bad, entries, [0.0])


def test_a_model_added_then_removed_before_the_ids_are_sorted_leaves_the_ranking_whole():
    rng = np.random.default_rng(24)
    index = SparseLogitIndex(N_PROBES, R)
    entries = logit_entries(rng.normal(size=(1, N_PROBES)), R)
    index.add("kept", entries, [0.0])
    index.search(rng.normal(size=N_PROBES), 5)  # sorts the ids
    index.add("gone", entries, [0.0])
    index.remove("gone")
    assert [h.model_id for h in index.search(rng.normal(size=N_PROBES), 5)[0]] == ["kept"]
    index.add("gone", entries, [0.0])
    assert [h.model_id for h in index.search(rng.normal(size=N_PROBES), 5)[0]] == ["gone", "kept"]
