"""Invariances the method must have, checked on random data with hypothesis."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from probelog.core import calibrated_distances, truncated_distances

N_PROBES = 40


@st.composite
def hub(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(draw(st.integers(1, 5)), N_PROBES))
    concepts = rng.normal(size=(draw(st.integers(1, 4)), N_PROBES))
    background = rng.normal(size=(6, N_PROBES))
    return rng, logits, concepts, background


@settings(max_examples=60, deadline=None)
@given(hub(), st.floats(0.01, 100), st.floats(-1000, 1000))
def test_affine_change_of_a_logit_changes_nothing(data, scale, shift):
    _, logits, concepts, background = data
    moved = logits * scale + shift
    np.testing.assert_allclose(
        calibrated_distances(moved, concepts, background, r=10, k=3),
        calibrated_distances(logits, concepts, background, r=10, k=3),
        rtol=1e-3,
        atol=1e-3,
    )


@settings(max_examples=60, deadline=None)
@given(hub())
def test_consistent_probe_permutation_changes_nothing(data):
    rng, logits, concepts, background = data
    perm = rng.permutation(N_PROBES)
    np.testing.assert_allclose(
        calibrated_distances(logits[:, perm], concepts[:, perm], background[:, perm], r=10, k=3),
        calibrated_distances(logits, concepts, background, r=10, k=3),
        rtol=1e-4,
        atol=1e-4,
    )


@settings(max_examples=40, deadline=None)
@given(hub(), st.floats(0.01, 100), st.floats(-1000, 1000))
def test_affine_change_of_a_concept_changes_nothing(data, scale, shift):
    _, logits, concepts, _ = data
    np.testing.assert_allclose(
        truncated_distances(logits, concepts * scale + shift, r=10),
        truncated_distances(logits, concepts, r=10),
        rtol=1e-3,
        atol=1e-3,
    )


@settings(max_examples=40, deadline=None)
@given(hub())
def test_distances_are_non_negative_and_bounded(data):
    _, logits, concepts, _ = data
    d = truncated_distances(logits, concepts, r=10)
    # Each z-score is at most sqrt(n - 1) in magnitude.
    assert (d >= 0).all()
    assert (d <= 2 * np.sqrt(10 * (N_PROBES - 1)) + 1e-4).all()
