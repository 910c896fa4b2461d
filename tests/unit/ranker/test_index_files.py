"""A ranker with an index folder: it writes its indexes there, and a restart maps them and
follows the store's changes from the sequence they reflect, answering exactly like a ranker
loaded from the store. Files that do not fit (another storage type, a store that lost its data, a
damaged manifest) are ignored and rewritten. A real file-backed descriptor store throughout."""

from __future__ import annotations

import json

import numpy as np
import pytest

from probelog.common.errors import FailedPrecondition
from probelog.descriptor_store.file_store import FileDescriptorStore
from probelog.ranker.ranker import MANIFEST, Ranker
from tests.support import stores


async def open_store(root):
    store = FileDescriptorStore(root)
    await store.open()
    return store


async def filled_store(root, n_models=8):
    store = await open_store(root)
    ps, _ = await store.put_probe_set("probes", stores.images())
    for i in range(n_models):
        await store.put_model(*stores.model(ps.probe_set_id, f"model-{i}", n_logits=1 + i % 4, seed=i))
    return store, ps.probe_set_id


async def started(store, **kwargs):
    kwargs.setdefault("values_dtype", np.float32)
    ranker = Ranker(store, batch_window_ms=0, **kwargs)
    await ranker.start()
    return ranker


async def answers(ranker, ps_id):
    queries = np.random.default_rng(5).normal(size=(4, stores.N_PROBES)).astype(np.float32)
    result = await ranker.rank(ps_id, queries, 50)
    return [[(h.model_id, h.logit_index, h.score, h.distance) for h in hits] for hits in result.hits]


def mapped(ranker, ps_id):
    return isinstance(ranker.indexes[ps_id].arrays()[0], np.memmap)


async def test_a_restart_maps_the_files_and_catches_up_with_the_store(tmp_path, caplog):
    store, ps_id = await filled_store(tmp_path / "store")
    folder = tmp_path / "index"
    first = await started(store, index_dir=folder)
    assert not mapped(first, ps_id)
    assert json.loads((folder / MANIFEST).read_text())["sequences"] == await store.current_sequences()
    await first.stop()
    # While the ranker is down: a new model, a replaced one, a deleted one.
    await store.put_model(*stores.model(ps_id, "model-new", seed=40))
    await store.put_model(*stores.model(ps_id, "model-1", n_logits=2, seed=41))
    sequence = await store.delete_model(ps_id, "model-2")
    caplog.set_level("INFO", logger="probelog.ranker.ranker")
    second = await started(store, index_dir=folder)
    fresh = await started(store)
    try:
        # Mapped at start (the follower's first change then copies the rows into memory).
        assert f"mapped 20 logits from {folder} at sequences [{sequence - 3}]" in caplog.text  # one partition
        assert await second.wait_applied("model-2", sequence, timeout=10)
        assert sorted(second.indexes[ps_id].model_ids()) == sorted(fresh.indexes[ps_id].model_ids())
        assert "model-2" not in second.indexes[ps_id] and "model-new" in second.indexes[ps_id]
        assert await answers(second, ps_id) == await answers(fresh, ps_id)
    finally:
        await second.stop()
        await fresh.stop()
    # Stopping wrote the caught-up state: the next start needs no change from the feed.
    assert json.loads((folder / MANIFEST).read_text())["sequences"] == [sequence]
    third = await started(store, index_dir=folder)
    try:
        assert mapped(third, ps_id)
        assert await third.applied_sequences() == [sequence]
        assert sorted(third.indexes[ps_id].model_ids()) == sorted(fresh.indexes[ps_id].model_ids())
    finally:
        await third.stop()
        await store.close()


async def test_files_that_do_not_fit_are_ignored_and_rewritten(tmp_path, caplog):
    store, ps_id = await filled_store(tmp_path / "store")
    folder = tmp_path / "index"
    await (await started(store, index_dir=folder)).stop()
    # Another storage type: not these files.
    other_type = await started(store, index_dir=folder, values_dtype=np.float16)
    assert not mapped(other_type, ps_id)
    await other_type.stop()
    assert json.loads((folder / MANIFEST).read_text())["values_dtype"] == "float16"
    # A store that lost its data (a new, shorter history) is behind the files.
    other, other_ps = await filled_store(tmp_path / "other", n_models=2)
    assert other_ps == ps_id  # same probe images, same id
    ranker = await started(other, index_dir=folder, values_dtype=np.float16)
    try:
        assert not mapped(ranker, ps_id)
        assert sorted(ranker.indexes[ps_id].model_ids()) == sorted(
            m for m in ("model-0", "model-1") if ranker.owns(m)
        )
        assert "lost its data" in caplog.text
    finally:
        await ranker.stop()
    # A damaged manifest.
    (folder / MANIFEST).write_text("{not json")
    ranker = await started(other, index_dir=folder, values_dtype=np.float16)
    try:
        assert not mapped(ranker, ps_id)
        assert "unreadable manifest" in caplog.text
    finally:
        await ranker.stop()
    assert json.loads((folder / MANIFEST).read_text())["sequences"] == await other.current_sequences()
    await store.close()
    await other.close()


async def test_an_index_folder_that_cannot_be_written_fails_the_start(tmp_path):
    store, _ = await filled_store(tmp_path / "store", n_models=1)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    ranker = Ranker(store, index_dir=blocker / "index")
    with pytest.raises(FailedPrecondition, match=r"index folder .* is not writable"):
        await ranker.start()
    await store.close()
