from __future__ import annotations

import numpy as np
import pytest

from probelog.core.metrics import (
    average_precision,
    classification_top_k_accuracy,
    hubness_coverage,
    retrieval_top_k_accuracy,
)


def test_retrieval_accuracy_by_hand():
    # 4 logits x 3 queries.
    D = np.array([[0.1, 0.9, 0.5], [0.2, 0.1, 0.6], [0.3, 0.8, 0.1], [0.4, 0.7, 0.2]])
    relevant = np.array(
        [[False, False, False], [True, False, False], [False, True, False], [False, False, False]]
    )
    # q0: relevant logit 1 ranked 2nd; q1: relevant logit 2 ranked 4th; q2 has none -> skipped.
    assert retrieval_top_k_accuracy(D, relevant, ks=(1, 2, 4)) == {1: 0.0, 2: 0.5, 4: 1.0}


def test_classification_accuracy_by_hand():
    D = np.array([[0.5, 0.1, 0.9], [0.3, 0.3, 0.1]])
    # logit 0's truth is concept 1 (closest); logit 1's truth is concept 1 (tie with 0 -> rank 2).
    assert classification_top_k_accuracy(D, [1, 1], ks=(1, 2, 3)) == {1: 0.5, 2: 0.5, 3: 1.0}


def test_hubness_coverage():
    # Queries 0, 1, 2 all retrieve logit 0 first; query 3 retrieves logit 2.
    D = np.array([[0, 0, 0, 5], [1, 1, 1, 1], [2, 2, 2, 0]], dtype=float)
    np.testing.assert_array_equal(hubness_coverage(D), [3, 4])


def test_average_precision_by_hand():
    # Ranked: P, N, P, N -> AP = (1/2)*1 + (1/2)*(2/3).
    assert average_precision([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0]) == pytest.approx(0.5 + 1 / 3)
    assert average_precision([3, 2, 1], [1, 1, 0]) == pytest.approx(1.0)


def test_average_precision_groups_ties():
    # All tied: one threshold, precision = 1/2 at recall 1.
    assert average_precision([1, 1, 1, 1], [1, 0, 1, 0]) == pytest.approx(0.5)


def test_average_precision_needs_a_positive():
    with pytest.raises(ValueError, match="positive"):
        average_precision([1, 2], [0, 0])
