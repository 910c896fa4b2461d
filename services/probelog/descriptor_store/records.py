"""The stored form of a model: ModelInfo plus its compact LogitDescriptors, one message.

Both store backends keep a model as one serialized ``PutModelDescriptorsRequest`` (a single
value is what makes a write atomic), and validate what they are given the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from probelog.common import convert
from probelog.common.errors import InvalidArgument
from probelog.common.ids import MAX_PAGE_BYTES, check_model_id, check_probe_set_id
from probelog.common.ports import StoredModel
from probelog.core.distance import LogitEntries
from probelog.v1 import descriptor_store_pb2, types_pb2


def encode_descriptors(
    entries: LogitEntries, offsets: npt.NDArray[np.float32]
) -> types_pb2.LogitDescriptors:
    return types_pb2.LogitDescriptors(
        n_logits=entries.n_logits,
        r=entries.r,
        top_indices=convert.u32_bytes(entries.top_indices),
        top_values=convert.f32_bytes(entries.top_values),
        offsets=np.asarray(offsets, dtype=np.float32).tolist(),
    )


def decode_descriptors(
    descriptors: types_pb2.LogitDescriptors, n_probes: int
) -> tuple[LogitEntries, npt.NDArray[np.float32]]:
    """Arrays of a LogitDescriptors message; InvalidArgument when sizes disagree."""
    shape = (descriptors.n_logits, descriptors.r)
    indices = convert.u32_array(descriptors.top_indices, shape, what="top_indices")
    values = convert.f32_array(descriptors.top_values, shape, what="top_values")
    offsets = np.asarray(descriptors.offsets, dtype=np.float32)
    if offsets.shape != (descriptors.n_logits,):
        raise InvalidArgument(
            f"{len(offsets)} offsets for {descriptors.n_logits} logits"
        )
    try:
        entries = LogitEntries(indices, values, n_probes)
    except ValueError as exc:
        raise InvalidArgument(str(exc)) from exc
    return entries, offsets


def validate_model(
    info: types_pb2.ModelInfo, entries: LogitEntries, offsets: npt.NDArray[np.float32],
    probe_set: types_pb2.ProbeSetInfo,
) -> None:
    """Everything a store checks before a write; raises InvalidArgument."""
    check_model_id(info.model_id)
    check_probe_set_id(info.probe_set_id)
    if entries.n_probes != probe_set.n_probes:
        raise InvalidArgument(
            f"descriptors index {entries.n_probes} probes, probe set {probe_set.probe_set_id} "
            f"has {probe_set.n_probes}"
        )
    if info.n_logits != entries.n_logits or len(offsets) != entries.n_logits:
        raise InvalidArgument(
            f"model {info.model_id!r}: n_logits {info.n_logits} but {entries.n_logits} "
            f"descriptor rows and {len(offsets)} offsets"
        )
    if info.labels and len(info.labels) != info.n_logits:
        raise InvalidArgument(f"model {info.model_id!r}: {len(info.labels)} labels for {info.n_logits} logits")
    if not (np.isfinite(entries.top_values).all() and np.isfinite(offsets).all()):
        raise InvalidArgument(f"model {info.model_id!r}: non-finite descriptor values")


def encode_record(
    info: types_pb2.ModelInfo, entries: LogitEntries, offsets: npt.NDArray[np.float32]
) -> bytes:
    return descriptor_store_pb2.PutModelDescriptorsRequest(
        model=info, descriptors=encode_descriptors(entries, offsets)
    ).SerializeToString()


def decode_record(data: bytes, n_probes: int, include_descriptors: bool) -> StoredModel:
    record = descriptor_store_pb2.PutModelDescriptorsRequest.FromString(data)
    if not include_descriptors:
        return StoredModel(info=record.model)
    entries, offsets = decode_descriptors(record.descriptors, n_probes)
    return StoredModel(info=record.model, entries=entries, offsets=offsets)


def listing_page(
    ids: Sequence[str], infos: Sequence[types_pb2.ModelInfo | None], *, more: bool
) -> tuple[list[types_pb2.ModelInfo], str]:
    """One listing page from the ids read (in order) and their infos (None: deleted since).

    The page ends at the ids read or at :data:`MAX_PAGE_BYTES`, whichever comes first (always
    at least one model); the token is the last id the page covers, "" when nothing follows.
    """
    page: list[types_pb2.ModelInfo] = []
    size = 0
    for i, info in enumerate(infos):
        if info is None:
            continue
        size += info.ByteSize()
        if page and size > MAX_PAGE_BYTES:
            return page, ids[i - 1]
        page.append(info)
    return page, (ids[len(infos) - 1] if more and infos else "")
