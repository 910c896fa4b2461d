"""Bulk indexing on a Redis Streams work queue: models are queued, N workers claim and index them.

``probelog index --all`` (EnqueueIndexing) and the auto-indexer add one stream entry per model;
every orchestrator started with ``index_workers`` > 0 runs that many workers, which claim
entries through the consumer group (XREADGROUP), index the model (probe through the runner,
write through the store: the very :meth:`SearchEngine.index_model` of IndexModel) and
acknowledge it. A worker that dies leaves its entry pending; any other worker takes it over
once it has been idle ``claim_timeout_s`` (XAUTOCLAIM), so no model is lost. A worker busy on a
slow model keeps its claim fresh (XCLAIM JUSTID every third of the timeout), so a live claim is
not stolen. A model is never seen half-written (the store writes a model in one transaction)
and indexing it twice leaves the state of indexing it once (the write replaces the same key).

Key schema (``Q`` = ``{<prefix>:index}``: one hash tag, so every key sits in one slot of a
Redis Cluster and each state change is one MULTI/EXEC)

=====================  ========  ==================================================
key                    type      value
=====================  ========  ==================================================
``Q:stream``           stream    one entry per queued model: ``model``, ``ps``
                                 (probe-set id); group ``indexers``; an entry is
                                 deleted once acknowledged, so XLEN is the depth
``Q:queued``           set       names waiting for a worker
``Q:running``          set       names claimed and not yet acknowledged
``Q:done``             set       names indexed since the queue was created
``Q:failed``           set       names that failed for good
``Q:errors``           hash      name -> last reason ("CODE: message")
=====================  ========  ==================================================

Failures: FAILED_PRECONDITION, INVALID_ARGUMENT and NOT_FOUND do not change on retry: the model
goes to ``failed`` at once. Other errors (the runner or the store unreachable, a deadline) leave
the entry pending, to be claimed again after the timeout; an entry claimed ``max_attempts``
times without finishing (a worker that crashes on it each time) goes to ``failed`` with its last
reason. ``EnqueueIndexing(retry_failed)`` queues the failed models again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError, ResponseError

from probelog.common.edge import status_code
from probelog.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ProbeLogError,
    Unavailable,
)
from probelog.common.ids import check_model_id
from probelog.orchestrator.search import IndexRequest, SearchEngine

logger = logging.getLogger(__name__)

GROUP = "indexers"
#: Deadline of one queued model's indexing (probing a large model on a busy server is slow).
INDEX_TIMEOUT_S = 600.0
#: How long one XREADGROUP waits for an entry (ms); the worker then looks for stale claims.
CLAIM_BLOCK_MS = 1000
#: Pause after a Redis error before the worker tries again (s).
REDIS_RETRY_S = 1.0
#: Errors that retrying will not change: the model fails at once.
PERMANENT = (FailedPrecondition, InvalidArgument, NotFound)


@dataclass(frozen=True)
class Job:
    """One claimed stream entry."""

    entry_id: str
    model_name: str
    probe_set_id: str


@dataclass(frozen=True)
class Progress:
    """The queue's counts; ``failures``: model name -> reason."""

    queued: int
    running: int
    done: int
    failed: int
    failures: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def redis_errors() -> Iterator[None]:
    """Redis unreachable or refusing becomes Unavailable (the queue's endpoint, no password)."""
    try:
        yield
    except RedisError as exc:
        raise Unavailable(f"index queue: {type(exc).__name__}: {exc}") from None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class IndexQueue:
    """The work queue's keys on Redis (one server or a cluster).

    Parameters
    ----------
    client : redis.asyncio.Redis or RedisCluster
    prefix : str
        Keys are ``{<prefix>:index}:...``.
    claim_timeout_s : float
        Idle time after which another worker takes over a pending entry.
    max_attempts : int
        Claims of one entry before it fails for good.
    """

    def __init__(
        self, client: Any, prefix: str = "probelog", claim_timeout_s: float = 60.0, max_attempts: int = 3
    ) -> None:
        if claim_timeout_s <= 0:
            raise ValueError(f"the claim timeout must be positive, got {claim_timeout_s}")
        if max_attempts < 1:
            raise ValueError(f"max attempts must be at least 1, got {max_attempts}")
        self.client = client
        self.claim_timeout_s = claim_timeout_s
        self.max_attempts = max_attempts
        tag = f"{{{prefix}:index}}"
        self.stream = f"{tag}:stream"
        self.queued, self.running, self.done, self.failed = (f"{tag}:{s}" for s in ("queued", "running", "done", "failed"))
        self.errors = f"{tag}:errors"

    @classmethod
    def from_url(
        cls, url: str, *, cluster: bool = False, username: str = "", password: str = "", tls_ca_file: str = "",
        **kwargs: Any,
    ) -> IndexQueue:
        """A queue on the Redis ``url`` names; credentials and the CA file only when given."""
        tls = url.startswith("rediss://")
        options = {"username": username, "password": password, "ssl_ca_certs": tls_ca_file if tls else ""}
        options = {k: v for k, v in options.items() if v}
        client = RedisCluster.from_url(url, **options) if cluster else aioredis.from_url(url, **options)
        return cls(client, **kwargs)

    async def open(self) -> None:
        """Check Redis answers and create the consumer group (idempotent); Unavailable if not."""
        try:
            await self.client.ping()
            await self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise Unavailable(f"index queue: {exc}") from None
        except RedisError as exc:
            raise Unavailable(f"index queue: Redis unreachable: {exc}") from None

    async def close(self) -> None:
        await self.client.aclose()

    async def enqueue(self, names: Iterable[str], probe_set_id: str) -> tuple[int, int]:
        """Queue each model not queued or running already. Returns (enqueued, left out)."""
        names = list(dict.fromkeys(names))
        if not names:
            return 0, 0
        async with self.client.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.sismember(self.queued, name)
                pipe.sismember(self.running, name)
            busy = await pipe.execute()
        todo = [n for i, n in enumerate(names) if not (busy[2 * i] or busy[2 * i + 1])]
        for name in todo:
            # One transaction per model: its entry and its state move together.
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.srem(self.done, name).srem(self.failed, name).hdel(self.errors, name).sadd(self.queued, name)
                pipe.xadd(self.stream, {"model": name, "ps": probe_set_id})
                await pipe.execute()
        return len(todo), len(names) - len(todo)

    async def failed_names(self) -> list[str]:
        return sorted(_text(n) for n in await self.client.smembers(self.failed))

    async def known(self) -> set[str]:
        """Names queued, running or failed: the auto-indexer leaves them alone."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.smembers(self.queued).smembers(self.running).smembers(self.failed)
            sets = await pipe.execute()
        return {_text(n) for s in sets for n in s}

    async def progress(self, max_failures: int = 0) -> Progress:
        """The counts (one round trip) and the failures with their reasons."""
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.scard(self.queued).scard(self.running).scard(self.done).scard(self.failed)
            pipe.smembers(self.failed)
            queued, running, done, failed, failed_names = await pipe.execute()
        names = sorted(_text(n) for n in failed_names)
        if max_failures:
            names = names[:max_failures]
        reasons = await self.client.hmget(self.errors, names) if names else []
        failures = {n: _text(r) if r is not None else "" for n, r in zip(names, reasons, strict=True)}
        return Progress(queued, running, done, failed, failures)

    async def claim(self, consumer: str, block_ms: int = CLAIM_BLOCK_MS) -> Job | None:
        """The next entry for ``consumer``: a stale claim of a dead worker first, else a new one."""
        cursor = "0-0"
        while True:
            # XAUTOCLAIM looks at a bounded stretch of the pending list per call (COUNT * 10
            # entries): follow its cursor through live claims to a stale one.
            cursor, entries = (await self.client.xautoclaim(
                self.stream, GROUP, consumer, min_idle_time=int(self.claim_timeout_s * 1000), start_id=cursor, count=1
            ))[:2]
            job = self._job(*entries[0]) if entries else None
            if job is not None:
                pending = await self.client.xpending_range(
                    self.stream, GROUP, min=job.entry_id, max=job.entry_id, count=1
                )
                attempts = pending[0]["times_delivered"] if pending else 1
                if attempts <= self.max_attempts:
                    logger.warning("reclaimed %s from a worker that stopped (claim %d)", job.model_name, attempts)
                    return job
                reason = await self.client.hget(self.errors, job.model_name)
                await self.fail(job, f"claimed {attempts - 1} times without finishing"
                                + (f"; last error: {_text(reason)}" if reason else ""))
            if _text(cursor) == "0-0":
                break
        read = await self.client.xreadgroup(GROUP, consumer, {self.stream: ">"}, count=1, block=block_ms)
        for _, entries in read or ():
            for entry_id, fields in entries:
                job = self._job(entry_id, fields)
                if job is not None:
                    async with self.client.pipeline(transaction=True) as pipe:
                        await pipe.srem(self.queued, job.model_name).sadd(self.running, job.model_name).execute()
                    return job
        return None

    def _job(self, entry_id: bytes | str, fields: dict[Any, Any] | None) -> Job | None:
        """The job of an entry; None for an entry deleted since (XAUTOCLAIM returns no fields)."""
        if not fields:
            return None
        values = {_text(k): _text(v) for k, v in fields.items()}
        return Job(_text(entry_id), values.get("model", ""), values.get("ps", ""))

    async def touch(self, job: Job, consumer: str) -> None:
        """Reset the claim's idle time: the worker is alive and still on it."""
        await self.client.xclaim(self.stream, GROUP, consumer, 0, [job.entry_id], justid=True)

    async def finish(self, job: Job) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, job.entry_id).xdel(self.stream, job.entry_id)
            pipe.srem(self.running, job.model_name).srem(self.queued, job.model_name).sadd(self.done, job.model_name)
            pipe.hdel(self.errors, job.model_name)
            await pipe.execute()

    async def fail(self, job: Job, reason: str) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xack(self.stream, GROUP, job.entry_id).xdel(self.stream, job.entry_id)
            pipe.srem(self.running, job.model_name).srem(self.queued, job.model_name).sadd(self.failed, job.model_name)
            pipe.hset(self.errors, job.model_name, reason)
            await pipe.execute()
        logger.warning("indexing %s failed: %s", job.model_name, reason)

    async def note_error(self, job: Job, reason: str) -> None:
        """Keep the reason of a transient error: the entry stays pending for another claim."""
        await self.client.hset(self.errors, job.model_name, reason)


