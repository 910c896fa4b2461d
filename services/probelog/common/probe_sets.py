"""Probe sets: fixed, ordered image sets identified by a content hash.

A probe set is a uint8 array of shape (n_probes, height, width, 3), RGB, HWC. On disk it is an
``.npz`` file with the arrays ``images`` and ``name`` (a 0-d unicode array). Its id is
``"ps-"`` followed by the first 16 hex digits of the SHA-256 of its shape and bytes, so the same
images always get the same id wherever they are registered.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from probelog.common.files import atomic_write

ID_PREFIX = "ps-"


def probe_set_id(images: npt.NDArray[np.uint8]) -> str:
    """Content hash of a probe set.

    Parameters
    ----------
    images : ndarray of shape (n_probes, height, width, channels), uint8

    Returns
    -------
    str
        ``"ps-"`` and 16 hex digits; equal for equal shapes and pixels, in the same order.
    """
    images = validate_images(images)
    digest = hashlib.sha256()
    digest.update(("x".join(str(d) for d in images.shape)).encode())
    digest.update(b"\0")
    digest.update(images.tobytes())
    return ID_PREFIX + digest.hexdigest()[:16]


def validate_images(images: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Return ``images`` as a C-contiguous uint8 array of shape (n, h, w, 3), or raise ValueError."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise ValueError(f"probe images must be uint8, got {arr.dtype}")
    if arr.ndim != 4 or arr.shape[3] != 3:
        raise ValueError(f"probe images must have shape (n, height, width, 3), got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0 or arr.shape[2] == 0:
        raise ValueError(f"probe set is empty: shape {arr.shape}")
    return np.ascontiguousarray(arr)


@dataclass(frozen=True)
class ProbeSet:
    """An ordered probe set and its identity."""

    name: str
    images: npt.NDArray[np.uint8]

    @property
    def probe_set_id(self) -> str:
        return probe_set_id(self.images)

    @property
    def n_probes(self) -> int:
        return int(self.images.shape[0])


def save_probe_set(path: str | Path, name: str, images: npt.NDArray[np.uint8]) -> str:
    """Write a probe set file atomically (temp file + rename) and return its id."""
    images = validate_images(images)
    atomic_write(path, lambda f: np.savez(f, images=images, name=np.array(name)))
    return probe_set_id(images)


def load_probe_set(path: str | Path) -> ProbeSet:
    """Read a probe set file written by :func:`save_probe_set`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            images = validate_images(data["images"])
            name = str(data["name"]) if "name" in data.files else path.stem
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a probe set file ({exc})") from exc
    return ProbeSet(name=name, images=images)
