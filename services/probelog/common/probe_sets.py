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


#: Image files a probe set is built from (by suffix, case-insensitive).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
#: Side of a built probe set's square images: above the 224 x 224 input of most models, which
#: each model's preprocessing resizes to.
DEFAULT_BUILD_SIZE = 256


def find_images(source: str, *, count: int = 0, seed: int = 0) -> list[Path]:
    """The image files of a folder (recursively) or a glob pattern, in a deterministic order.

    Parameters
    ----------
    source : str
        A directory, or a glob pattern (``**`` recurses).
    count : int
        0 keeps every file; else a sample of ``count`` files drawn with ``seed``.

    Returns
    -------
    list of Path
        Sorted by path (a sample keeps that order), so the same files give the same probe set.
    """
    import glob

    root = Path(source)
    if root.is_dir():
        paths = [p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    elif glob.has_magic(source):
        paths = [Path(p) for p in glob.glob(source, recursive=True)]
        paths = [p for p in paths if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    else:
        raise ValueError(f"{source} is neither a directory nor a glob pattern")
    paths.sort()
    if not paths:
        raise ValueError(f"no JPEG, PNG or WebP files in {source}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    if count and count < len(paths):
        chosen = np.random.default_rng(seed).choice(len(paths), size=count, replace=False)
        paths = [paths[i] for i in sorted(chosen.tolist())]
    return paths


def read_probe_image(path: Path, size: int) -> npt.NDArray[np.uint8]:
    """One image as (size, size, 3) RGB: its shorter side resized to ``size`` (bilinear), then
    the centre cropped. Raises OSError or ValueError for a file PIL cannot decode."""
    from PIL import Image

    with Image.open(path) as opened:
        image = opened.convert("RGB")
    w, h = image.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    image = image.resize((new_w, new_h), Image.Resampling.BILINEAR)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)
