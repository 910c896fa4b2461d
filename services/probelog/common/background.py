"""The background set of hubness calibration (paper Eq. 6): its names, descriptors and k.

A logit's calibration offset is the mean of its k smallest truncated distances to a background
set of concept descriptors. Indexing (the orchestrator) and recalibration
(``probelog recalibrate``) both build the background here and compute offsets with
:func:`calibration_offsets`, so a model indexed today and one recalibrated tomorrow against the
same names, encoder and k get the same offsets and the same background id.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from probelog.common.errors import FailedPrecondition, InvalidArgument
from probelog.common.ports import EncoderPort
from probelog.core import kernels
from probelog.core.descriptors import zscore
from probelog.core.distance import DEFAULT_CALIBRATION_K, LogitEntries

#: The 1,000 ImageNet-1k class names, shipped with the package (``probelog/data/imagenet1k.txt``).
IMAGENET1K = "imagenet1k"


def load_names(spec: str) -> list[str]:
    """Background concept names: a file with one name per line (``#`` starts a comment line),
    or ``imagenet1k``.

    Raises
    ------
    FailedPrecondition
        If the file does not exist or names nothing.
    """
    if spec == IMAGENET1K:
        text = resources.files("probelog").joinpath("data", "imagenet1k.txt").read_text(encoding="utf-8")
    else:
        path = Path(spec)
        if not path.is_file():
            raise FailedPrecondition(f"background file {spec} does not exist")
        text = path.read_text(encoding="utf-8")
    names = [line.strip() for line in text.splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    if not names:
        raise FailedPrecondition(f"background file {spec} has no names")
    return names


def resolve_k(k: int | None, n_background: int) -> int:
    """The calibration k for a background of ``n_background`` concepts.

    None (or 0) means :data:`~probelog.core.distance.DEFAULT_CALIBRATION_K`, or the background
    size when that is smaller.

    Raises
    ------
    InvalidArgument
        If the background is empty or k is outside [1, n_background].
    """
    if n_background < 1:
        raise InvalidArgument("the background set is empty")
    if not k:
        return min(DEFAULT_CALIBRATION_K, n_background)
    if not 1 <= k <= n_background:
        raise InvalidArgument(f"calibration k = {k} must be in [1, {n_background}] (the background size)")
    return int(k)


@dataclass(frozen=True)
class Background:
    """Z-scored background descriptors of one probe set and the id recorded with offsets.

    Attributes
    ----------
    background_id : str
        ``"bg-"`` and 16 hex digits of a hash of what the descriptors came from.
    z : ndarray of shape (n_background, n_probes), float32
        Z-scored concept descriptors (paper Eq. 3).
    """

    background_id: str
    z: npt.NDArray[np.float32]

    @property
    def size(self) -> int:
        return int(self.z.shape[0])


async def encode_background(
    encoder: EncoderPort,
    probe_set_id: str,
    names: Sequence[str],
    *,
    encoder_id: str = "",
    timeout: float | None = None,
) -> Background:
    """Background descriptors of concept names through the CLIP encoder (paper Eq. 3, z-scored).

    The id hashes the encoder, the probe set and the names, so every caller gives the same
    background the same id.
    """
    encoder_id = encoder_id or await encoder.encoder_id(timeout=timeout)
    raw = await encoder.compute_descriptors(probe_set_id, list(names), timeout=timeout)
    try:
        z = await asyncio.to_thread(zscore, raw, what="background concept")
    except ValueError as exc:
        raise FailedPrecondition(f"background set: {exc}") from None
    digest = hashlib.sha256(encoder_id.encode())
    digest.update(probe_set_id.encode())
    digest.update("\0".join(names).encode())
    return Background("bg-" + digest.hexdigest()[:16], z)


def background_from_array(probe_set_id: str, raw: npt.ArrayLike, n_probes: int) -> Background:
    """Background from precomputed raw descriptors.

    Parameters
    ----------
    raw : array-like of shape (n_background, n_probes)
        Raw concept descriptors for the probe set.
    """
    values = np.asarray(raw, dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != n_probes:
        raise InvalidArgument(
            f"background descriptors must have shape (n_background, {n_probes}) for probe set "
            f"{probe_set_id}, got {values.shape}"
        )
    try:
        z = zscore(values, what="background concept")
    except ValueError as exc:
        raise InvalidArgument(f"background set: {exc}") from None
    digest = hashlib.sha256(probe_set_id.encode())
    digest.update(np.ascontiguousarray(values).tobytes())
    return Background("bg-" + digest.hexdigest()[:16], z)


def calibration_offsets(entries: LogitEntries, background: Background, k: int) -> npt.NDArray[np.float32]:
    """Eq. 6 offsets of ``entries`` against ``background``: the production path (the batched
    kernels of :mod:`probelog.core.kernels`; :func:`probelog.core.distance.calibration_offsets`
    is the reference they are tested against).

    Returns
    -------
    ndarray of shape (n_logits,), float32
    """
    return kernels.calibration_offsets(entries.top_indices, entries.top_values, background.z, k)
