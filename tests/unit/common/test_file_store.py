"""The embedded store: atomic model writes, paging, the change feed."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from probelog.common.errors import InvalidArgument, NotFound
from probelog.common.ports import ChangeKind
from probelog.core.distance import logit_entries
from probelog.descriptor_store.file_store import FileDescriptorStore
from probelog.v1 import types_pb2


@pytest.fixture
async def store(tmp_path):
    s = FileDescriptorStore(tmp_path / "store")
    await s.open()
    return s


def probes(seed=0, n=60):
    return np.random.default_rng(seed).integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)


def model(ps_id, model_id, n_logits=3, seed=0):
    logits = np.random.default_rng(seed).normal(size=(n_logits, 60))
    entries = logit_entries(logits, 5)
    info = types_pb2.ModelInfo(model_id=model_id, probe_set_id=ps_id, n_logits=n_logits, r=5)
    return info, entries, np.arange(n_logits, dtype=np.float32)


async def test_probe_set_registration_is_idempotent(store):
    info, created = await store.put_probe_set("p", probes())
    again, created_again = await store.put_probe_set("other name", probes())
    assert created and not created_again and again.probe_set_id == info.probe_set_id
    header, images = await store.get_probe_set(info.probe_set_id)
    np.testing.assert_array_equal(images, probes())
    assert header.n_probes == 60 and header.height == 8


async def test_model_round_trip_and_replace(store):
    ps, _ = await store.put_probe_set("p", probes())
    info, entries, offsets = model(ps.probe_set_id, "m/with spaces & slashes")
    s1 = await store.put_model(info, entries, offsets)
    info2, entries2, offsets2 = model(ps.probe_set_id, "m/with spaces & slashes", n_logits=2, seed=1)
    s2 = await store.put_model(info2, entries2, offsets2)
    assert s2 == s1 + 1
    got = await store.get_model(ps.probe_set_id, "m/with spaces & slashes", include_descriptors=True)
    assert got.info.n_logits == 2
    np.testing.assert_array_equal(got.entries.top_indices, entries2.top_indices)
    np.testing.assert_array_equal(got.offsets, offsets2)
    assert got.entries.top_values.dtype == np.float32


async def test_invalid_writes_store_nothing(store):
    ps, _ = await store.put_probe_set("p", probes())
    info, entries, offsets = model(ps.probe_set_id, "m")
    info.n_logits = 4
    with pytest.raises(InvalidArgument, match="n_logits"):
        await store.put_model(info, entries, offsets)
    with pytest.raises(NotFound):
        await store.get_model(ps.probe_set_id, "m")
    info, entries, offsets = model("ps-0123456789abcdef", "m")
    with pytest.raises(NotFound, match="probe set"):
        await store.put_model(info, entries, offsets)
    assert await store.current_sequence() == 0


async def test_paging_is_ordered_and_complete(store):
    ps, _ = await store.put_probe_set("p", probes())
    for i in range(7):
        await store.put_model(*model(ps.probe_set_id, f"m{i}"))
    seen, token = [], ""
    while True:
        page, token = await store.list_models(ps.probe_set_id, page_size=3, page_token=token)
        seen += [m.model_id for m in page]
        if not token:
            break
    assert seen == [f"m{i}" for i in range(7)]


async def test_change_feed_catches_up_then_follows(store):
    ps, _ = await store.put_probe_set("p", probes())
    await store.put_model(*model(ps.probe_set_id, "a"))
    await store.delete_model(ps.probe_set_id, "a")
    changes = []

    async def follow():
        async for change in store.watch(0):
            changes.append(change)
            if len(changes) == 3:
                return

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    await store.put_model(*model(ps.probe_set_id, "b"))
    await asyncio.wait_for(task, 5)
    assert [(c.sequence, c.kind, c.model_id) for c in changes] == [
        (1, ChangeKind.PUT, "a"), (2, ChangeKind.DELETE, "a"), (3, ChangeKind.PUT, "b"),
    ]


async def test_sequence_survives_reopen(tmp_path):
    s = FileDescriptorStore(tmp_path)
    await s.open()
    ps, _ = await s.put_probe_set("p", probes())
    await s.put_model(*model(ps.probe_set_id, "a"))
    reopened = FileDescriptorStore(tmp_path)
    await reopened.open()
    assert await reopened.current_sequence() == 1
    assert await reopened.put_model(*model(ps.probe_set_id, "b")) == 2
