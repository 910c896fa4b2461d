"""Scoring kernels for :class:`probelog.core.index.SparseLogitIndex`.

A kernel reads each index row once per batch of queries:

    d^2[q, l] = sq_norm[l] + sum_j z[q, t_lj] * (z[q, t_lj] - 2 a_lj)
    score[q, l] = sqrt(max(d^2, 0)) - offset[l]

Rows that are dead or filtered out score +inf.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["score"]

# Rows per chunk: the gathered (n_queries, chunk, r) float32 block stays within a few MB per
# query.
_CHUNK_ROWS = 4096


def score(
    idx: npt.NDArray[np.unsignedinteger],
    val: npt.NDArray[np.floating],
    sq_norm: npt.NDArray[np.float32],
    offset: npt.NDArray[np.float32],
    z: npt.NDArray[np.float32],
    allowed: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """Calibrated and raw truncated distances of every row for every query.

    Parameters
    ----------
    idx : ndarray of shape (n_rows, r), uint16 or uint32
        Top-r probe indices per row.
    val : ndarray of shape (n_rows, r), float16 or float32
        Z-scored values at those indices.
    sq_norm : ndarray of shape (n_rows,), float32
        ``sum_j val[l, j]**2`` of the stored values.
    offset : ndarray of shape (n_rows,), float32
        Calibration offsets.
    z : ndarray of shape (n_queries, n_probes), float32
        Z-scored query descriptors.
    allowed : ndarray of shape (n_rows,), bool
        Rows to score; the others get +inf.

    Returns
    -------
    scores : ndarray of shape (n_queries, n_rows), float32
        ``distances - offset``, +inf where not allowed.
    distances : ndarray of shape (n_queries, n_rows), float32
        Truncated distances (paper Eq. 5), +inf where not allowed.
    """
    n_rows = idx.shape[0]
    n_queries = z.shape[0]
    dists = np.full((n_queries, n_rows), np.inf, dtype=np.float32)
    for start in range(0, n_rows, _CHUNK_ROWS):
        stop = min(start + _CHUNK_ROWS, n_rows)
        rows = np.flatnonzero(allowed[start:stop]) + start
        if len(rows) == 0:
            continue
        t = idx[rows].astype(np.intp)
        a = val[rows].astype(np.float32)
        g = z[:, t]  # (n_queries, len(rows), r)
        d2 = sq_norm[rows][None, :] + np.einsum("qlr,qlr->ql", g, g - 2.0 * a[None])
        dists[:, rows] = np.sqrt(np.maximum(d2, 0.0))
    scores = dists - offset[None, :]
    return scores, dists
