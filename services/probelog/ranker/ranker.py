"""The ranker: an in-memory index per probe set, kept in step with the descriptor store.

At start it notes the store's current sequence number in each partition of its change feed,
loads every model it owns, then follows the partitions it owns from those numbers, so a model
indexed anywhere becomes searchable on its shard without a restart and a restarted ranker
serves the current state. Re-applying a change is
harmless (a put replaces, a delete of a missing model does nothing), which is what makes the
snapshot-then-follow hand-over safe.

A ranker can own a shard: shard ``i`` of ``N`` owns the partitions ``p`` of the store's feed
with ``p mod N == i`` (:func:`owned_partitions`), so with the Redis store's 16 partitions and 4
shards, shard 1 owns partitions 1, 5, 9 and 13. It lists, loads and follows those partitions only.
``N`` is at most the store's partition count (16 on Redis, 1 for the file store); a larger one
fails the start, as its shards ``16..N-1`` would own nothing. When ``N`` does not divide the
partition count, the first ``16 mod N`` shards own one partition more than the others.

With an index folder, the ranker writes its indexes there (one file per probe set, and a
manifest naming the position in each partition of the store's feed they reflect) after every
full load and when it stops; at the next start it memory-maps them instead of fetching every
model, then follows the change feed from those positions. Start-up then takes the same time
whatever the index's size (the rows are paged in by the first queries). Files of another shard
or storage type, or from a store that has since lost its data (a partition behind theirs) or is
partitioned otherwise, are ignored and rewritten.

Concurrent Rank calls are scored together (:mod:`probelog.ranker.batcher`) when
``batch_window_ms`` > 0. The scan kernels are compiled (or loaded from numba's cache) at start,
not at the first request.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from probelog.common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ProbeLogError,
)
from probelog.common.files import atomic_write, atomic_write_bytes
from probelog.common.ids import MAX_RANK_QUERIES, hash_range_of
from probelog.common.ports import Change, ChangeKind, DescriptorStore, RankResult, iter_models
from probelog.core import kernels
from probelog.core.descriptors import zscore
from probelog.core.index import IndexHit, SparseLogitIndex
from probelog.ranker.batcher import DynamicBatcher
from probelog.v1 import types_pb2

logger = logging.getLogger(__name__)

#: How long stop() waits for the change-feed follower to end.
_STOP_TIMEOUT_S = 2.0
#: Models whose descriptors are fetched from the store at once while loading.
_LOAD_CONCURRENCY = 16
#: Dead rows tolerated before compaction (beyond a quarter of the index).
_COMPACT_MIN_ROWS = 4096
#: Queries z-scored in the event loop; larger requests go to a worker thread.
_INLINE_ZSCORE_VALUES = 1 << 16
#: The file in an index folder naming the index files and the feed positions they reflect.
MANIFEST = "ranker-index.json"
#: Format 3: shards own partitions of the feed (format 2: hash ranges of model ids).
_MANIFEST_FORMAT = "probelog-ranker-index/3"


def owned_partitions(shard_index: int, shard_count: int, n_partitions: int) -> list[int]:
    """The partitions of the store's feed that shard ``shard_index`` of ``shard_count`` owns:
    those with ``partition mod shard_count == shard_index``."""
    return list(range(shard_index, n_partitions, shard_count))


def shard_of(model_id: str, shard_count: int, n_partitions: int) -> int:
    """The shard that owns ``model_id``: the owner of its partition among ``n_partitions``."""
    return hash_range_of(model_id, n_partitions) % shard_count


def _check_writable(folder: Path) -> None:
    """Fail fast at start-up when the index folder cannot be written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise FailedPrecondition(f"index folder {folder} is not writable: {exc.strerror or exc}") from None


def to_hits(hits: list[IndexHit]) -> list[types_pb2.Hit]:
    return [
        types_pb2.Hit(
            model_id=h.model_id,
            logit_index=h.logit_index,
            label=h.label,
            score=h.score,
            distance=h.distance,
            rank=rank,
        )
        for rank, h in enumerate(hits, start=1)
    ]


