"""Evidence of a match against a direct transcription of Eq. 5's terms (tests/unit/core/paper.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from probelog.core.distance import logit_entries
from probelog.core.evidence import match_evidence, top_probes
from tests.unit.core.paper import d_trim, mean_std, sorted_desc


def slow_evidence(phi_logit, phi_concept, r):
    """Per probe of the logit's top r: (index, z_l, z_c, term of Eq. 5), smallest term first."""
    mu_l, s_l = mean_std(phi_logit)
    mu_c, s_c = mean_std(phi_concept)
    rows = []
    for i in sorted_desc(phi_logit)[:r]:
        zl = (float(phi_logit[i]) - mu_l) / s_l
        zc = (float(phi_concept[i]) - mu_c) / s_c
        rows.append((i, zl, zc, (zl - zc) ** 2))
    return sorted(rows, key=lambda row: row[3])


@pytest.mark.parametrize("seed", range(5))
def test_match_evidence_is_eq5_terms_smallest_first(seed):
    rng = np.random.default_rng(seed)
    n_probes, r = 40, 12
    phi_logit, phi_concept = rng.normal(size=n_probes), rng.normal(size=n_probes)
    entries = logit_entries(phi_logit[None, :], r)
    mu, sigma = phi_concept.mean(), phi_concept.std()
    I, A, Q = match_evidence(entries.top_indices[0], entries.top_values[0], (phi_concept - mu) / sigma, r)
    expected = slow_evidence(phi_logit, phi_concept, r)
    assert I.tolist() == [row[0] for row in expected]
    np.testing.assert_allclose(A, [row[1] for row in expected], rtol=1e-5)
    np.testing.assert_allclose(Q, [row[2] for row in expected], rtol=1e-5, atol=1e-6)
    # The terms add up to the truncated distance itself.
    assert math.sqrt(float(((A.astype(np.float64) - Q) ** 2).sum())) == pytest.approx(
        d_trim(phi_logit, phi_concept, r), rel=1e-5
    )


def test_fewer_probes_than_asked_and_ties_keep_the_stored_order():
    indices, values = np.array([7, 2, 5]), np.array([2.0, 2.0, 1.0], dtype=np.float32)
    query = np.zeros(10, dtype=np.float32)
    I, _, _ = match_evidence(indices, values, query, 10)
    assert I.tolist() == [5, 7, 2]
    I, V = top_probes(indices, values, 2)
    assert I.tolist() == [7, 2] and V.tolist() == [2.0, 2.0]


@pytest.mark.parametrize(
    ("args", "text"),
    [
        (([1, 2], [1.0], np.zeros(5), 1), "one shape"),
        (([1, 9], [1.0, 0.5], np.zeros(5), 1), "every probe"),
        (([1, 2], [1.0, 0.5], np.zeros(5), 0), "at least 1"),
    ],
)
def test_bad_input(args, text):
    with pytest.raises(ValueError, match=text):
        match_evidence(*args)
