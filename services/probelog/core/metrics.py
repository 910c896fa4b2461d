"""Evaluation metrics (paper Sec. 5): retrieval and classification accuracy, hubness, PR-AUC.

Distance matrices ``D`` have shape (n_logits, n_concepts) and are lower-is-better; pass
``-S`` for a higher-is-better score. Rankings break ties by index, so they are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

__all__ = [
    "average_precision",
    "classification_top_k_accuracy",
    "hubness_coverage",
    "retrieval_top_k_accuracy",
]


def _rank(values: npt.NDArray[np.float64], axis: int) -> npt.NDArray[np.int64]:
    return np.argsort(values, axis=axis, kind="stable")


def retrieval_top_k_accuracy(
    D: npt.ArrayLike, relevant: npt.ArrayLike, ks: Sequence[int] = (1, 5)
) -> dict[int, float]:
    """Share of query concepts with a relevant logit among their top-k retrieved logits.

    Parameters
    ----------
    D : array-like of shape (n_logits, n_queries)
        Distance of every logit to every query concept.
    relevant : array-like of shape (n_logits, n_queries), bool
        ``relevant[l, q]`` when logit l is a correct answer to query q. Queries without any
        relevant logit are not counted.
    ks : sequence of int

    Returns
    -------
    dict mapping k to accuracy in [0, 1]
    """
    d = np.asarray(D, dtype=np.float64)
    rel = np.asarray(relevant, dtype=bool)
    if d.shape != rel.shape or d.ndim != 2:
        raise ValueError(f"D and relevant must have the same 2-D shape, got {d.shape}, {rel.shape}")
    queries = np.flatnonzero(rel.any(axis=0))
    if len(queries) == 0:
        raise ValueError("no query has a relevant logit")
    order = _rank(d[:, queries], axis=0)  # (n_logits, n_queries)
    hits = np.take_along_axis(rel[:, queries], order, axis=0)
    first = np.argmax(hits, axis=0)  # rank of the first relevant logit (0-based)
    return {int(k): float(np.mean(first < k)) for k in ks}


def classification_top_k_accuracy(
    D: npt.ArrayLike, true_concepts: npt.ArrayLike, ks: Sequence[int] = (1, 5)
) -> dict[int, float]:
    """Share of logits whose true concept is among the k closest concepts (paper Tab. 1).

    Parameters
    ----------
    D : array-like of shape (n_logits, n_concepts)
    true_concepts : array-like of shape (n_logits,), int
        Column of each logit's true concept.

    Returns
    -------
    dict mapping k to accuracy in [0, 1]
    """
    d = np.asarray(D, dtype=np.float64)
    truth = np.asarray(true_concepts, dtype=np.int64)
    if d.ndim != 2 or truth.shape != (d.shape[0],):
        raise ValueError(f"need D (n_logits, n_concepts) and truth (n_logits,), got {d.shape}, {truth.shape}")
    own = d[np.arange(d.shape[0]), truth]
    # Rank of the true concept = concepts strictly closer + equal ones at a lower index.
    idx = np.arange(d.shape[1])[None, :]
    ahead = (d < own[:, None]) | ((d == own[:, None]) & (idx < truth[:, None]))
    rank = ahead.sum(axis=1)
    return {int(k): float(np.mean(rank < k)) for k in ks}


def hubness_coverage(D: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """How many queries the K most-returned logits cover, for every K (paper Fig. 4).

    Parameters
    ----------
    D : array-like of shape (n_logits, n_queries)

    Returns
    -------
    coverage : ndarray of shape (n_distinct_top1,), int64
        ``coverage[K-1]`` is the number of queries whose top-1 logit is one of the K logits
        returned as top-1 most often. A flatter curve means less hubness.
    """
    d = np.asarray(D, dtype=np.float64)
    top1 = _rank(d, axis=0)[0]
    counts = np.sort(np.bincount(top1, minlength=d.shape[0]))[::-1]
    counts = counts[counts > 0]
    return np.asarray(np.cumsum(counts), dtype=np.int64)


def average_precision(scores: npt.ArrayLike, labels: npt.ArrayLike) -> float:
    """Area under the precision-recall curve as average precision (step interpolation).

    Parameters
    ----------
    scores : array-like of shape (n_samples,)
        Higher means more likely positive.
    labels : array-like of shape (n_samples,), bool

    Returns
    -------
    float
        ``sum_n (R_n - R_{n-1}) P_n`` over the distinct score thresholds, in [0, 1].
    """
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError("scores and labels must be 1-D of the same length")
    n_pos = int(y.sum())
    if n_pos == 0:
        raise ValueError("average precision needs at least one positive")
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    # Evaluate only at the last sample of each group of equal scores.
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp_at = tp[last].astype(np.float64)
    precision = tp_at / (last + 1)
    recall = tp_at / n_pos
    recall_prev = np.r_[0.0, recall[:-1]]
    return float(np.sum((recall - recall_prev) * precision))
