"""The paper's math: pure numpy/scipy, no I/O, no grpc, redis, torch or tritonclient."""

from probelog.core.descriptors import (
    image_set_descriptor,
    normalize_embeddings,
    text_descriptors,
    validate_descriptors,
    zscore,
)
from probelog.core.distance import (
    DEFAULT_CALIBRATION_K,
    DEFAULT_R,
    LogitEntries,
    calibrated_distances,
    calibration_offsets,
    entry_distances,
    logit_entries,
    top_r_indices,
    truncated_distances,
)
from probelog.core.index import IndexHit, IndexStats, SparseLogitIndex

__all__ = [
    "DEFAULT_CALIBRATION_K",
    "DEFAULT_R",
    "IndexHit",
    "IndexStats",
    "LogitEntries",
    "SparseLogitIndex",
    "calibrated_distances",
    "calibration_offsets",
    "entry_distances",
    "image_set_descriptor",
    "logit_entries",
    "normalize_embeddings",
    "text_descriptors",
    "top_r_indices",
    "truncated_distances",
    "validate_descriptors",
    "zscore",
]
