"""Synthetic hubs for ranker tests: indexes built straight from random descriptors."""

from __future__ import annotations

import numpy as np

from probelog.core import SparseLogitIndex, calibration_offsets, logit_entries, zscore

N_PROBES, R, K = 120, 10, 3
PROBE_SET = "ps-00000000000000aa"


def hub(seed: int = 0, n_models: int = 40) -> dict[str, tuple]:
    """model id -> (entries, offsets); a few models share descriptors (exact score ties)."""
    rng = np.random.default_rng(seed)
    background = zscore(rng.normal(size=(12, N_PROBES)))
    models = {}
    for m in range(n_models):
        entries = logit_entries(rng.normal(size=(int(rng.integers(1, 6)), N_PROBES)), R)
        models[f"model-{m:03d}"] = (entries, calibration_offsets(entries, background, K))
    for twin in range(3):
        models[f"twin-{twin}"] = models[f"model-{twin:03d}"]
    return models


def index_of(models: dict[str, tuple], owned=lambda model_id: True) -> SparseLogitIndex:
    index = SparseLogitIndex(N_PROBES, R)
    for model_id, (entries, offsets) in models.items():
        if owned(model_id):
            index.add(model_id, entries, offsets)
    return index


def queries(seed: int, n: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, N_PROBES)).astype(np.float32)
