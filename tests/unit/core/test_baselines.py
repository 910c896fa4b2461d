from __future__ import annotations

import numpy as np
import pytest

from probelog.core.baselines import (
    all_probes_calibrated_distances,
    all_probes_distances,
    soft_wpmi,
    wpmi,
)
from probelog.core.distance import calibrated_distances, truncated_distances
from tests.unit.core import paper


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 30))
    concepts = rng.uniform(0.1, 0.35, size=(4, 30))
    return logits, concepts


def test_wpmi_matches_eq7(data):
    logits, concepts = data
    got = wpmi(logits, concepts, top_k=6, a=2.0, lam=0.6)
    want = paper.wpmi(logits, concepts, top_k=6, a=2.0, lam=0.6)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_soft_wpmi_matches_reference(data):
    logits, concepts = data
    got = soft_wpmi(logits, concepts, top_k=10, a=10.0, lam=1.0, p_start=0.998, p_end=0.97)
    want = paper.wpmi(logits, concepts, top_k=10, a=10.0, lam=1.0, soft=(0.998, 0.97))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_all_probes_distance_is_truncation_with_r_equal_n(data):
    logits, concepts = data
    np.testing.assert_allclose(
        all_probes_distances(logits, concepts), truncated_distances(logits, concepts, r=30), rtol=1e-4, atol=1e-4
    )


def test_all_probes_anti_hub_is_calibration_with_r_equal_n(data):
    logits, concepts = data
    background = np.random.default_rng(1).normal(size=(8, 30))
    np.testing.assert_allclose(
        all_probes_calibrated_distances(logits, concepts, background, k=3),
        calibrated_distances(logits, concepts, background, r=30, k=3),
        rtol=1e-4,
        atol=1e-4,
    )


def test_wpmi_top_k_range(data):
    logits, concepts = data
    with pytest.raises(ValueError, match="top_k"):
        wpmi(logits, concepts, top_k=31)
