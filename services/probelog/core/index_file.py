"""One file of named arrays that can be memory-mapped back: the on-disk form of an index.

Layout: the 8 bytes ``PROBELOG``, the length of a JSON header as a little-endian uint64, the
header (``{"meta": {...}, "arrays": {name: {"dtype", "shape", "offset"}}}``), then each array's
bytes in C order at a 64-byte aligned offset. Data types are written with their byte order
(``dtype.str``), so a file reads the same on any machine.

Reading maps each array copy-on-write (:class:`numpy.memmap`; the file is never written): opening costs the same whatever the
file's size, and the operating system pages rows in as queries touch them (and may drop them
again under memory pressure: they are clean pages of a file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.typing as npt

__all__ = ["read", "write"]

_MAGIC = b"PROBELOG"
_ALIGN = 64


def write(f: BinaryIO, meta: dict[str, Any], arrays: dict[str, npt.NDArray[Any]]) -> None:
    """Write ``arrays`` and ``meta`` (JSON-serialisable) to the binary file ``f``, from its
    start. For a crash-safe file, write through ``probelog.common.files.atomic_write``."""
    layout: dict[str, dict[str, Any]] = {}
    offset = 0
    for name, arr in arrays.items():
        offset = -(-offset // _ALIGN) * _ALIGN
        layout[name] = {"dtype": arr.dtype.str, "shape": list(arr.shape), "offset": offset}
        offset += arr.nbytes
    # Offsets count from the end of the (padded) header, so the header can be sized last.
    header = json.dumps({"meta": meta, "arrays": layout}).encode()
    data_start = -(-(len(_MAGIC) + 8 + len(header)) // _ALIGN) * _ALIGN
    f.write(_MAGIC)
    f.write(len(header).to_bytes(8, "little"))
    f.write(header)
    written = len(_MAGIC) + 8 + len(header)
    for name, arr in arrays.items():
        pad = data_start + layout[name]["offset"] - written
        f.write(b"\0" * pad)
        if arr.size:
            f.write(np.ascontiguousarray(arr).data.cast("B"))
        written += pad + arr.nbytes


def read(path: str | Path) -> tuple[dict[str, Any], dict[str, npt.NDArray[Any]]]:
    """The meta and the arrays of a file :func:`write` wrote, each array memory-mapped
    (copy-on-write: writes would stay private to the process). Raises ValueError for a file of another kind, a damaged header or a truncated
    file."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        if f.read(len(_MAGIC)) != _MAGIC:
            raise ValueError(f"{path}: not an index file (no {_MAGIC.decode()} signature)")
        n = int.from_bytes(f.read(8), "little")
        if n > size:
            raise ValueError(f"{path}: truncated index file (header)")
        try:
            header = json.loads(f.read(n))
            meta, layout = header["meta"], header["arrays"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: damaged index file header ({exc})") from None
    data_start = -(-(len(_MAGIC) + 8 + n) // _ALIGN) * _ALIGN
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, spec in layout.items():
        dtype, shape = np.dtype(spec["dtype"]), tuple(int(d) for d in spec["shape"])
        start = data_start + int(spec["offset"])
        if start + dtype.itemsize * int(np.prod(shape)) > size:
            raise ValueError(f"{path}: truncated index file (array {name})")
        if 0 in shape:
            arrays[name] = np.empty(shape, dtype=dtype)  # mmap cannot map zero bytes
        else:
            # Copy-on-write ("c"), not read-only: the compiled kernels are typed for writable
            # arrays, and the index never writes into mapped rows (it grows into new arrays).
            arrays[name] = np.memmap(path, dtype=dtype, mode="c", offset=start, shape=shape)
    return meta, arrays
