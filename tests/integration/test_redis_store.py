"""The Redis descriptor store against a real Redis server: the key schema's promises (atomic
writes, idempotent re-indexing, complete deletes), the change feed (follow, reset when trimmed),
retries across a restart, TLS, and credentials passed through but never echoed. The contract both
backends keep is in test_store_contract.py."""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import numpy as np
import pytest

from probelog.common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from probelog.common.ids import hash_range_of
from probelog.common.ports import ChangeKind
from probelog.descriptor_store.config import StoreSettings
from probelog.descriptor_store.redis_store import CHUNK_BYTES, PARTITIONS, RedisDescriptorStore
from probelog_devstack import free_port, redis_server
from tests.support import stores
from tests.support.backends import redis_for_tests


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with redis_for_tests(tmp_path_factory.mktemp("redis")) as handle:
        yield handle.url


def _prefix() -> str:
    return "t" + uuid.uuid4().hex[:10]


async def _redis_store(url: str, **settings) -> RedisDescriptorStore:
    store = RedisDescriptorStore.from_settings(
        StoreSettings(store_url=url, redis_key_prefix=settings.pop("redis_key_prefix", _prefix()), **settings)
    )
    await store.open()
    return store


# ---------------------------------------------------------------------- Redis only


async def test_key_schema_reindex_is_idempotent_and_delete_removes_everything(redis_url):
    store = await _redis_store(redis_url)
    raw = store._redis
    try:
        images = stores.images(size=64, n=1100)  # 13.5 MB: several chunks
        ps, _ = await store.put_probe_set("big", images)
        ps_id = ps.probe_set_id
        n_chunks = -(-images.nbytes // ((CHUNK_BYTES // images[0].nbytes) * images[0].nbytes))
        assert n_chunks > 1
        _, got = await store.get_probe_set(ps_id)
        assert np.array_equal(got, images)
        tag = "{" + store.prefix + "}"
        # The model's partition: its keys, listing and change stream share the tag {P:n}.
        part = "{" + f"{store.prefix}:{hash_range_of('m:1', PARTITIONS)}" + "}"

        async def keys() -> set[bytes]:
            return {k async for k in raw.scan_iter(match=f"{{{store.prefix}[:}}]*")}

        base = {
            f"{tag}:layout", f"{tag}:probe_sets", f"{tag}:ps:{ps_id}",
            *(f"{tag}:ps:{ps_id}:chunk:{i}" for i in range(n_chunks)),
        }
        assert await keys() == {k.encode() for k in base}
        assert await raw.get(f"{tag}:layout") == str(PARTITIONS).encode()
        info, entries, offsets = stores.model(ps_id, "m:1", n_probes=len(images))
        await store.put_model(info, entries, offsets)
        after_one = await keys()
        assert after_one == {k.encode() for k in base} | {
            f"{part}:model:{ps_id}:m:1".encode(), f"{part}:models:{ps_id}".encode(), f"{part}:changes".encode(),
        }
        record = await raw.get(f"{part}:model:{ps_id}:m:1")
        await store.put_model(info, entries, offsets)
        assert await keys() == after_one  # same keys, one listing entry, the same record
        assert await raw.zrange(f"{part}:models:{ps_id}", 0, -1) == [b"m:1"]
        assert await raw.get(f"{part}:model:{ps_id}:m:1") == record
        # Compact binary, not JSON: the record is about the size of the arrays themselves.
        assert len(record) < 1.2 * (entries.top_indices.size * 8 + offsets.size * 4) + 200
        await store.delete_model(ps_id, "m:1")
        assert await keys() == {k.encode() for k in base} | {f"{part}:changes".encode()}
        assert await raw.xlen(f"{part}:changes") == 3
    finally:
        await store.close()


async def test_half_registered_probe_set_is_invisible_until_committed(redis_url):
    # A writer that crashed after its chunks and before the commit leaves chunks but no header.
    store = await _redis_store(redis_url)
    try:
        images = stores.images(seed=5)
        from probelog.common.probe_sets import probe_set_id

        ps_id = probe_set_id(images)
        await store._redis.set(store._chunk_key(ps_id, 0), images.tobytes())
        with pytest.raises(NotFound):
            await store.probe_set_info(ps_id)
        assert await store.list_probe_sets() == []
        info, created = await store.put_probe_set("probes", images)
        assert created and info.probe_set_id == ps_id
        assert np.array_equal((await store.get_probe_set(ps_id))[1], images)
    finally:
        await store.close()


def _in_one_partition(n: int) -> tuple[int, list[str]]:
    """A partition and ``n`` model ids that fall in it."""
    ids = [f"m{i}" for i in range(1000) if hash_range_of(f"m{i}", PARTITIONS) == 0][:n]
    return 0, ids


def _at(partition: int, sequence: int) -> list[int]:
    """Feed positions: ``sequence`` in ``partition``, the start of every other partition."""
    return [sequence if p == partition else 0 for p in range(PARTITIONS)]


async def test_change_feed_follows_and_resets_when_trimmed(redis_url):
    writer = await _redis_store(redis_url)
    reader = await _redis_store(redis_url, redis_key_prefix=writer.prefix)
    partition, m = _in_one_partition(6)
    try:
        ps, _ = await writer.put_probe_set("probes", stores.images())
        for i in range(3):
            await writer.put_model(*stores.model(ps.probe_set_id, m[i], seed=i))
        feed = reader.watch(_at(partition, 1))
        assert [(c.sequence, c.model_id) for c in [await anext(feed), await anext(feed)]] == [(2, m[1]), (3, m[2])]
        pending = asyncio.ensure_future(anext(feed))
        await asyncio.sleep(0.1)
        assert not pending.done()  # blocked on XREAD until the next write
        await writer.delete_model(ps.probe_set_id, m[0])
        change = await asyncio.wait_for(pending, 30)
        assert (change.partition, change.sequence, change.kind, change.model_id) == (
            partition, 4, ChangeKind.DELETE, m[0],
        )
        await feed.aclose()
        # Trim the stream past what a late follower asks for: it is told to reload.
        for i in range(3, 6):
            await writer.put_model(*stores.model(ps.probe_set_id, m[i], seed=i))
        await writer._redis.xtrim(writer._changes_key(partition), maxlen=1, approximate=False)
        late = reader.watch(_at(partition, 2))
        first, second = await anext(late), await anext(late)
        assert (first.kind, first.partition) == (ChangeKind.RESET, partition)
        assert (second.sequence, second.model_id) == (7, m[5])
        await late.aclose()
        # A follower ahead of the stream (the data set was lost) is told to reload too.
        ahead = reader.watch(_at(partition, 1000))
        assert (await anext(ahead)).kind is ChangeKind.RESET
        await ahead.aclose()
        assert await reader.current_sequences() == _at(partition, 7)
        with pytest.raises(InvalidArgument, match="16 partitions, got 2"):
            await anext(reader.watch([0, 0]))
    finally:
        await writer.close()
        await reader.close()


async def test_keys_of_the_earlier_layout_are_refused_with_what_to_do(redis_url):
    # The earlier layout kept one change stream, {P}:changes, beside its models' keys.
    prefix = _prefix()
    old = await _redis_store(redis_url, redis_key_prefix=prefix)
    await old._redis.xadd(f"{{{prefix}}}:changes", {"kind": "PUT", "ps": "ps-0000000000000000", "model": "m"})
    store = RedisDescriptorStore.from_settings(StoreSettings(store_url=redis_url, redis_key_prefix=prefix))
    with pytest.raises(FailedPrecondition, match=r"earlier version .* index them again into a new redis_key_prefix"):
        await store.open()
    await store.close()
    # Another partition count is refused as well.
    other = _prefix()
    await old._redis.set(f"{{{other}}}:layout", "4")
    store = RedisDescriptorStore.from_settings(StoreSettings(store_url=redis_url, redis_key_prefix=other))
    with pytest.raises(FailedPrecondition, match=f"written with 4 partitions, this version uses {PARTITIONS}"):
        await store.open()
    await store.close()
    await old.close()


async def test_unreachable_redis_is_unavailable_naming_the_endpoint_without_the_password():
    port = free_port()
    store = RedisDescriptorStore.from_settings(
        StoreSettings(store_url=f"redis://:hunter2@127.0.0.1:{port}/3", redis_password="s3cret", redis_retry_s=0.3)
    )
    with pytest.raises(Unavailable) as raised:
        await store.open()
    message = str(raised.value)
    assert f"redis at 127.0.0.1:{port}/3" in message
    assert "s3cret" not in message and "hunter2" not in message
    await store.close()


async def test_acl_user_and_password_are_passed_through(redis_url):
    admin = await _redis_store(redis_url)
    user, prefix = f"user-{uuid.uuid4().hex[:6]}", _prefix()
    try:
        await admin._redis.execute_command(
            "ACL", "SETUSER", user, "on", ">pw-ok", f"~{{{prefix}}}:*", f"~{{{prefix}:*}}:*", "+@all", "-@dangerous",
            "+info",
        )
        store = await _redis_store(redis_url, redis_key_prefix=prefix, redis_username=user, redis_password="pw-ok")
        ps, created = await store.put_probe_set("probes", stores.images())
        assert created
        assert await store.put_model(*stores.model(ps.probe_set_id, "m")) == 1
        await store.close()
        wrong = RedisDescriptorStore.from_settings(StoreSettings(
            store_url=redis_url, redis_key_prefix=prefix, redis_username=user, redis_password="pw-wrong",
        ))
        with pytest.raises(Unavailable, match="refused the credentials") as raised:
            await wrong.open()
        assert "pw-wrong" not in str(raised.value)
        await wrong.close()
    finally:
        await admin._redis.execute_command("ACL", "DELUSER", user)
        await admin.close()


async def test_writes_and_the_change_feed_survive_a_redis_restart(tmp_path):
    # A persistent Redis (fsynced AOF) killed with SIGKILL: a write issued while it is down is
    # retried with backoff and lands once it is back; the follower resumes where it was.
    server = redis_server.start(tmp_path / "redis", persistent=True)
    store = await _redis_store(server.url, redis_retry_s=60.0)
    follower = await _redis_store(server.url, redis_key_prefix=store.prefix)
    try:
        ps, _ = await store.put_probe_set("probes", stores.images())
        _, (before, during) = _in_one_partition(2)
        await store.put_model(*stores.model(ps.probe_set_id, before))
        feed = follower.watch()
        assert (await anext(feed)).model_id == before
        server.kill()
        write = asyncio.ensure_future(store.put_model(*stores.model(ps.probe_set_id, during)))
        await asyncio.sleep(0.3)
        await asyncio.to_thread(server.restart)
        assert await asyncio.wait_for(write, 60) == 2
        change = await asyncio.wait_for(anext(feed), 60)
        assert (change.sequence, change.model_id) == (2, during)
        infos, _ = await store.list_models(ps.probe_set_id)
        assert [i.model_id for i in infos] == sorted([before, during])
        await feed.aclose()
    finally:
        await store.close()
        await follower.close()
        server.stop()


async def test_tls_is_verified_with_the_configured_ca(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key),
         "-out", str(cert), "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    tls_port = free_port()
    server = redis_server.start(tmp_path / "redis", extra_args=(
        "--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
        "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
    ))
    url = f"rediss://127.0.0.1:{tls_port}/0"
    try:
        store = await _redis_store(url, redis_tls_ca_file=str(cert))
        ps, created = await store.put_probe_set("probes", stores.images())
        assert created and (await store.probe_set_info(ps.probe_set_id)) == ps
        await store.close()
        unverified = RedisDescriptorStore.from_settings(StoreSettings(store_url=url, redis_retry_s=0.2))
        with pytest.raises(Unavailable, match=f"redis at 127.0.0.1:{tls_port}/0"):
            await unverified.open()  # the system CAs do not know this certificate
        await unverified.close()
    finally:
        server.stop()


# ---------------------------------------------------------------------- a ranker following Redis


async def test_ranker_reloads_when_redis_lost_its_data(redis_url):
    """After FLUSHALL the store's sequence restarts: the ranker must reload and report the new
    sequence, not keep the old, higher one (which would call new models searchable too early)."""
    from probelog.ranker.ranker import Ranker

    prefix = _prefix()
    store = await _redis_store(redis_url, redis_key_prefix=prefix)
    ps, _ = await store.put_probe_set("probes", stores.images())
    for i in range(3):
        await store.put_model(*stores.model(ps.probe_set_id, f"old-{i}", seed=i))
    ranker = Ranker(store, values_dtype=np.float32)
    await ranker.start()
    try:
        assert sum(await ranker.applied_sequences()) == 3
        flusher = await _redis_store(redis_url, redis_key_prefix=prefix)
        await flusher._redis.flushall()
        await flusher.close()
        ps, _ = await store.put_probe_set("probes", stores.images())
        sequence = await store.put_model(*stores.model(ps.probe_set_id, "new", seed=7))
        assert sequence == 1
        # The feed's reset makes the ranker reload from the (new) store.
        for _ in range(200):
            index = ranker.indexes.get(ps.probe_set_id)
            if index is not None and index.model_ids() == ["new"]:
                break
            await asyncio.sleep(0.05)
        assert ranker.indexes[ps.probe_set_id].model_ids() == ["new"]
        assert sum(await ranker.applied_sequences()) == 1
        sequence = await store.put_model(*stores.model(ps.probe_set_id, "newer", seed=8))
        assert await ranker.wait_applied("newer", sequence, timeout=10)
        assert sorted(ranker.indexes[ps.probe_set_id].model_ids()) == ["new", "newer"]
    finally:
        await ranker.stop()
        await store.close()
