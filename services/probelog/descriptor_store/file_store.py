"""The on-disk descriptor store of embedded mode: one directory, one writer process.

Layout under ``root``::

    probe_sets/<probe_set_id>.npz    images (uint8, n x h x w x 3) and name
    probe_sets/<probe_set_id>.pb     ProbeSetInfo
    models/<probe_set_id>/<quoted model id>.pb   ModelInfo + LogitDescriptors, one message
    changes.log                      one line per change: "<sequence> <PUT|DELETE> <ps> <quoted id>"

Every file is written to a temporary name, fsynced and renamed into place, so a reader sees a
whole model or none of it. A model file is written before its change line, the two as one unit
that a cancelled caller cannot cut (``_commit``, shielded): after a crash
between the two, the model is there for any follower that (re)loads the current state.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import os
import urllib.parse
from collections.abc import AsyncGenerator, Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from probelog.common.errors import InvalidArgument, NotFound, Unavailable
from probelog.common.files import atomic_write_bytes
from probelog.common.ids import MAX_PAGE_BYTES, check_model_id, check_probe_set_id
from probelog.common.observe import store_read, store_write
from probelog.common.ports import Change, ChangeKind, StoredModel
from probelog.common.probe_sets import load_probe_set, probe_set_id, save_probe_set
from probelog.common.shield import run_to_completion
from probelog.core.distance import LogitEntries
from probelog.descriptor_store import records
from probelog.v1 import types_pb2

logger = logging.getLogger(__name__)

_KINDS = {"PUT": ChangeKind.PUT, "DELETE": ChangeKind.DELETE}


#: File names longer than this (bytes) are replaced by a hash: most file systems stop at 255.
_MAX_NAME_BYTES = 200


def _check_partitions(partitions: Sequence[int]) -> None:
    """The file store's feed and listing are one partition, 0."""
    if set(partitions) - {0}:
        raise InvalidArgument(f"the file store has one partition, 0, not {sorted(set(partitions) - {0})}")


def _quote(model_id: str) -> str:
    """The file name of a model: its quoted id, or ``~<sha256 of the id>`` when that is too
    long (any id that passes :func:`check_model_id` has a file name)."""
    name = urllib.parse.quote(model_id, safe="") + ".pb"
    if len(name.encode()) <= _MAX_NAME_BYTES:
        return name
    return "~" + hashlib.sha256(model_id.encode()).hexdigest() + ".pb"


