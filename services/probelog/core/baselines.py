"""Baselines the benchmark compares ProbeLog with (paper Sec. 5.1).

- CLIP-Dissect WPMI and SoftWPMI (Oikarinen & Weng, 2023; paper Eq. 7): a logit is described by
  the probes that activate it most, and a concept scores by how confidently CLIP assigns it to
  those probes, normalised by how confidently CLIP assigns it to the top probes of every logit
  in the gallery. ``P(c | x)`` is a softmax over the concept vocabulary of ``a`` times CLIP's
  cosine similarity. Scores are higher-is-better.
- All probes + anti-hub: z-scored Euclidean distance over every probe, with the same hubness
  calibration as ProbeLog. Lower-is-better.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.special import logsumexp, softmax

from probelog.core.descriptors import zscore

__all__ = [
    "all_probes_calibrated_distances",
    "all_probes_distances",
    "concept_probabilities",
    "soft_wpmi",
    "wpmi",
]

# Floor added to probabilities before the log, as in CLIP-Dissect.
MIN_PROB = 1e-7


def concept_probabilities(concepts: npt.ArrayLike, a: float) -> npt.NDArray[np.float64]:
    """``P(c | x)`` for every probe x over a concept vocabulary.

    Parameters
    ----------
    concepts : array-like of shape (n_concepts, n_probes)
        CLIP cosine similarity of each concept with each probe.
    a : float
        Softmax temperature multiplier.

    Returns
    -------
    P : ndarray of shape (n_probes, n_concepts), float64
        Each row sums to 1.
    """
    s = np.asarray(concepts, dtype=np.float64)
    if s.ndim != 2:
        raise ValueError(f"concepts must have shape (n_concepts, n_probes), got {s.shape}")
    return np.asarray(softmax(a * s.T, axis=1), dtype=np.float64)


def _top_probes(logits: npt.ArrayLike, top_k: int, n_probes: int) -> npt.NDArray[np.int64]:
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != n_probes:
        raise ValueError(f"logits must have shape (n_logits, {n_probes}), got {x.shape}")
    if not 1 <= top_k <= n_probes:
        raise ValueError(f"top_k must be in [1, {n_probes}], got {top_k}")
    return np.argsort(-x, axis=1, kind="stable")[:, :top_k]


def _blocks(n_logits: int, top_k: int, n_concepts: int) -> list[slice]:
    """Row blocks whose (block, top_k, n_concepts) float64 intermediate stays near 64 MB."""
    rows = max(1, (8 << 20) // max(1, top_k * n_concepts))
    return [slice(s, min(s + rows, n_logits)) for s in range(0, n_logits, rows)]


def _pmi(log_p_given: npt.NDArray[np.float64], lam: float) -> npt.NDArray[np.float32]:
    # log p(c) over the gallery: log of the mean over logits of prod_i p(c | x_ai), computed
    # with logsumexp to avoid underflow. Eq. 7's + lambda log|C| is a constant and ranks
    # nothing, so it is left out.
    n_logits = log_p_given.shape[0]
    log_p_c = logsumexp(log_p_given, axis=0, keepdims=True) - np.log(n_logits)
    return np.asarray(log_p_given - lam * log_p_c, dtype=np.float32)


def wpmi(
    logits: npt.ArrayLike,
    concepts: npt.ArrayLike,
    top_k: int = 28,
    a: float = 2.0,
    lam: float = 0.6,
) -> npt.NDArray[np.float32]:
    """CLIP-Dissect WPMI (paper Eq. 7).

    Parameters
    ----------
    logits : array-like of shape (n_logits, n_probes)
        Raw logit responses of the whole gallery.
    concepts : array-like of shape (n_concepts, n_probes)
        CLIP similarities of the concept vocabulary with the probes.
    top_k, a, lam : CLIP-Dissect's WPMI defaults.

    Returns
    -------
    S : ndarray of shape (n_logits, n_concepts), float32
        ``S[l, c] = sum_{i<top_k} log p(c | x_{a_i}) - lam * log p(c)``; higher is better.
    """
    p = concept_probabilities(concepts, a)
    top = _top_probes(logits, top_k, p.shape[0])
    log_p = np.log(p + MIN_PROB)
    log_p_given = np.concatenate(
        [log_p[top[rows]].sum(axis=1) for rows in _blocks(len(top), top_k, p.shape[1])]
    )  # (n_logits, n_concepts)
    return _pmi(log_p_given, lam)


def soft_wpmi(
    logits: npt.ArrayLike,
    concepts: npt.ArrayLike,
    top_k: int = 100,
    a: float = 10.0,
    lam: float = 1.0,
    p_start: float = 0.998,
    p_end: float = 0.97,
) -> npt.NDArray[np.float32]:
    """CLIP-Dissect SoftWPMI.

    The j-th most activating probe (j = 0..top_k-1) belongs to the logit's concept set with
    probability ``p_j = p_start - j / top_k * (p_start - p_end)``, so it contributes
    ``log(1 + p_j (p(c | x) - 1))`` instead of ``log p(c | x)``.

    Returns
    -------
    S : ndarray of shape (n_logits, n_concepts), float32
        Higher is better.
    """
    p = concept_probabilities(concepts, a)
    top = _top_probes(logits, top_k, p.shape[0])
    weights = p_start - np.arange(top_k) / top_k * (p_start - p_end)  # (top_k,)
    blocks = []
    for rows in _blocks(len(top), top_k, p.shape[1]):
        soft = 1.0 + weights[None, :, None] * (p[top[rows]] - 1.0)  # (block, top_k, n_concepts)
        blocks.append(np.log(soft + MIN_PROB).sum(axis=1))
    return _pmi(np.concatenate(blocks), lam)


def all_probes_distances(
    logits: npt.ArrayLike, concepts: npt.ArrayLike
) -> npt.NDArray[np.float32]:
    """Euclidean distance between z-scored descriptors over all probes.

    With population z-scores ``||z||^2 = n_probes``, so ``d^2 = 2 n - 2 <z_l, z_c>``.

    Returns
    -------
    D : ndarray of shape (n_logits, n_concepts), float32
    """
    zl = zscore(logits, what="logit").astype(np.float64)
    zc = zscore(concepts, what="concept").astype(np.float64)
    if zl.shape[1] != zc.shape[1]:
        raise ValueError(f"probe counts differ: {zl.shape[1]} vs {zc.shape[1]}")
    n = zl.shape[1]
    d2 = 2.0 * n - 2.0 * (zl @ zc.T)
    return np.asarray(np.sqrt(np.maximum(d2, 0.0)), dtype=np.float32)


def all_probes_calibrated_distances(
    logits: npt.ArrayLike,
    concepts: npt.ArrayLike,
    background: npt.ArrayLike,
    k: int,
) -> npt.NDArray[np.float32]:
    """All probes + anti-hub: :func:`all_probes_distances` minus the mean of each logit's k
    smallest distances to the background concepts (paper Eq. 6 without truncation).

    Returns
    -------
    D : ndarray of shape (n_logits, n_concepts), float32
    """
    bg = all_probes_distances(logits, background).astype(np.float64)
    if not 1 <= k <= bg.shape[1]:
        raise ValueError(f"k must be in [1, {bg.shape[1]}], got {k}")
    offsets = np.partition(bg, k - 1, axis=1)[:, :k].mean(axis=1)
    return np.asarray(all_probes_distances(logits, concepts) - offsets[:, None], dtype=np.float32)