def _reason(exc: ProbeLogError) -> str:
    return f"{status_code(exc).name}: {exc}"


class IndexWorker:
    """Claims queued models one at a time and indexes them with ``engine``.

    Parameters
    ----------
    queue : IndexQueue
    engine : SearchEngine
    name : str
        The consumer name; unique per worker (host, process, index).
    """

    def __init__(self, queue: IndexQueue, engine: SearchEngine, name: str) -> None:
        self.queue = queue
        self.engine = engine
        self.name = name
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name=f"index-worker-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        logger.info("index worker %s claiming from %s", self.name, self.queue.stream)
        while True:
            try:
                job = await self.queue.claim(self.name)
                if job is not None:
                    await self.index(job)
            except asyncio.CancelledError:
                raise
            except RedisError as exc:
                if "NOGROUP" in str(exc):
                    # The stream was deleted (a queue reset by hand): make the group again.
                    logger.warning("index worker %s: %s; creating the consumer group again", self.name, exc)
                    with contextlib.suppress(ProbeLogError):
                        await self.queue.open()
                    continue
                logger.warning("index worker %s: Redis: %s; trying again", self.name, exc)
                await asyncio.sleep(REDIS_RETRY_S)
            except Exception:
                logger.exception("index worker %s", self.name)
                await asyncio.sleep(REDIS_RETRY_S)

    async def index(self, job: Job) -> bool:
        """Index one claimed model; True when it was acknowledged (done or failed for good)."""
        indexed = asyncio.Event()
        keep_alive = asyncio.create_task(self._keep_claim(job, indexed))
        try:
            request = IndexRequest(job.model_name, check_model_id(job.model_name), probe_set=job.probe_set_id)
            result = await self.engine.index_model(request, timeout=INDEX_TIMEOUT_S)
        except PERMANENT as exc:
            await self.queue.fail(job, _reason(exc))
            return True
        except ProbeLogError as exc:
            # Unreachable runner or store, a deadline: the entry stays pending and is claimed
            # again after the timeout, up to max_attempts.
            logger.warning("index worker %s: %s: %s; left for another claim", self.name, job.model_name, exc)
            await self.queue.note_error(job, _reason(exc))
            return False
        finally:
            # Stopped by the event, never cancelled: a Redis command cut off by a cancellation
            # can come back as a RedisError, which the renewal loop would take for a lost touch.
            indexed.set()
            await keep_alive
        await self.queue.finish(job)
        logger.info("index worker %s: indexed %s (%d logits)", self.name, job.model_name, result.model.n_logits)
        return True

    async def _keep_claim(self, job: Job, indexed: asyncio.Event) -> None:
        """Renew the claim every third of the timeout until ``indexed`` is set."""
        while True:
            try:
                await asyncio.wait_for(indexed.wait(), self.queue.claim_timeout_s / 3)
                return
            except TimeoutError:
                with contextlib.suppress(RedisError):
                    await self.queue.touch(job, self.name)


def worker_names(count: int) -> list[str]:
    """Consumer names unique to this process: host, pid, index."""
    return [f"{socket.gethostname()}-{os.getpid()}-{i}" for i in range(count)]


async def enqueue_models(
    engine: SearchEngine,
    queue: IndexQueue,
    names: Sequence[str],
    *,
    all_models: bool = False,
    reindex: bool = False,
    retry_failed: bool = False,
    probe_set: str = "",
) -> tuple[int, int]:
    """Queue ``names``, and with ``all_models`` the runner's models not indexed (all with
    ``reindex``), and with ``retry_failed`` the failed ones. Returns (enqueued, left out)."""
    probe_set_id = (await engine.resolve_probe_set(probe_set)).probe_set_id
    todo = [check_model_id(n, field="model_names") for n in names]
    if all_models:
        served = await engine.list_source_models(probe_set_id)
        todo += [m.name for m, indexed in served if reindex or not indexed]
    if retry_failed:
        todo += await queue.failed_names()
    if not todo and not (all_models or retry_failed):
        raise InvalidArgument("name models to queue, or set all or retry_failed", field="model_names")
    return await queue.enqueue(todo, probe_set_id)
