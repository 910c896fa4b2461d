from __future__ import annotations

import numpy as np
import pytest

from probelog.core import (
    calibrated_distances,
    calibration_offsets,
    entry_distances,
    logit_entries,
    top_r_indices,
    truncated_distances,
    zscore,
)
from tests.unit.core import paper


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_truncated_distance_matches_eq5(rng):
    logits = rng.normal(size=(7, 40)) * rng.uniform(0.5, 3, size=(7, 1)) + 5
    concepts = rng.uniform(0.1, 0.4, size=(5, 40))
    got = truncated_distances(logits, concepts, r=10)
    want = [[paper.d_trim(l, c, 10) for c in concepts] for l in logits]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_calibrated_distance_matches_eq6(rng):
    logits = rng.normal(size=(6, 30))
    concepts = rng.normal(size=(4, 30))
    background = rng.normal(size=(12, 30))
    got = calibrated_distances(logits, concepts, background, r=8, k=3)
    want = [[paper.d_calibrated(l, c, background, 8, 3) for c in concepts] for l in logits]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_offsets_depend_only_on_logit_and_background(rng):
    logits = rng.normal(size=(5, 30))
    background = rng.normal(size=(9, 30))
    entries = logit_entries(logits, 6)
    offsets = calibration_offsets(entries, zscore(background), k=4)
    for l, logit in enumerate(logits):
        dists = sorted(paper.d_trim(logit, b, 6) for b in background)
        assert offsets[l] == pytest.approx(sum(dists[:4]) / 4, rel=1e-5)


def test_top_r_breaks_ties_by_probe_index():
    logits = np.array([[1.0, 3.0, 3.0, 0.0, 3.0, 2.0]])
    np.testing.assert_array_equal(top_r_indices(logits, 4), [[1, 2, 4, 5]])


def test_ties_match_the_reference():
    # Integer responses make ties at the top-r boundary common.
    rng = np.random.default_rng(3)
    logits = rng.integers(0, 4, size=(6, 25)).astype(float)
    logits[:, 0] = 10  # never constant
    concepts = rng.normal(size=(3, 25))
    got = truncated_distances(logits, concepts, r=7)
    want = [[paper.d_trim(l, c, 7) for c in concepts] for l in logits]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_r_equal_to_n_probes_is_full_euclidean(rng):
    logits = rng.normal(size=(3, 12))
    concepts = rng.normal(size=(2, 12))
    got = truncated_distances(logits, concepts, r=12)
    want = np.linalg.norm(zscore(logits)[:, None, :] - zscore(concepts)[None, :, :], axis=2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("r", [0, 13])
def test_r_out_of_range_is_rejected(rng, r):
    with pytest.raises(ValueError, match="r "):
        truncated_distances(rng.normal(size=(2, 12)), rng.normal(size=(2, 12)), r=r)


def test_k_out_of_range_is_rejected(rng):
    with pytest.raises(ValueError, match="k must be"):
        calibrated_distances(
            rng.normal(size=(2, 12)), rng.normal(size=(1, 12)), rng.normal(size=(3, 12)), r=4, k=4
        )


def test_constant_logit_is_rejected_naming_it(rng):
    logits = rng.normal(size=(4, 20))
    logits[2] = 7.0
    with pytest.raises(ValueError, match=r"logit row 2 is constant"):
        truncated_distances(logits, rng.normal(size=(1, 20)), r=5)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_logit_is_rejected(rng, bad):
    logits = rng.normal(size=(3, 20))
    logits[1, 4] = bad
    with pytest.raises(ValueError, match=r"logit row 1 has non-finite"):
        truncated_distances(logits, rng.normal(size=(1, 20)), r=5)


def test_constant_concept_is_rejected(rng):
    with pytest.raises(ValueError, match=r"concept row 0 is constant"):
        truncated_distances(rng.normal(size=(2, 20)), np.ones((1, 20)), r=5)


def test_model_with_one_logit(rng):
    logit = rng.normal(size=(1, 30))
    concepts = rng.normal(size=(3, 30))
    got = truncated_distances(logit, concepts, r=5)
    assert got.shape == (1, 3)
    np.testing.assert_allclose(got[0], [paper.d_trim(logit[0], c, 5) for c in concepts], rtol=1e-5)


def test_entry_distances_rejects_wrong_probe_count(rng):
    entries = logit_entries(rng.normal(size=(2, 10)), 3)
    with pytest.raises(ValueError, match="shape"):
        entry_distances(entries, rng.normal(size=(1, 11)))


def test_distance_to_itself_is_zero(rng):
    x = rng.normal(size=(3, 50))
    d = truncated_distances(x, x, r=10)
    np.testing.assert_allclose(np.diag(d), 0.0, atol=1e-5)
