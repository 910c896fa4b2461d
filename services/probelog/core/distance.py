"""Truncated distance (paper Eq. 5) and hubness calibration (paper Eq. 6).

Shapes follow the paper's roles: ``logits`` holds logit descriptors, one row per logit
(n_logits, n_probes), raw responses; ``concepts`` holds concept descriptors, one row per concept
(n_concepts, n_probes), raw CLIP similarities. Distances ``D`` have shape (n_logits, n_concepts);
lower is closer.

Everything is computed through the per-logit entries (top-r probe indices and z-scored values),
using ``d^2 = ||a_l||^2 - 2 <a_l, z_c[t_l]> + sum_{i in t_l} z_c[i]^2`` (docs/design.md), which is the
same quantity as Eq. 5 and costs O(n_logits * r) per concept instead of O(n_logits * n_probes).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from probelog.core.descriptors import zscore

__all__ = [
    "DEFAULT_CALIBRATION_K",
    "DEFAULT_R",
    "LogitEntries",
    "calibrated_distances",
    "calibration_offsets",
    "entry_distances",
    "logit_entries",
    "top_r_indices",
    "truncated_distances",
]

#: Probes kept per logit (paper Sec. 4.1 and Fig. 8).
DEFAULT_R = 50
#: Background concepts averaged into each calibration offset. Chosen by the calibration-k sweep
#: of ``probelog bench quality`` (bench/results/quality.md).
DEFAULT_CALIBRATION_K = 100

# Rows per block in the sparse products: bounds the (block, n_concepts) float64 intermediate.
_BLOCK_ROWS = 8192


@dataclass(frozen=True)
class LogitEntries:
    """The searchable form of a set of logit descriptors.

    Attributes
    ----------
    top_indices : ndarray of shape (n_logits, r), int64
        ``top_indices[l]`` are the r probes with the highest raw response of logit l, in
        descending response order; ties go to the lower probe index.
    top_values : ndarray of shape (n_logits, r), float32
        The z-scored response of logit l at those probes.
    n_probes : int
        Size of the probe set the entries index into.
    """

    top_indices: npt.NDArray[np.int64]
    top_values: npt.NDArray[np.float32]
    n_probes: int

    @property
    def n_logits(self) -> int:
        return int(self.top_indices.shape[0])

    @property
    def r(self) -> int:
        return int(self.top_indices.shape[1])

    def __post_init__(self) -> None:
        if self.top_indices.shape != self.top_values.shape or self.top_indices.ndim != 2:
            raise ValueError(
                "top_indices and top_values must both have shape (n_logits, r), got "
                f"{self.top_indices.shape} and {self.top_values.shape}"
            )
        if self.top_indices.size and (
            self.top_indices.min() < 0 or self.top_indices.max() >= self.n_probes
        ):
            raise ValueError(f"top_indices must lie in [0, {self.n_probes})")


def _check_r(r: int, n_probes: int) -> int:
    r = int(r)
    if r < 1:
        raise ValueError(f"r must be at least 1, got {r}")
    if r > n_probes:
        raise ValueError(f"r = {r} exceeds the number of probes ({n_probes})")
    return r


def top_r_indices(logits: npt.ArrayLike, r: int = DEFAULT_R) -> npt.NDArray[np.int64]:
    """Indices of the r highest raw responses of each logit (the paper's a_1..a_r).

    Parameters
    ----------
    logits : array-like of shape (n_logits, n_probes)
        Raw logit responses.
    r : int
        1 <= r <= n_probes.

    Returns
    -------
    I : ndarray of shape (n_logits, r), int64
        ``I[l, j]`` is the probe with the (j+1)-th highest response of logit l; equal responses
        are ordered by probe index, so the result is deterministic.
    """
    x = np.asarray(logits)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    if x.ndim != 2:
        raise ValueError(f"logits must have shape (n_logits, n_probes), got {x.shape}")
    r = _check_r(r, x.shape[1])
    out = np.empty((x.shape[0], r), dtype=np.int64)
    for start in range(0, x.shape[0], _BLOCK_ROWS):
        block = x[start : start + _BLOCK_ROWS]
        # A stable sort of the negated responses is descending with ties in probe order.
        out[start : start + len(block)] = np.argsort(-block, axis=1, kind="stable")[:, :r]
    return out


def logit_entries(logits: npt.ArrayLike, r: int = DEFAULT_R) -> LogitEntries:
    """Z-score each logit over all probes and keep its top-r probes (paper Eq. 5, left term).

    Parameters
    ----------
    logits : array-like of shape (n_logits, n_probes)
        Raw logit responses (paper Eq. 2).
    r : int

    Returns
    -------
    LogitEntries

    Raises
    ------
    ValueError
        If a logit has non-finite responses or is constant over the probes.
    """
    z = zscore(logits, what="logit")
    idx = top_r_indices(np.asarray(logits).reshape(z.shape), r)
    values = np.take_along_axis(z, idx, axis=1)
    return LogitEntries(top_indices=idx, top_values=values, n_probes=z.shape[1])


def _sparse_rows(
    entries: LogitEntries, data: npt.NDArray[np.float64]
) -> sp.csr_matrix:
    n_logits, r = entries.top_indices.shape
    indptr = np.arange(0, n_logits * r + 1, r, dtype=np.int64)
    return sp.csr_matrix(
        (data.ravel(), entries.top_indices.ravel(), indptr), shape=(n_logits, entries.n_probes)
    )


def entry_distances(entries: LogitEntries, concepts_z: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Truncated distances from indexed logits to z-scored concept descriptors (paper Eq. 5).

    Uses the sparse inner-product form: one sparse row ``-2 a_l`` at ``t_l`` against ``z_c``,
    one indicator row at ``t_l`` against ``z_c**2``, plus ``||a_l||^2``.

    Parameters
    ----------
    entries : LogitEntries
    concepts_z : array-like of shape (n_concepts, n_probes)
        Z-scored concept descriptors.

    Returns
    -------
    D : ndarray of shape (n_logits, n_concepts), float32
        ``D[l, c] = sqrt(sum_j (a_l[j] - z_c[t_l[j]])**2)``.
    """
    zc = np.asarray(concepts_z, dtype=np.float64)
    if zc.ndim != 2 or zc.shape[1] != entries.n_probes:
        raise ValueError(
            f"concept descriptors must have shape (n_concepts, {entries.n_probes}), got {zc.shape}"
        )
    values = entries.top_values.astype(np.float64)
    sq_norms = np.einsum("lr,lr->l", values, values)
    inner = _sparse_rows(entries, values)
    mask = _sparse_rows(entries, np.ones_like(values))
    zc_t = np.ascontiguousarray(zc.T)
    zc2_t = zc_t * zc_t
    out = np.empty((entries.n_logits, zc.shape[0]), dtype=np.float32)
    for start in range(0, entries.n_logits, _BLOCK_ROWS):
        rows = slice(start, min(start + _BLOCK_ROWS, entries.n_logits))
        d2 = sq_norms[rows, None] - 2.0 * (inner[rows] @ zc_t) + mask[rows] @ zc2_t
        # Rounding can leave a tiny negative where the distance is zero.
        out[rows] = np.sqrt(np.maximum(d2, 0.0))
    return out


def truncated_distances(
    logits: npt.ArrayLike, concepts: npt.ArrayLike, r: int = DEFAULT_R
) -> npt.NDArray[np.float32]:
    """Truncated Euclidean distance between logits and concepts (paper Eq. 5).

    Parameters
    ----------
    logits : array-like of shape (n_logits, n_probes)
        Raw logit responses; the top-r probes are chosen by these raw values.
    concepts : array-like of shape (n_concepts, n_probes)
        Raw concept descriptors (CLIP similarities).
    r : int
        Probes kept per logit, 1 <= r <= n_probes.

    Returns
    -------
    D : ndarray of shape (n_logits, n_concepts), float32
        ``D[l, c]`` is d_trim(l, c), both descriptors z-scored over all probes.
    """
    entries = logit_entries(logits, r)
    return entry_distances(entries, zscore(concepts, what="concept"))


def calibration_offsets(
    entries: LogitEntries, background_z: npt.ArrayLike, k: int = DEFAULT_CALIBRATION_K
) -> npt.NDArray[np.float32]:
    """Hubness offset of each logit: mean of its k smallest truncated distances to the
    background concepts (paper Eq. 6).

    Depends only on the logit and the background set, so it is computed once when the logit is
    indexed.

    Parameters
    ----------
    entries : LogitEntries
    background_z : array-like of shape (n_background, n_probes)
        Z-scored background concept descriptors.
    k : int
        1 <= k <= n_background.

    Returns
    -------
    ndarray of shape (n_logits,), float32
    """
    bz = np.asarray(background_z, dtype=np.float32)
    if bz.ndim != 2:
        raise ValueError(f"background descriptors must be 2-D, got shape {bz.shape}")
    k = int(k)
    if not 1 <= k <= bz.shape[0]:
        raise ValueError(f"k must be in [1, {bz.shape[0]}] (the background size), got {k}")
    out = np.empty(entries.n_logits, dtype=np.float32)
    for start in range(0, entries.n_logits, _BLOCK_ROWS):
        rows = slice(start, min(start + _BLOCK_ROWS, entries.n_logits))
        block = LogitEntries(entries.top_indices[rows], entries.top_values[rows], entries.n_probes)
        d = entry_distances(block, bz).astype(np.float64)
        out[rows] = np.partition(d, k - 1, axis=1)[:, :k].mean(axis=1)
    return out


def calibrated_distances(
    logits: npt.ArrayLike,
    concepts: npt.ArrayLike,
    background: npt.ArrayLike,
    r: int = DEFAULT_R,
    k: int = DEFAULT_CALIBRATION_K,
) -> npt.NDArray[np.float32]:
    """Calibrated truncated distances, ProbeLog's retrieval score (paper Eq. 6).

    Parameters
    ----------
    logits : array-like of shape (n_logits, n_probes)
        Raw logit responses.
    concepts : array-like of shape (n_concepts, n_probes)
        Raw query concept descriptors.
    background : array-like of shape (n_background, n_probes)
        Raw background concept descriptors.
    r : int
    k : int

    Returns
    -------
    D : ndarray of shape (n_logits, n_concepts), float32
        ``D[l, c] = d_trim(l, c) - offset(l)``; lower is a better match.
    """
    entries = logit_entries(logits, r)
    offsets = calibration_offsets(entries, zscore(background, what="background"), k)
    d = entry_distances(entries, zscore(concepts, what="concept"))
    return d - offsets[:, None]
