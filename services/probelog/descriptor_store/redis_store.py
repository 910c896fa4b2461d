"""The production descriptor store: Redis (redis-py, asyncio), one server or a Redis Cluster.

Key schema
----------
``P`` = ``redis_key_prefix`` (default ``probelog``). Probe sets and the layout marker carry the
hash tag ``{P}``; a model's keys and the change feed are split into :data:`PARTITIONS`
partitions, partition ``n`` under the hash tag ``{P:n}``, where a model's partition is
``hash_range_of(model_id, PARTITIONS)`` (:mod:`probelog.common.ids`). Every key of one model
therefore sits in one hash slot with its partition's listing and change stream, so a model's
write is one MULTI/EXEC on a Redis Cluster as on a single server (the same keys, the same code:
one server is a cluster that holds every slot). ``<ps>`` is a probe-set id (``ps-`` + 16 hex
digits), ``<model>`` a model id.

==================================  ========  ===================================================
key                                 type      value
==================================  ========  ===================================================
``{P}:layout``                      string    the partition count the keys were written with
``{P}:probe_sets``                  set       ids of the registered probe sets
``{P}:ps:<ps>``                     hash      ``info`` (ProbeSetInfo, protobuf), ``chunks`` (count),
                                              ``probes_per_chunk``: the probe set's commit point
``{P}:ps:<ps>:chunk:<i>``           string    raw uint8 pixels of probes [i*k, (i+1)*k), HWC RGB
``{P:n}:models:<ps>``               zset      ids of the partition's models, all scored 0:
                                              lexicographic order pages by cursor (ZRANGE BYLEX)
``{P:n}:model:<ps>:<model>``        string    the model record: ModelInfo + LogitDescriptors in
                                              one protobuf (top-r indices as little-endian uint32
                                              bytes, z-scored values as float32 bytes,
                                              calibration offsets packed float32)
``{P:n}:changes``                   stream    the partition's change feed: entry ``0-<sequence>``
                                              with fields ``kind`` (PUT/DELETE), ``ps``, ``model``
==================================  ========  ===================================================

Keys of the earlier layout (every key under ``{P}``, one ``{P}:changes`` stream) are refused at
start with FailedPrecondition: re-index into a new prefix (the probe-set keys are unchanged).

Atomicity
---------
- A model is written as one value, in one MULTI/EXEC with its zset member and its change entry
  (three keys of one slot): after a crash or a lost connection, either all three are there or
  none is. Re-indexing a model replaces the value (same key, same member): the end state is
  the same, and a new change is announced. A delete removes the value, the member and appends
  a DELETE change in one transaction (WATCH makes "not found" exact).
- A probe set is written chunk by chunk first (chunks are content-addressed through the id, so
  a retry or a concurrent writer rewrites identical bytes), then its hash and set member in one
  transaction: a probe set without its hash does not exist.
- A listing page reads every partition's zset (one pipeline, one round trip per node) and
  merges them in model-id order.

Sequences
---------
Change entries get the stream id ``0-*``: Redis assigns ``0-1``, ``0-2``, ... so the sequence
of a change is the second part of its id, consecutive within its partition and assigned inside
the transaction. A follower keeps one position per partition and reads each partition's stream
in order (one blocking XREAD each). Each stream is trimmed to about ``redis_stream_maxlen /
PARTITIONS`` entries; a follower that asks for changes that were trimmed (a gap in the
sequence), or for a sequence beyond the stream (the data set was lost), gets a ``RESET`` and
reloads the current state.

Persistence is Redis's job: run it with the append-only file (``appendonly yes``) so that a
restarted server keeps every acknowledged model.

Connection errors, timeouts and a cluster without a master for a slot (CLUSTERDOWN, TRYAGAIN)
are retried with exponential backoff for ``redis_retry_s`` seconds (within the caller's
deadline), then raised as Unavailable naming the endpoint (never the password). Every write
unit is idempotent, so retrying one whose reply was lost is safe.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, TypeVar, cast

import numpy as np
import numpy.typing as npt
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    ClusterDownError,
    NoPermissionError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
    WatchError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from probelog.common.errors import (
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ProbeLogError,
    Unavailable,
)
from probelog.common.ids import check_model_id, check_probe_set_id, hash_range_of
from probelog.common.observe import store_read, store_write
from probelog.common.ports import Change, ChangeKind, StoredModel
from probelog.common.probe_sets import probe_set_id
from probelog.common.shield import run_to_completion
from probelog.core.distance import LogitEntries
from probelog.descriptor_store import records
from probelog.descriptor_store.config import StoreSettings
from probelog.v1 import types_pb2

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Bytes per probe-set chunk value (whole probes per chunk).
CHUNK_BYTES = 4 * 1024 * 1024
#: How long one XREAD of the change feed blocks (ms); below the socket timeout.
WATCH_BLOCK_MS = 2000
#: Changes read per XREAD.
WATCH_COUNT = 512
#: Partitions of the models' keys and the change feed. Fixed: it is part of the key layout
#: (``{P}:layout`` records it), so changing it means re-indexing into a new prefix.
PARTITIONS = 16
_KINDS = {b"PUT": ChangeKind.PUT, b"DELETE": ChangeKind.DELETE}
# A cluster whose slot lost its master answers CLUSTERDOWN (or TRYAGAIN while slots move) until
# the master is back or replaced; the client reports a slot no node serves as a cluster error.
_TRANSIENT = (
    RedisConnectionError, RedisTimeoutError, OSError, ClusterDownError, TryAgainError, RedisClusterException,
)


def _reraise_if_cancelling() -> None:
    """redis-py can turn a cancellation that lands in a blocking read into a timeout or
    connection error; retrying it would swallow the cancellation and never stop."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _sequence(stream_id: bytes | str) -> int:
    """The sequence of a change entry id ``0-<sequence>``."""
    text = stream_id.decode() if isinstance(stream_id, bytes) else stream_id
    return int(text.partition("-")[2] or 0)


