"""Why a logit matched: the probes behind a truncated distance (paper Eq. 5).

The truncated distance of logit l to concept c sums one term per probe of the logit's top r,
``(a_l[j] - z_c[t_l[j]])**2``. The probes with the smallest terms are those where the logit and
the query agree most: they are the evidence shown next to a hit. Everything here reads the
stored entries of one logit (its top-r probe indices and z-scored values); nothing is recomputed
from the model.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["match_evidence", "top_probes"]


def _check_row(top_indices: npt.ArrayLike, top_values: npt.ArrayLike) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    t = np.asarray(top_indices, dtype=np.int64)
    a = np.asarray(top_values, dtype=np.float32)
    if t.ndim != 1 or t.shape != a.shape:
        raise ValueError(f"need top indices and values of one shape (r,), got {t.shape} and {a.shape}")
    return t, a


def top_probes(
    top_indices: npt.ArrayLike, top_values: npt.ArrayLike, n: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """A logit's ``n`` strongest probes: what it responds to most, with no query.

    Parameters
    ----------
    top_indices : array-like of shape (r,), int
        The logit's top-r probes, in descending raw response (as stored).
    top_values : array-like of shape (r,), float
        Its z-scored responses there.
    n : int
        Probes wanted, at least 1; more than r gives r.

    Returns
    -------
    I : ndarray of shape (min(n, r),), int64
        Probe indices, strongest response first.
    V : ndarray of shape (min(n, r),), float32
        ``V[j]`` is the logit's z-scored response to probe ``I[j]``.
    """
    t, a = _check_row(top_indices, top_values)
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    # The stored order is already by raw response; a stable sort keeps it for equal values.
    order = np.argsort(-a, kind="stable")[:n]
    return t[order], a[order]


def match_evidence(
    top_indices: npt.ArrayLike, top_values: npt.ArrayLike, query_z: npt.ArrayLike, n: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The ``n`` probes of a logit's top r that contribute least to its distance to a query.

    Parameters
    ----------
    top_indices : array-like of shape (r,), int
        The logit's top-r probes t_l.
    top_values : array-like of shape (r,), float
        Its z-scored responses a_l there.
    query_z : array-like of shape (n_probes,), float
        The query's z-scored descriptor z_c over all probes.
    n : int
        Probes wanted, at least 1; more than r gives r.

    Returns
    -------
    I : ndarray of shape (min(n, r),), int64
        Probe indices, ordered by the term ``(a_l[j] - z_c[t_l[j]])**2`` of Eq. 5, smallest
        (closest agreement) first; equal terms keep the stored order (stronger response first).
    A : ndarray of shape (min(n, r),), float32
        ``A[j]`` is the logit's z-scored response to probe ``I[j]``.
    Q : ndarray of shape (min(n, r),), float32
        ``Q[j]`` is the query's z-scored value at probe ``I[j]``.
    """
    t, a = _check_row(top_indices, top_values)
    z = np.asarray(query_z, dtype=np.float32)
    if z.ndim != 1 or (t.size and t.max() >= z.shape[0]):
        raise ValueError(f"the query descriptor must cover every probe index, got shape {z.shape}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    q = z[t]
    terms = (a.astype(np.float64) - q) ** 2
    order = np.argsort(terms, kind="stable")[:n]
    return t[order], a[order], q[order]