class FileDescriptorStore:
    """A :class:`~probelog.common.ports.DescriptorStore` in a local directory."""

    backend = "file"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        #: What messages name.
        self.endpoint = str(self.root)
        self._lock = asyncio.Lock()
        self._changed = asyncio.Condition()
        self._sequence: int | None = None
        self._probe_sets: dict[str, types_pb2.ProbeSetInfo] = {}

    async def open(self) -> None:
        """Create the directory and read the current sequence. Fails fast if not writable."""
        await asyncio.to_thread(self._open_sync)

    def _open_sync(self) -> None:
        (self.root / "models").mkdir(parents=True, exist_ok=True)
        (self.root / "probe_sets").mkdir(parents=True, exist_ok=True)
        probe = self.root / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
        self._sequence = self._read_last_sequence()

    def _read_last_sequence(self) -> int:
        log = self.root / "changes.log"
        if not log.exists():
            return 0
        last = 0
        with log.open("r", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) == 4 and parts[0].isdigit():
                    last = int(parts[0])
        return last

    async def ping(self, timeout: float) -> None:
        """The store's directory is still there and writable (the health watcher's check)."""
        models = self.root / "models"
        if not await asyncio.to_thread(lambda: models.is_dir() and os.access(models, os.W_OK)):
            raise Unavailable(f"the store directory {self.root} is missing or not writable")

    async def close(self) -> None:
        return None

    # ------------------------------------------------------------------ probe sets

    @store_write
    async def put_probe_set(
        self, name: str, images: npt.NDArray[np.uint8], *, timeout: float | None = None
    ) -> tuple[types_pb2.ProbeSetInfo, bool]:
        try:
            ps_id = probe_set_id(images)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        async with self._lock:
            existing = await self._probe_set_info(ps_id)
            if existing is not None:
                return existing, False
            info = types_pb2.ProbeSetInfo(
                probe_set_id=ps_id,
                name=name or ps_id,
                n_probes=images.shape[0],
                height=images.shape[1],
                width=images.shape[2],
                channels=images.shape[3],
            )
            info.created_at.FromDatetime(dt.datetime.now(dt.UTC))
            base = self.root / "probe_sets" / ps_id
            await asyncio.to_thread(save_probe_set, base.with_suffix(".npz"), info.name, images)
            # The info file is the commit point: a probe set without it does not exist.
            await asyncio.to_thread(atomic_write_bytes, base.with_suffix(".pb"), info.SerializeToString())
            self._probe_sets[ps_id] = info
            logger.info("registered probe set %s (%s, %d probes)", ps_id, info.name, info.n_probes)
            return info, True

    async def _probe_set_info(self, ps_id: str) -> types_pb2.ProbeSetInfo | None:
        if ps_id in self._probe_sets:
            return self._probe_sets[ps_id]
        path = self.root / "probe_sets" / f"{ps_id}.pb"
        if not path.exists():
            return None
        info = types_pb2.ProbeSetInfo.FromString(await asyncio.to_thread(path.read_bytes))
        self._probe_sets[ps_id] = info
        return info

    async def probe_set_info(
        self, ps_id: str, *, timeout: float | None = None
    ) -> types_pb2.ProbeSetInfo:
        check_probe_set_id(ps_id)
        info = await self._probe_set_info(ps_id)
        if info is None:
            raise NotFound(f"probe set {ps_id} is not registered")
        return info

    @store_read
    async def get_probe_set(
        self, probe_set_id: str, *, timeout: float | None = None
    ) -> tuple[types_pb2.ProbeSetInfo, npt.NDArray[np.uint8]]:
        info = await self.probe_set_info(probe_set_id)
        path = self.root / "probe_sets" / f"{probe_set_id}.npz"
        probe_set = await asyncio.to_thread(load_probe_set, path)
        return info, probe_set.images

    @store_read
    async def list_probe_sets(self, *, timeout: float | None = None) -> list[types_pb2.ProbeSetInfo]:
        paths = sorted((self.root / "probe_sets").glob("ps-*.pb"))
        infos = []
        for path in paths:
            info = await self._probe_set_info(path.stem)
            if info is not None:
                infos.append(info)
        return infos

    # ------------------------------------------------------------------ models

    def _model_path(self, ps_id: str, model_id: str) -> Path:
        return self.root / "models" / ps_id / _quote(model_id)

    @store_write
    async def put_model(
        self,
        info: types_pb2.ModelInfo,
        entries: LogitEntries,
        offsets: npt.NDArray[np.float32],
        *,
        timeout: float | None = None,
    ) -> int:
        probe_set = await self.probe_set_info(info.probe_set_id)
        records.validate_model(info, entries, offsets, probe_set)
        data = records.encode_record(info, entries, offsets)
        path = self._model_path(info.probe_set_id, info.model_id)

        def write() -> None:
            atomic_write_bytes(path, data)

        return await self._commit(write, "PUT", info.probe_set_id, info.model_id)

    @store_read
    async def get_model(
        self,
        probe_set_id: str,
        model_id: str,
        *,
        include_descriptors: bool = False,
        timeout: float | None = None,
    ) -> StoredModel:
        probe_set = await self.probe_set_info(probe_set_id)
        check_model_id(model_id)
        return await self._read_model(probe_set, model_id, include_descriptors)

    async def _read_model(
        self, probe_set: types_pb2.ProbeSetInfo, model_id: str, include_descriptors: bool
    ) -> StoredModel:
        """A model's record (a listing reads them through here: one timed read, not one each)."""
        path = self._model_path(probe_set.probe_set_id, model_id)
        try:
            data = await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            raise NotFound(f"model {model_id!r} is not indexed for probe set {probe_set.probe_set_id}") from None
        return records.decode_record(data, probe_set.n_probes, include_descriptors)

    @store_read
    async def list_models(
        self,
        probe_set_id: str,
        *,
        page_size: int = 100,
        page_token: str = "",
        partitions: Sequence[int] = (),
        timeout: float | None = None,
    ) -> tuple[list[types_pb2.ModelInfo], str]:
        _check_partitions(partitions)
        probe_set = await self.probe_set_info(probe_set_id)
        page_size = page_size or 100
        folder = self.root / "models" / probe_set_id
        names = sorted(await asyncio.to_thread(self._model_ids, folder, probe_set.n_probes))
        # The page token is the last model id of the previous page: stable under inserts.
        start = 0
        if page_token:
            start = next((i for i, n in enumerate(names) if n > page_token), len(names))
        page = names[start : start + page_size]
        infos: list[types_pb2.ModelInfo | None] = []
        size = 0
        for model_id in page:
            try:
                stored = await self._read_model(probe_set, model_id, False)
            except NotFound:
                infos.append(None)  # deleted since the listing
                continue
            infos.append(stored.info)
            size += stored.info.ByteSize()
            if size > MAX_PAGE_BYTES:
                break  # listing_page ends the page here
        return records.listing_page(page, infos, more=start + len(infos) < len(names))

    @staticmethod
    def _model_ids(folder: Path, n_probes: int) -> list[str]:
        """The ids of the models in ``folder``: from the file names, or, for a hashed name,
        from the record itself."""
        if not folder.exists():
            return []
        ids = []
        for path in folder.glob("*.pb"):
            if path.name.startswith("~"):
                try:
                    ids.append(records.decode_record(path.read_bytes(), n_probes, False).info.model_id)
                except FileNotFoundError:
                    continue
            else:
                ids.append(urllib.parse.unquote(path.name.removesuffix(".pb")))
        return ids

    @store_write
    async def delete_model(
        self, probe_set_id: str, model_id: str, *, timeout: float | None = None
    ) -> int:
        await self.probe_set_info(probe_set_id)
        check_model_id(model_id)
        path = self._model_path(probe_set_id, model_id)

        def remove() -> None:
            try:
                path.unlink()
            except FileNotFoundError:
                raise NotFound(f"model {model_id!r} is not indexed for probe set {probe_set_id}") from None

        return await self._commit(remove, "DELETE", probe_set_id, model_id)

    # ------------------------------------------------------------------ changes

    async def _commit(self, change: Callable[[], None], kind: str, ps_id: str, model_id: str) -> int:
        """Apply ``change`` to the model file and append its change line, as one unit that a
        cancelled or timed-out caller cannot cut in two (see :mod:`probelog.common.shield`).

        Returns the change's sequence: one more than the last, assigned only once the line is
        on disk, so sequences increase strictly with no duplicates.
        """
        if self._sequence is None:
            raise RuntimeError("FileDescriptorStore.open() was not awaited")

        def apply() -> int:
            change()  # raises (NotFound) before anything is written
            sequence = (self._sequence or 0) + 1
            line = f"{sequence} {kind} {ps_id} {urllib.parse.quote(model_id, safe='')}\n"
            with (self.root / "changes.log").open("a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self._sequence = sequence
            return sequence

        async def commit() -> int:
            async with self._lock:
                sequence = await asyncio.to_thread(apply)
            async with self._changed:
                self._changed.notify_all()
            return sequence

        return await run_to_completion(commit())

    async def current_sequences(self, *, timeout: float | None = None) -> list[int]:
        """One partition: one process writes the store, in one order."""
        return [self._sequence or 0]

    def _read_changes(self, after: int) -> list[Change]:
        log = self.root / "changes.log"
        if not log.exists():
            return []
        out = []
        with log.open("r", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) != 4 or not parts[0].isdigit():
                    continue
                sequence = int(parts[0])
                if sequence > after and parts[1] in _KINDS:
                    out.append(
                        Change(sequence, _KINDS[parts[1]], parts[2], urllib.parse.unquote(parts[3]))
                    )
        return out

    async def watch(self, after: Sequence[int] = (), partitions: Sequence[int] = ()) -> AsyncGenerator[Change, None]:
        _check_partitions(partitions)
        if len(after) > 1:
            raise InvalidArgument(f"the file store's change feed has one partition, got {len(after)} positions")
        last = after[0] if after else 0
        while True:
            async with self._changed:
                if (self._sequence or 0) <= last:
                    await self._changed.wait()
            for change in await asyncio.to_thread(self._read_changes, last):
                last = change.sequence
                yield change
