"""Conversions between numpy arrays and the probelog.v1 wire types."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from probelog.common.errors import InvalidArgument
from probelog.v1 import types_pb2

_F32 = np.dtype("<f4")
_U32 = np.dtype("<u4")


def to_matrix(array: npt.ArrayLike) -> types_pb2.FloatMatrix:
    """A 2-D array as a FloatMatrix (little-endian float32, row-major)."""
    a = np.ascontiguousarray(array, dtype=_F32)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {a.shape}")
    return types_pb2.FloatMatrix(rows=a.shape[0], cols=a.shape[1], data=a.tobytes())


def from_matrix(matrix: types_pb2.FloatMatrix, *, what: str = "matrix") -> npt.NDArray[np.float32]:
    """A FloatMatrix as a (rows, cols) float32 array; InvalidArgument when its size is wrong."""
    expected = matrix.rows * matrix.cols * 4
    if len(matrix.data) != expected:
        raise InvalidArgument(
            f"{what}: {len(matrix.data)} bytes for a {matrix.rows} x {matrix.cols} float32 matrix "
            f"(expected {expected})"
        )
    return np.frombuffer(matrix.data, dtype=_F32).reshape(matrix.rows, matrix.cols).astype(np.float32)


def descriptors_to_array(
    descriptors: list[types_pb2.Descriptor] | tuple[types_pb2.Descriptor, ...], *, what: str
) -> npt.NDArray[np.float32]:
    """Repeated Descriptor messages as an (n, n_probes) float32 array."""
    if not descriptors:
        raise InvalidArgument(f"{what}: at least one descriptor is required")
    lengths = {len(d.values) for d in descriptors}
    if len(lengths) != 1:
        raise InvalidArgument(f"{what}: descriptors have different lengths {sorted(lengths)}")
    return np.array([np.asarray(d.values, dtype=np.float32) for d in descriptors], dtype=np.float32)


def u32_bytes(array: npt.ArrayLike) -> bytes:
    return np.ascontiguousarray(array, dtype=_U32).tobytes()


def f32_bytes(array: npt.ArrayLike) -> bytes:
    return np.ascontiguousarray(array, dtype=_F32).tobytes()


def u32_array(data: bytes, shape: tuple[int, ...], *, what: str) -> npt.NDArray[np.int64]:
    expected = int(np.prod(shape)) * 4
    if len(data) != expected:
        raise InvalidArgument(f"{what}: {len(data)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(data, dtype=_U32).reshape(shape).astype(np.int64)


def f32_array(data: bytes, shape: tuple[int, ...], *, what: str) -> npt.NDArray[np.float32]:
    expected = int(np.prod(shape)) * 4
    if len(data) != expected:
        raise InvalidArgument(f"{what}: {len(data)} bytes, expected {expected} for shape {shape}")
    return np.frombuffer(data, dtype=_F32).reshape(shape).astype(np.float32)