def _bytes(value: object) -> bytes:
    """A reply value as bytes (the client is binary: ``decode_responses=False``)."""
    return value if isinstance(value, bytes) else str(value).encode()


def _bytes_or_none(value: object) -> bytes | None:
    return None if value is None else _bytes(value)


def endpoint_of(url: str) -> str:
    """``host:port/db`` (or the socket path) of a Redis URL: never the user or password."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "unix":
        return parsed.path
    host = parsed.hostname or "localhost"
    port = parsed.port or 6379
    db = parsed.path.strip("/") or "0"
    return f"{host}:{port}/{db}"


class RedisDescriptorStore:
    """A :class:`~probelog.common.ports.DescriptorStore` in Redis (see the module docstring).

    Parameters
    ----------
    client : redis.asyncio.Redis or redis.asyncio.cluster.RedisCluster
        A client with ``decode_responses=False``; its own retries off (this class retries).
    endpoint : str
        What error messages name: ``host:port/db``, never credentials.
    prefix : str
        Key prefix, used in the hash tags ``{prefix}`` and ``{prefix:n}``.
    stream_maxlen : int
        Approximate number of changes kept, over all partitions.
    retry_s : float
        How long a failing call is retried (with exponential backoff) before Unavailable.
    """

    backend = "redis"

    def __init__(
        self,
        client: aioredis.Redis | RedisCluster,
        *,
        endpoint: str,
        prefix: str = "probelog",
        stream_maxlen: int = 100_000,
        retry_s: float = 5.0,
    ) -> None:
        if not prefix or any(c in prefix for c in "{}"):
            raise InvalidArgument(f"redis key prefix must be non-empty without braces, got {prefix!r}")
        self._redis = client
        self.endpoint = endpoint
        self.prefix = prefix
        self.stream_maxlen = stream_maxlen
        self.retry_s = retry_s
        self._tag = "{" + prefix + "}"
        self._partition_maxlen = max(1, stream_maxlen // PARTITIONS)
        self._probe_sets: dict[str, types_pb2.ProbeSetInfo] = {}

    @classmethod
    def from_settings(cls, settings: StoreSettings) -> RedisDescriptorStore:
        """A store for ``settings.store_url`` (redis://, rediss:// with TLS, unix://), with the
        username, password and CA file of the settings (they win over the URL's); with
        ``redis_cluster``, a Redis Cluster client that finds every node from the URL's."""
        url = settings.store_url
        options: dict[str, Any] = {
            "decode_responses": False,
            "socket_timeout": max(10.0, WATCH_BLOCK_MS / 1000 * 2),
            "socket_connect_timeout": 5.0,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 30,
            "client_name": "probelog-descriptor-store",
        }
        if settings.redis_username:
            options["username"] = settings.redis_username
        if settings.redis_password:
            options["password"] = settings.redis_password
        if settings.redis_tls_ca_file:
            if not url.startswith("rediss://"):
                raise FailedPrecondition("redis_tls_ca_file is set but the store URL is not rediss://")
            options["ssl_ca_certs"] = settings.redis_tls_ca_file
        client: aioredis.Redis | RedisCluster
        try:
            if settings.redis_cluster:
                if url.startswith("unix://"):
                    raise ValueError("a Redis Cluster is reached over TCP, not a unix socket")
                # The same options: its own retries off (``retry``), TLS, credentials.
                client = RedisCluster.from_url(url, **options)
            else:
                client = aioredis.Redis.from_url(url, **options)
        except (ValueError, RedisClusterException) as exc:
            raise FailedPrecondition(f"bad store URL for redis ({endpoint_of(url)}): {exc}") from None
        return cls(
            client,
            endpoint=endpoint_of(url),
            prefix=settings.redis_key_prefix,
            stream_maxlen=settings.redis_stream_maxlen,
            retry_s=settings.redis_retry_s,
        )

    # ------------------------------------------------------------------ keys

    @property
    def _layout_key(self) -> str:
        return f"{self._tag}:layout"

    @property
    def _probe_sets_key(self) -> str:
        return f"{self._tag}:probe_sets"

    def _ps_key(self, ps_id: str) -> str:
        return f"{self._tag}:ps:{ps_id}"

    def _chunk_key(self, ps_id: str, i: int) -> str:
        return f"{self._tag}:ps:{ps_id}:chunk:{i}"

    def _partition_tag(self, partition: int) -> str:
        return "{" + f"{self.prefix}:{partition}" + "}"

    def _models_key(self, ps_id: str, partition: int) -> str:
        return f"{self._partition_tag(partition)}:models:{ps_id}"

    def _model_key(self, ps_id: str, model_id: str) -> bytes:
        tag = self._partition_tag(hash_range_of(model_id, PARTITIONS))
        return f"{tag}:model:{ps_id}:".encode() + model_id.encode()

    def _changes_key(self, partition: int) -> str:
        return f"{self._partition_tag(partition)}:changes"

    def _announce(self, pipe: Any, kind: str, ps_id: str, model_id: str) -> None:
        """Queue a change-feed entry in a transaction, in the model's partition; Redis numbers
        it ``0-<sequence>``."""
        pipe.xadd(
            self._changes_key(hash_range_of(model_id, PARTITIONS)),
            {"kind": kind, "ps": ps_id, "model": model_id},
            id="0-*",
            maxlen=self._partition_maxlen,
            approximate=True,
        )

    # ------------------------------------------------------------------ calls

    async def _run(self, what: str, unit: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        """Run an idempotent unit of work, retrying connection failures with backoff."""
        started = time.monotonic()
        budget = self.retry_s if timeout is None else min(self.retry_s, timeout)
        deadline = None if timeout is None else started + timeout
        delay = 0.05
        attempt = 0
        while True:
            attempt += 1
            try:
                if deadline is None:
                    return await unit()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DeadlineExceeded(f"{what} on redis at {self.endpoint}: deadline exceeded")
                async with asyncio.timeout(left):
                    return await unit()
            except AuthenticationError as exc:
                raise Unavailable(f"redis at {self.endpoint} refused the credentials ({what}): {exc}") from None
            except NoPermissionError as exc:
                raise FailedPrecondition(f"redis at {self.endpoint} denied {what}: {exc}") from None
            except (*_TRANSIENT, TimeoutError) as exc:
                _reraise_if_cancelling()
                if deadline is not None and time.monotonic() >= deadline:
                    raise DeadlineExceeded(f"{what} on redis at {self.endpoint}: deadline exceeded") from None
                elapsed = time.monotonic() - started
                if elapsed + delay > budget:
                    raise Unavailable(
                        f"redis at {self.endpoint} is unavailable ({what}, {attempt} attempts in "
                        f"{elapsed:.1f} s): {exc}"
                    ) from None
                logger.warning(
                    "%s: redis at %s unavailable (%s); retry %d in %.2f s", what, self.endpoint, exc, attempt, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            except ResponseError as exc:
                raise ProbeLogError(f"redis at {self.endpoint} rejected {what}: {exc}") from None

    async def open(self) -> None:
        """PING (fail fast, after the bounded retries), check the key layout, report the server.

        Raises FailedPrecondition when the prefix holds keys of another layout: the earlier one
        (a single change stream) or another partition count."""
        await self._run("PING", self._redis.ping)
        await self._run("check the key layout", self._check_layout)
        logger.info(
            "descriptor store on redis at %s (keys %s:* and %s partitions)", self.endpoint, self._tag, PARTITIONS
        )

    async def _check_layout(self) -> None:
        if await self._redis.exists(f"{self._tag}:changes"):
            raise FailedPrecondition(
                f"redis at {self.endpoint} holds models under {self._tag} in the key layout of an earlier "
                "version (one change stream): index them again into a new redis_key_prefix, or delete "
                f"the {self._tag}:changes, {self._tag}:models:* and {self._tag}:model:* keys"
            )
        await self._redis.set(self._layout_key, PARTITIONS, nx=True)
        found = _bytes(await self._redis.get(self._layout_key)).decode()
        if found != str(PARTITIONS):
            raise FailedPrecondition(
                f"redis at {self.endpoint} holds keys under {self._tag} written with {found} partitions, "
                f"this version uses {PARTITIONS}: index them again into a new redis_key_prefix"
            )

    async def ping(self, timeout: float) -> None:
        """One PING, no retries (the health watcher's check); Unavailable when Redis does not
        answer."""
        try:
            async with asyncio.timeout(timeout):
                await self._redis.ping()
        except (*_TRANSIENT, TimeoutError, AuthenticationError) as exc:
            raise Unavailable(f"redis at {self.endpoint} does not answer: {exc or type(exc).__name__}") from None

    async def close(self) -> None:
        await self._redis.aclose()

    # ------------------------------------------------------------------ probe sets

    async def _read_probe_set_header(self, ps_id: str) -> tuple[types_pb2.ProbeSetInfo, int, int] | None:
        fields = await self._redis.hgetall(self._ps_key(ps_id))
        if not fields or b"info" not in fields:
            return None
        info = types_pb2.ProbeSetInfo.FromString(_bytes(fields[b"info"]))
        return info, int(fields[b"chunks"]), int(fields[b"probes_per_chunk"])

    @store_write
    async def put_probe_set(
        self, name: str, images: npt.NDArray[np.uint8], *, timeout: float | None = None
    ) -> tuple[types_pb2.ProbeSetInfo, bool]:
        try:
            ps_id = probe_set_id(images)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        images = np.ascontiguousarray(images)
        existing = await self._run("HGETALL probe set", lambda: self._read_probe_set_header(ps_id), timeout)
        if existing is not None:
            self._probe_sets[ps_id] = existing[0]
            return existing[0], False
        info = types_pb2.ProbeSetInfo(
            probe_set_id=ps_id,
            name=name or ps_id,
            n_probes=images.shape[0],
            height=images.shape[1],
            width=images.shape[2],
            channels=images.shape[3],
        )
        info.created_at.GetCurrentTime()
        per_chunk = max(1, CHUNK_BYTES // images[0].nbytes)
        starts = range(0, images.shape[0], per_chunk)

        async def write_chunks() -> None:
            # Not a transaction: chunks are invisible until the header exists, and equal for
            # equal ids, so rewriting them (a retry, a concurrent writer) is harmless.
            for batch in range(0, len(starts), 8):
                pipe = self._redis.pipeline(transaction=False)
                for i, start in enumerate(starts[batch : batch + 8], start=batch):
                    pipe.set(self._chunk_key(ps_id, i), images[start : start + per_chunk].tobytes())
                await pipe.execute()

        async def commit() -> tuple[types_pb2.ProbeSetInfo, bool]:
            async with self._redis.pipeline(transaction=True) as pipe:
                try:
                    await pipe.watch(self._ps_key(ps_id))
                    # HLEN, not EXISTS: a cluster transaction drops EXISTS between WATCH and MULTI.
                    if await pipe.hlen(self._ps_key(ps_id)):
                        await pipe.unwatch()  # type: ignore[no-untyped-call]
                        header = await self._read_probe_set_header(ps_id)
                        if header is not None:
                            return header[0], False
                    pipe.multi()  # type: ignore[no-untyped-call]
                    pipe.hset(
                        self._ps_key(ps_id),
                        mapping={
                            "info": info.SerializeToString(),
                            "chunks": len(starts),
                            "probes_per_chunk": per_chunk,
                        },
                    )
                    pipe.sadd(self._probe_sets_key, ps_id)
                    await pipe.execute()
                    return info, True
                except WatchError:
                    header = await self._read_probe_set_header(ps_id)
                    if header is None:
                        raise
                    return header[0], False

        await self._run("write probe-set chunks", write_chunks, timeout)
        stored, created = await self._run("commit probe set", commit, timeout)
        self._probe_sets[ps_id] = stored
        if created:
            logger.info(
                "registered probe set %s (%s, %d probes, %d chunks)", ps_id, stored.name, stored.n_probes, len(starts)
            )
        return stored, created

    async def probe_set_info(self, probe_set_id: str, *, timeout: float | None = None) -> types_pb2.ProbeSetInfo:
        check_probe_set_id(probe_set_id)
        if probe_set_id in self._probe_sets:
            return self._probe_sets[probe_set_id]
        header = await self._run("HGETALL probe set", lambda: self._read_probe_set_header(probe_set_id), timeout)
        if header is None:
            raise NotFound(f"probe set {probe_set_id} is not registered")
        self._probe_sets[probe_set_id] = header[0]
        return header[0]

    @store_read
    async def get_probe_set(
        self, probe_set_id: str, *, timeout: float | None = None
    ) -> tuple[types_pb2.ProbeSetInfo, npt.NDArray[np.uint8]]:
        check_probe_set_id(probe_set_id)

        async def read() -> tuple[types_pb2.ProbeSetInfo, list[bytes | None]] | None:
            header = await self._read_probe_set_header(probe_set_id)
            if header is None:
                return None
            info, n_chunks, _ = header
            keys = [self._chunk_key(probe_set_id, i) for i in range(n_chunks)]
            return info, [_bytes_or_none(v) for v in await self._redis.mget(keys)] if keys else []

        found = await self._run("read probe set", read, timeout)
        if found is None:
            raise NotFound(f"probe set {probe_set_id} is not registered")
        info, chunks = found
        shape = (info.n_probes, info.height, info.width, info.channels)
        if any(c is None for c in chunks) or sum(len(c or b"") for c in chunks) != int(np.prod(shape)):
            raise ProbeLogError(f"probe set {probe_set_id} on redis at {self.endpoint} is missing image chunks")
        images = np.frombuffer(b"".join(c or b"" for c in chunks), dtype=np.uint8).reshape(shape)
        return info, images

    @store_read
    async def list_probe_sets(self, *, timeout: float | None = None) -> list[types_pb2.ProbeSetInfo]:
        members = await self._run("SMEMBERS", lambda: self._redis.smembers(self._probe_sets_key), timeout)
        ids = sorted(_bytes(m).decode() for m in members)
        return [await self.probe_set_info(ps_id, timeout=timeout) for ps_id in ids]

    # ------------------------------------------------------------------ models

    @store_write
    async def put_model(
        self,
        info: types_pb2.ModelInfo,
        entries: LogitEntries,
        offsets: npt.NDArray[np.float32],
        *,
        timeout: float | None = None,
    ) -> int:
        probe_set = await self.probe_set_info(info.probe_set_id, timeout=timeout)
        records.validate_model(info, entries, offsets, probe_set)
        data = records.encode_record(info, entries, offsets)
        ps_id, model_id = info.probe_set_id, info.model_id

        async def write() -> int:
            # One transaction: the record, its listing entry and its change, or none of them.
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.set(self._model_key(ps_id, model_id), data)
                pipe.zadd(self._models_key(ps_id, hash_range_of(model_id, PARTITIONS)), {model_id: 0})
                self._announce(pipe, "PUT", ps_id, model_id)
                results = await pipe.execute()
            return _sequence(results[-1])

        # Shielded: a caller that leaves cannot cut the transaction off mid-reply (the write
        # either lands whole or fails whole; see probelog.common.shield).
        sequence = await run_to_completion(self._run(f"put model {model_id!r}", write, timeout))
        logger.debug("stored %s/%s (%d bytes) as change %d", ps_id, model_id, len(data), sequence)
        return sequence

    @store_read
    async def get_model(
        self,
        probe_set_id: str,
        model_id: str,
        *,
        include_descriptors: bool = False,
        timeout: float | None = None,
    ) -> StoredModel:
        probe_set = await self.probe_set_info(probe_set_id, timeout=timeout)
        check_model_id(model_id)
        data = await self._run("GET model", lambda: self._redis.get(self._model_key(probe_set_id, model_id)), timeout)
        if data is None:
            raise NotFound(f"model {model_id!r} is not indexed for probe set {probe_set_id}")
        return records.decode_record(_bytes(data), probe_set.n_probes, include_descriptors)

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
        listed = self._check_partitions(partitions)
        probe_set = await self.probe_set_info(probe_set_id, timeout=timeout)
        page_size = page_size or 100
        # The page token is the last model id of the previous page: stable under inserts.
        start = b"(" + page_token.encode() if page_token else b"-"

        async def read() -> tuple[list[bytes], list[bytes | None]]:
            # Each partition's next page_size + 1 ids, merged: the page is the first of them.
            # Plain pipelines, not MGET: on a cluster the keys are in different slots.
            pipe = self._redis.pipeline(transaction=False)
            for partition in listed:
                pipe.zrange(
                    self._models_key(probe_set_id, partition), start, b"+", bylex=True, offset=0, num=page_size + 1
                )
            ids = sorted(_bytes(i) for found in await pipe.execute() for i in found)[: page_size + 1]
            page = ids[:page_size]
            pipe = self._redis.pipeline(transaction=False)
            for model_id in page:
                pipe.get(self._model_key(probe_set_id, model_id.decode()))
            values = await pipe.execute() if page else []
            return ids, [_bytes_or_none(v) for v in values]

        ids, values = await self._run("list models", read, timeout)
        infos = [
            None if value is None else records.decode_record(value, probe_set.n_probes, False).info
            for value in values  # None: deleted between the two reads
        ]
        page = [i.decode() for i in ids[:page_size]]
        return records.listing_page(page, infos, more=len(ids) > page_size)

    @store_write
    async def delete_model(self, probe_set_id: str, model_id: str, *, timeout: float | None = None) -> int:
        await self.probe_set_info(probe_set_id, timeout=timeout)
        check_model_id(model_id)
        key = self._model_key(probe_set_id, model_id)

        async def delete() -> int | None:
            async with self._redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(key)
                        # STRLEN, not EXISTS: a cluster transaction drops EXISTS here.
                        if not await pipe.strlen(key):
                            await pipe.unwatch()  # type: ignore[no-untyped-call]
                            return None
                        pipe.multi()  # type: ignore[no-untyped-call]
                        pipe.delete(key)
                        pipe.zrem(self._models_key(probe_set_id, hash_range_of(model_id, PARTITIONS)), model_id)
                        self._announce(pipe, "DELETE", probe_set_id, model_id)
                        results = await pipe.execute()
                        return _sequence(results[-1])
                    except WatchError:
                        continue  # rewritten meanwhile: look again

        sequence = await run_to_completion(self._run(f"delete model {model_id!r}", delete, timeout))
        if sequence is None:
            raise NotFound(f"model {model_id!r} is not indexed for probe set {probe_set_id}")
        return sequence

    # ------------------------------------------------------------------ changes

    async def _stream_states(self) -> list[int]:
        """Per partition, the last sequence ever assigned. One pipeline: one round trip per node."""
        pipe = self._redis.pipeline(transaction=False)
        for partition in range(PARTITIONS):
            pipe.xinfo_stream(self._changes_key(partition))
        states = []
        for info in await pipe.execute(raise_on_error=False):
            if isinstance(info, ResponseError):
                if isinstance(info, (ClusterDownError, TryAgainError)):
                    raise info
                states.append(0)  # no such key: nothing was ever written there
                continue
            states.append(_sequence(info["last-generated-id"]))
        return states

    async def current_sequences(self, *, timeout: float | None = None) -> list[int]:
        return await self._run("XINFO changes", self._stream_states, timeout)

    def _check_partitions(self, partitions: Sequence[int]) -> list[int]:
        """The partitions asked for (all when none), InvalidArgument for one this store lacks."""
        unknown = sorted(set(partitions) - set(range(PARTITIONS)))
        if unknown:
            raise InvalidArgument(
                f"the store on redis at {self.endpoint} has partitions 0..{PARTITIONS - 1}, not {unknown}"
            )
        return sorted(set(partitions)) or list(range(PARTITIONS))

    async def watch(self, after: Sequence[int] = (), partitions: Sequence[int] = ()) -> AsyncGenerator[Change, None]:
        """Changes after ``after[p]`` in each partition ``p`` (of ``partitions`` only, when
        given), then new ones as they are written.

        One task per partition reads its stream in order; their changes are merged as they
        come. Yields a RESET (of the partition) when changes after its position are no longer
        in the stream (trimmed) or the stream is behind it (the data set was lost); the
        follower reloads the current state. Connection failures are retried with backoff for
        as long as the caller follows.
        """
        positions = list(after) or [0] * PARTITIONS
        if len(positions) != PARTITIONS:
            raise InvalidArgument(
                f"the change feed on redis at {self.endpoint} has {PARTITIONS} partitions, "
                f"got {len(positions)} positions"
            )
        followed = self._check_partitions(partitions)
        merged: asyncio.Queue[Change | BaseException] = asyncio.Queue(maxsize=WATCH_COUNT)

        async def pump(partition: int) -> None:
            try:
                async for change in self._watch_partition(partition, positions[partition]):
                    await merged.put(change)
            except (ProbeLogError, RedisError) as exc:
                await merged.put(exc)

        readers = [asyncio.create_task(pump(p), name=f"redis-feed-{p}") for p in followed]
        try:
            while True:
                item = await merged.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    async def _watch_partition(self, partition: int, after_sequence: int) -> AsyncGenerator[Change, None]:
        """One partition's changes after ``after_sequence``, in order (see :meth:`watch`)."""
        key = self._changes_key(partition)
        last = after_sequence
        check = True
        delay = 0.1
        while True:
            # redis-py may answer a cancellation that lands in a blocking XREAD with the
            # read's empty reply: look before reading again.
            _reraise_if_cancelling()
            try:
                if check:
                    newest = await self._stream_newest(key)
                    if last > newest:
                        logger.warning(
                            "change feed %d on redis at %s is at %d, behind the requested %d: reset",
                            partition, self.endpoint, newest, last,
                        )
                        last = newest
                        yield Change(newest, ChangeKind.RESET, partition=partition)
                    check = False
                response = await self._redis.xread({key: f"0-{last}"}, count=WATCH_COUNT, block=WATCH_BLOCK_MS)
                delay = 0.1
                # A quiet feed may mean the data set was lost and new changes are numbered
                # below ``last`` (XREAD would never return them): look again.
                check = not response
            except _TRANSIENT as exc:
                _reraise_if_cancelling()
                logger.warning(
                    "change feed %d on redis at %s interrupted (%s); retrying in %.1f s",
                    partition, self.endpoint, exc, delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                check = True
                continue
            except RedisError as exc:
                raise Unavailable(f"change feed on redis at {self.endpoint} failed: {exc}") from None
            for _, entries in cast(list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]], response or []):
                for entry_id, fields in entries:
                    sequence = _sequence(entry_id)
                    if sequence > last + 1:
                        logger.warning(
                            "changes %d..%d of feed %d were trimmed on redis at %s: reset",
                            last + 1, sequence - 1, partition, self.endpoint,
                        )
                        yield Change(sequence - 1, ChangeKind.RESET, partition=partition)
                    last = sequence
                    kind = _KINDS.get(fields.get(b"kind", b""))
                    if kind is None:
                        continue
                    yield Change(
                        sequence, kind, fields.get(b"ps", b"").decode(), fields.get(b"model", b"").decode(),
                        partition,
                    )

    async def _stream_newest(self, key: str) -> int:
        """The last sequence assigned in one partition's stream (0 when it does not exist)."""
        try:
            info = await self._redis.xinfo_stream(key)
        except ResponseError as exc:
            if isinstance(exc, (ClusterDownError, TryAgainError)):
                raise
            return 0
        return _sequence(info["last-generated-id"])
