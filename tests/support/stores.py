"""Probe sets and models to write into a descriptor store in tests."""

from __future__ import annotations

import numpy as np

from probelog.core.distance import logit_entries
from probelog.v1 import types_pb2

N_PROBES = 120
R = 10


def images(seed: int = 0, n: int = N_PROBES, size: int = 8) -> np.ndarray:
    """A random probe set: uint8 of shape (n, size, size, 3)."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def model(ps_id: str, model_id: str, n_logits: int = 3, seed: int = 0, n_probes: int = N_PROBES):
    """(info, entries, offsets) of a random model, as ``put_model`` takes them."""
    rng = np.random.default_rng(seed)
    entries = logit_entries(rng.normal(size=(n_logits, n_probes)).astype(np.float32), R)
    offsets = rng.normal(size=n_logits).astype(np.float32)
    info = types_pb2.ModelInfo(model_id=model_id, probe_set_id=ps_id, n_logits=n_logits, r=R)
    return info, entries, offsets