class Ranker:
    """Ranks indexed logits; implements :class:`~probelog.common.ports.RankerPort`.

    Parameters
    ----------
    store : DescriptorStore or None
        Where models come from; None for a ranker over given indexes (:meth:`from_indexes`).
    shard_index, shard_count : int
        This ranker owns the partitions ``owned_partitions(shard_index, shard_count, n)`` of
        the store's ``n`` and their models; ``shard_count`` is at most ``n``.
    values_dtype : numpy dtype
        Storage of the z-scored values in the index (float16 halves the bytes per query).
    batch_window_ms : float
        Concurrent calls arriving within this window are scored in one pass; 0 disables.
    max_batch_queries : int
        Most queries in one batched pass.
    index_dir : str or Path, optional
        Folder for the index files that let a restart map the indexes instead of reloading them.
    """

    def __init__(
        self,
        store: DescriptorStore | None,
        *,
        shard_index: int = 0,
        shard_count: int = 1,
        values_dtype: npt.DTypeLike = np.float16,
        batch_window_ms: float = 2.0,
        max_batch_queries: int = 64,
        index_dir: str | Path | None = None,
    ) -> None:
        if not 0 <= shard_index < shard_count:
            raise ValueError(f"shard index {shard_index} is outside [0, {shard_count})")
        if batch_window_ms < 0:
            raise ValueError(f"batch_window_ms must be >= 0, got {batch_window_ms}")
        self._store = store
        self.shard_index = shard_index
        self.shard_count = shard_count
        self.values_dtype = np.dtype(values_dtype)
        self.indexes: dict[str, SparseLogitIndex] = {}
        self.index_dir = Path(index_dir) if index_dir else None
        self._applied: list[int] = []  # per partition of the store's change feed; 0 where not owned
        self._partitions: list[int] = []  # the partitions this ranker owns, known once started
        self._n_partitions = 0  # the store's
        self._saved: list[int] | None = None  # the positions the index files reflect
        self._applied_changed = asyncio.Condition()
        self._follower: asyncio.Task[None] | None = None
        self._loaded = asyncio.Event()
        self.batcher = (
            DynamicBatcher(batch_window_ms / 1000.0, max_batch_queries=max_batch_queries)
            if batch_window_ms > 0
            else None
        )

    @classmethod
    def from_indexes(
        cls, indexes: dict[str, SparseLogitIndex], *, batch_window_ms: float = 2.0,
        max_batch_queries: int = 64,
    ) -> Ranker:
        """A ranker serving ready-made indexes, with no store behind it (benchmarks, tools)."""
        ranker = cls(None, batch_window_ms=batch_window_ms, max_batch_queries=max_batch_queries)
        ranker.indexes = dict(indexes)
        ranker._loaded.set()
        return ranker

    def owns(self, model_id: str) -> bool:
        if self.shard_count == 1:
            return True
        if not self._partitions:
            raise FailedPrecondition("a sharded ranker knows its partitions once started")
        return shard_of(model_id, self.shard_count, self._n_partitions) == self.shard_index

    @property
    def partitions(self) -> list[int]:
        """The partitions of the store's feed this ranker owns (empty before start)."""
        return list(self._partitions)

    async def _own_partitions(self) -> None:
        """Learn the store's partition count and the partitions this shard owns."""
        n_partitions = len(await self.store.current_sequences())
        if self.shard_count > n_partitions:
            raise FailedPrecondition(
                f"shard count {self.shard_count} is more than the store's {n_partitions} partitions "
                f"(shards {n_partitions}..{self.shard_count - 1} would own nothing): "
                f"use at most {n_partitions} ranker shards"
            )
        self._n_partitions = n_partitions
        self._partitions = owned_partitions(self.shard_index, self.shard_count, n_partitions)

    def _owned_positions(self, sequences: Sequence[int]) -> list[int]:
        """``sequences`` in the partitions this ranker owns, 0 in the others (a sharded
        ranker's position in a partition it does not follow means nothing)."""
        return [s if p in self._partitions else 0 for p, s in enumerate(sequences)]

    # ------------------------------------------------------------------ keeping up with the store

    async def start(self) -> None:
        """Compile the scan kernels, load the current state, then follow changes."""
        if self._store is None:
            raise FailedPrecondition("this ranker has no descriptor store to load from")
        await self.warm_up()
        await self._own_partitions()
        if self.index_dir is not None:
            _check_writable(self.index_dir)
        if not await self._load_files():
            await self._load_all()
        if any(i.index_dtype != np.uint16 for i in self.indexes.values()):
            await self.warm_up()
        self._follower = asyncio.create_task(self._follow(), name="ranker-follow")

    async def warm_up(self) -> None:
        """Compile the kernels for this ranker's value storage (or load them from the cache)."""
        started = time.perf_counter()
        index_dtypes = (np.dtype(np.uint16), *(i.index_dtype for i in self.indexes.values()))
        value_dtypes = (self.values_dtype, *(i.values_dtype for i in self.indexes.values()))
        compiled = await asyncio.to_thread(
            kernels.warm_up, tuple(dict.fromkeys(index_dtypes)), tuple(dict.fromkeys(value_dtypes))
        )
        if compiled:
            logger.info("scan kernels ready in %.1f s", time.perf_counter() - started)
        else:
            logger.warning("numba is not installed: ranking with the numpy kernels (pip install probelog[fast])")

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            # A store client blocked in a read may not see the cancellation until its
            # connection closes (the caller closes the store next): don't wait forever.
            done, _ = await asyncio.wait({self._follower}, timeout=_STOP_TIMEOUT_S)
            if not done:
                logger.warning("the change feed did not stop within %.0f s; leaving it", _STOP_TIMEOUT_S)
        await self.save_index_files()
        if self.batcher is not None:
            await self.batcher.close()
            stats = self.batcher.stats()
            if stats.batches:
                logger.info(
                    "batched %d calls (%d queries) into %d batches, %d index passes (%.1f queries per pass)",
                    stats.calls, stats.queries, stats.batches, stats.passes, stats.queries / stats.passes,
                )

    @property
    def store(self) -> DescriptorStore:
        if self._store is None:
            raise FailedPrecondition("this ranker has no descriptor store")
        return self._store

    async def _load_all(self, *, reset: bool = False) -> None:
        """Load every owned model. With ``reset`` (the store lost or trimmed its history), the
        applied sequence becomes the store's current one even if that is lower, so callers
        waiting for a new change are not told it is searchable before it is."""
        store = self.store
        sequences = self._owned_positions(await store.current_sequences())
        # Only this shard's partitions are listed (all of them when unsharded).
        listed = self._partitions if self.shard_count > 1 else []
        indexes: dict[str, SparseLogitIndex] = {}
        n_models = 0
        slots = asyncio.Semaphore(_LOAD_CONCURRENCY)

        async def load(probe_set_id: str, model_id: str) -> None:
            async with slots:
                await self._load_model(probe_set_id, model_id, indexes)

        for probe_set in await store.list_probe_sets():
            async for infos in iter_models(store, probe_set.probe_set_id, partitions=listed):
                owned = [info.model_id for info in infos if self.owns(info.model_id)]
                await asyncio.gather(*(load(probe_set.probe_set_id, m) for m in owned))
                n_models += len(owned)
        self.indexes = indexes
        async with self._applied_changed:
            # With reset, lower positions win: the store lost or trimmed its history.
            self._applied = sequences if reset or not self._applied else list(map(max, self._applied, sequences))
            self._applied_changed.notify_all()
        self._loaded.set()
        logger.info(
            "ranker shard %d/%d loaded %d models (%d logits) at sequence %d (partitions %s of %d)",
            self.shard_index, self.shard_count, n_models,
            sum(i.stats().n_logits for i in indexes.values()), sum(sequences), self._partitions, len(sequences),
        )
        await self.save_index_files()

    # ------------------------------------------------------------------ index files

    def _manifest_fields(self) -> dict[str, object]:
        return {
            "format": _MANIFEST_FORMAT,
            "shard_index": self.shard_index,
            "shard_count": self.shard_count,
            "values_dtype": self.values_dtype.name,
        }

    async def _load_files(self) -> bool:
        """Map the index files of an earlier run when they fit this ranker and its store;
        returns whether they were loaded (if not, the caller loads from the store)."""
        if self.index_dir is None:
            return False
        try:
            manifest = json.loads((self.index_dir / MANIFEST).read_text(encoding="utf-8"))
            fits = all(manifest.get(k) == v for k, v in self._manifest_fields().items())
            sequences = [int(v) for v in manifest["sequences"]]
            files = {str(ps): self.index_dir / str(name) for ps, name in manifest["probe_sets"].items()}
        except FileNotFoundError:
            return False
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            logger.warning("ignoring the index files in %s: unreadable manifest (%s)", self.index_dir, exc)
            return False
        if not fits:
            logger.info("the index files in %s are of another shard or storage type; reloading", self.index_dir)
            return False
        current = self._owned_positions(await self.store.current_sequences())
        if len(current) != len(sequences) or any(c < f for c, f in zip(current, sequences, strict=True)):
            logger.warning(
                "the store is at sequences %s, behind the index files (%s) or partitioned otherwise: "
                "it lost its data; reloading", current, sequences,
            )
            return False
        started = time.perf_counter()
        try:
            indexes = {ps: await asyncio.to_thread(SparseLogitIndex.load, path) for ps, path in files.items()}
        except (OSError, ValueError) as exc:
            logger.warning("ignoring the index files in %s: %s", self.index_dir, exc)
            return False
        self.indexes = indexes
        self._saved = list(sequences)
        async with self._applied_changed:
            self._applied = list(sequences)
            self._applied_changed.notify_all()
        self._loaded.set()
        logger.info(
            "ranker shard %d/%d mapped %d logits from %s at sequences %s in %.0f ms",
            self.shard_index, self.shard_count, sum(i.stats().n_logits for i in indexes.values()),
            self.index_dir, sequences, (time.perf_counter() - started) * 1e3,
        )
        return True

    async def save_index_files(self) -> None:
        """Write every index and the manifest to the index folder, unless there is none or
        nothing changed since the last write. Failures are logged: the ranker keeps serving.

        The manifest records the positions (one per partition of the store's change feed)
        applied when the write began; changes applied while it runs are in some files or not,
        and are applied again after a restart (harmless: a put replaces, a delete of a missing
        model does nothing)."""
        if self.index_dir is None or self._saved == self._applied:
            return
        sequences = list(self._applied)
        started = time.perf_counter()
        names = {ps: f"{hashlib.sha256(ps.encode()).hexdigest()[:20]}.plx" for ps in self.indexes}
        try:
            for ps, index in list(self.indexes.items()):
                await asyncio.to_thread(atomic_write, self.index_dir / names[ps], index.save)
            manifest = {**self._manifest_fields(), "sequences": sequences, "probe_sets": names}
            atomic_write_bytes(self.index_dir / MANIFEST, json.dumps(manifest, indent=1).encode())
            for stale in set(p.name for p in self.index_dir.glob("*.plx")) - set(names.values()):
                (self.index_dir / stale).unlink(missing_ok=True)
        except OSError as exc:
            logger.error("could not write the index files to %s: %s", self.index_dir, exc)
            return
        self._saved = sequences
        logger.info(
            "wrote %d index files to %s at sequences %s in %.1f s",
            len(names), self.index_dir, sequences, time.perf_counter() - started,
        )

    async def _load_model(
        self, probe_set_id: str, model_id: str, indexes: dict[str, SparseLogitIndex]
    ) -> None:
        try:
            stored = await self.store.get_model(probe_set_id, model_id, include_descriptors=True)
        except NotFound:
            # Deleted since it was listed or announced; its delete change follows.
            if probe_set_id in indexes:
                await asyncio.to_thread(indexes[probe_set_id].remove, model_id)
            return
        if stored.entries is None or stored.offsets is None:
            return
        index = indexes.get(probe_set_id)
        if index is None:
            index = SparseLogitIndex(stored.entries.n_probes, stored.entries.r, self.values_dtype)
            indexes[probe_set_id] = index
        try:
            await asyncio.to_thread(
                index.add, model_id, stored.entries, stored.offsets, list(stored.info.labels)
            )
        except ValueError as exc:
            logger.error("model %s of %s cannot be indexed: %s", model_id, probe_set_id, exc)

    async def _set_applied(self, change: Change) -> None:
        async with self._applied_changed:
            if change.partition < len(self._applied):
                self._applied[change.partition] = max(self._applied[change.partition], change.sequence)
            self._applied_changed.notify_all()

    async def _maybe_compact(self, index: SparseLogitIndex) -> None:
        """Reclaim the rows of removed and replaced models once they are a quarter of the index."""
        stats = index.stats()
        if stats.dead_rows > max(_COMPACT_MIN_ROWS, (stats.n_logits + stats.dead_rows) // 4):
            reclaimed = await asyncio.to_thread(index.compact)
            logger.info("compacted the index: %d dead rows reclaimed", reclaimed)

    async def _apply(self, change: Change) -> bool:
        """Apply one change; False when it was a reset (the index was reloaded instead)."""
        if change.kind is ChangeKind.RESET:
            await self._load_all(reset=True)
            return False
        if self.owns(change.model_id):
            if change.kind is ChangeKind.PUT:
                await self._load_model(change.probe_set_id, change.model_id, self.indexes)
            elif change.kind is ChangeKind.DELETE and change.probe_set_id in self.indexes:
                # In a thread: the index lock may be held by a running scan.
                await asyncio.to_thread(self.indexes[change.probe_set_id].remove, change.model_id)
            if change.probe_set_id in self.indexes:
                await self._maybe_compact(self.indexes[change.probe_set_id])
        await self._set_applied(change)
        return True

    async def _follow(self) -> None:
        delay = 0.1
        while True:
            try:
                # After a reset, follow again from the store's own sequence. aclosing: leaving
                # the feed closes it at once, not whenever it is garbage collected.
                watched = self._partitions if self.shard_count > 1 else []
                async with contextlib.aclosing(self.store.watch(self._applied, watched)) as feed:
                    async for change in feed:
                        delay = 0.1
                        if not await self._apply(change):
                            break
            except asyncio.CancelledError:
                raise
            except ProbeLogError as exc:
                logger.warning("change feed interrupted (%s); retrying in %.1f s", exc, delay)
            except Exception:
                logger.exception("change feed failed; retrying in %.1f s", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def applied_sequences(self, *, timeout: float | None = None) -> list[int]:
        return list(self._applied)

    async def wait_applied(self, model_id: str, sequence: int, timeout: float | None = None) -> bool:
        """Wait until the change ``sequence`` of ``model_id``'s partition (and every change
        before it there) is searchable; False on timeout."""
        def reached_in_partition() -> bool:
            return bool(self._applied) and self._applied[hash_range_of(model_id, len(self._applied))] >= sequence

        async def reached() -> None:
            async with self._applied_changed:
                await self._applied_changed.wait_for(reached_in_partition)

        try:
            await asyncio.wait_for(reached(), timeout)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------------ queries

    @staticmethod
    async def _zscore(queries: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        try:
            if queries.size <= _INLINE_ZSCORE_VALUES:
                return zscore(queries, what="query")
            return await asyncio.to_thread(zscore, queries, what="query")
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None

    async def rank(
        self,
        probe_set_id: str,
        queries: npt.NDArray[np.float32],
        top_k: int,
        *,
        one_hit_per_model: bool = False,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        normalized: bool = False,
        timeout: float | None = None,
    ) -> RankResult:
        queries = np.asarray(queries, dtype=np.float32)
        if queries.ndim != 2 or not 1 <= len(queries) <= MAX_RANK_QUERIES:
            raise InvalidArgument(f"between 1 and {MAX_RANK_QUERIES} query descriptors are required")
        index = self.indexes.get(probe_set_id)
        if index is None:
            if self._store is None:
                raise NotFound(f"probe set {probe_set_id} is not indexed here")
            info = await self._store.probe_set_info(probe_set_id)  # NotFound when unknown
            if queries.shape[1] != info.n_probes:
                raise InvalidArgument(
                    f"query descriptors have {queries.shape[1]} values, probe set {probe_set_id} "
                    f"has {info.n_probes} probes"
                )
            return RankResult(hits=[[] for _ in queries], n_logits_searched=0, n_models_searched=0)
        if queries.shape[1] != index.n_probes:
            raise InvalidArgument(
                f"query descriptors have {queries.shape[1]} values, probe set {probe_set_id} "
                f"has {index.n_probes} probes"
            )
        if normalized:
            if not np.all(np.isfinite(queries)):
                raise InvalidArgument("query descriptors have non-finite values")
            z = queries
        else:
            z = await self._zscore(queries)
        if self.batcher is not None:
            search = self.batcher.search(
                index, z, top_k, one_hit_per_model=one_hit_per_model, include=include, exclude=exclude
            )
        else:
            search = asyncio.to_thread(
                index.search, z, top_k, one_hit_per_model=one_hit_per_model,
                include=include, exclude=exclude, normalized=True,
            )
        try:
            hits = await asyncio.wait_for(search, timeout)
        except TimeoutError:
            raise DeadlineExceeded(f"ranking did not finish within {timeout:.3f} s") from None
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        stats = index.stats()
        return RankResult(
            hits=[to_hits(h) for h in hits],
            n_logits_searched=stats.n_logits,
            n_models_searched=stats.n_models,
        )
