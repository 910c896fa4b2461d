"""Logit and concept descriptors over a probe set, and their normalisation.

A descriptor is a vector over the n probes of a probe set (paper Sec. 4.1):

- logit descriptor (Eq. 2): the raw response of one logit of one model to each probe;
- text descriptor (Eq. 3): the cosine similarity between the CLIP embedding of a concept's text
  and the CLIP embedding of each probe;
- image-set descriptor (App. A, Eq. 8): the inner product of the mean CLIP embedding of a few
  example images with each probe embedding.

Before two descriptors are compared, each is z-scored over all n probes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "image_set_descriptor",
    "normalize_embeddings",
    "text_descriptors",
    "validate_descriptors",
    "zscore",
]


def validate_descriptors(
    descriptors: npt.ArrayLike, *, what: str = "descriptor"
) -> npt.NDArray[np.floating[Any]]:
    """Check that every row carries information and return the rows as a 2-D float array.

    A row with a non-finite value or with zero standard deviation over the probes cannot be
    z-scored, so it is rejected rather than silently turned into NaN or zeros.

    Parameters
    ----------
    descriptors : array-like of shape (n_rows, n_probes) or (n_probes,)
    what : str
        Name used in error messages, e.g. ``"logit"`` or ``"query"``.

    Returns
    -------
    ndarray of shape (n_rows, n_probes), C-contiguous
        float64 when the input is float64 (or not floating), else float32; the input's
        precision is kept so that z-scores of large-offset, small-spread rows stay exact.

    Raises
    ------
    ValueError
        On a wrong shape, an empty descriptor, a non-finite value or a constant row; the
        message names the offending rows.
    """
    x = np.asarray(descriptors)
    dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.float64
    x = np.ascontiguousarray(x, dtype=dtype)
    if x.ndim == 1:
        x = x[None, :]
    if x.ndim != 2:
        raise ValueError(f"{what} descriptors must be 1-D or 2-D, got shape {x.shape}")
    if x.shape[1] < 2:
        raise ValueError(f"{what} descriptors need at least 2 probes, got {x.shape[1]}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(f"{what} {_rows(rows)} {_has(rows)} non-finite values (NaN or Inf)")
    # A row is constant exactly when its max equals its min; this avoids calling a row with a
    # tiny float32 rounding spread "informative" or a large-offset row "constant".
    const = x.max(axis=1) == x.min(axis=1)
    if const.any():
        rows = np.flatnonzero(const)
        raise ValueError(
            f"{what} {_rows(rows)} {_is(rows)} constant over all probes and carries no information"
        )
    return x


def zscore(descriptors: npt.ArrayLike, *, what: str = "descriptor") -> npt.NDArray[np.float32]:
    """Z-score each descriptor over all of its probes (paper Eq. 5, mu and sigma).

    Parameters
    ----------
    descriptors : array-like of shape (n_rows, n_probes)

    Returns
    -------
    Z : ndarray of shape (n_rows, n_probes), float32
        ``Z[i, p] = (x[i, p] - mean(x[i])) / std(x[i])`` with the population standard
        deviation (ddof=0), computed in float64.

    Raises
    ------
    ValueError
        See :func:`validate_descriptors`.
    """
    x = validate_descriptors(descriptors, what=what).astype(np.float64)
    mu = x.mean(axis=1, keepdims=True)
    sigma = x.std(axis=1, keepdims=True)
    return np.asarray((x - mu) / sigma, dtype=np.float32)


def normalize_embeddings(embeddings: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Scale each row to unit L2 norm.

    Parameters
    ----------
    embeddings : array-like of shape (n, dim)

    Returns
    -------
    ndarray of shape (n, dim), float32

    Raises
    ------
    ValueError
        If a row has zero or non-finite norm.
    """
    e = np.asarray(embeddings, dtype=np.float64)
    if e.ndim != 2:
        raise ValueError(f"embeddings must be 2-D, got shape {e.shape}")
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise ValueError("embeddings must have finite, non-zero norms")
    return np.asarray(e / norms, dtype=np.float32)


def text_descriptors(
    text_embeddings: npt.ArrayLike, probe_embeddings: npt.ArrayLike
) -> npt.NDArray[np.float32]:
    """Text descriptors: cosine similarity of each concept with each probe (paper Eq. 3).

    Parameters
    ----------
    text_embeddings : array-like of shape (n_concepts, dim)
        CLIP text embeddings of the concepts (through a prompt template).
    probe_embeddings : array-like of shape (n_probes, dim)
        CLIP image embeddings of the probes.

    Returns
    -------
    ndarray of shape (n_concepts, n_probes), float32
        ``[i, p] = cos(text_i, probe_p)``.
    """
    t = normalize_embeddings(text_embeddings)
    p = normalize_embeddings(probe_embeddings)
    _check_dims(t, p)
    return np.asarray(t @ p.T, dtype=np.float32)


def image_set_descriptor(
    image_embeddings: npt.ArrayLike, probe_embeddings: npt.ArrayLike
) -> npt.NDArray[np.float32]:
    """Image-set descriptor (paper App. A, Eq. 8).

    The concept is the mean of the (unit-norm) CLIP embeddings of the s query images,
    ``c_q = (1/s) sum_i I(q_i)``, and the descriptor is its inner product with each unit-norm
    probe embedding, ``[<x_1, c_q>, ..., <x_n, c_q>]``.

    Parameters
    ----------
    image_embeddings : array-like of shape (s, dim)
        CLIP image embeddings of the query images, s >= 1.
    probe_embeddings : array-like of shape (n_probes, dim)

    Returns
    -------
    ndarray of shape (n_probes,), float32
    """
    q = normalize_embeddings(image_embeddings)
    p = normalize_embeddings(probe_embeddings)
    if q.shape[0] == 0:
        raise ValueError("an image-set query needs at least one image")
    _check_dims(q, p)
    c_q = q.astype(np.float64).mean(axis=0)
    return np.asarray(p.astype(np.float64) @ c_q, dtype=np.float32)


def _check_dims(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"embedding dimensions differ: {a.shape[1]} vs {b.shape[1]}")


def _rows(rows: npt.NDArray[np.intp]) -> str:
    shown = ", ".join(str(int(r)) for r in rows[:10])
    more = f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    return f"row{'s' if len(rows) > 1 else ''} {shown}{more}"


def _has(rows: npt.NDArray[np.intp]) -> str:
    return "have" if len(rows) > 1 else "has"


def _is(rows: npt.NDArray[np.intp]) -> str:
    return "are" if len(rows) > 1 else "is"
