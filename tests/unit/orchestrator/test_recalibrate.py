"""``probelog recalibrate``: every stored model gets Eq. 6 offsets against the new background."""

from __future__ import annotations

import asyncio

import numpy as np

from probelog import cli
from probelog.core import calibration_offsets, logit_entries, zscore
from probelog.descriptor_store.file_store import FileDescriptorStore
from probelog.v1 import types_pb2

N_PROBES, R = 80, 8


async def populate(root, n_models=25):
    store = FileDescriptorStore(root)
    await store.open()
    rng = np.random.default_rng(0)
    probe_set, _ = await store.put_probe_set("p", rng.integers(0, 256, (N_PROBES, 4, 4, 3), dtype=np.uint8))
    old_background = zscore(rng.normal(size=(9, N_PROBES)))
    entries = {}
    for m in range(n_models):
        e = logit_entries(rng.normal(size=(int(rng.integers(1, 5)), N_PROBES)), R)
        info = types_pb2.ModelInfo(
            model_id=f"m{m}", probe_set_id=probe_set.probe_set_id, n_logits=e.n_logits, r=R,
            calibration=types_pb2.Calibration(background_id="bg-old", n_background=9, k=2),
            metadata={"owner": "team"},
        )
        await store.put_model(info, e, calibration_offsets(e, old_background, 2))
        entries[info.model_id] = e
    return store, probe_set.probe_set_id, entries


async def stored_models(root, ps_id):
    store = FileDescriptorStore(root)
    await store.open()
    infos, _ = await store.list_models(ps_id, page_size=1000)
    return {i.model_id: await store.get_model(ps_id, i.model_id, include_descriptors=True) for i in infos}


def test_recalibrate_rewrites_every_model_once(tmp_path, capsys):
    root = tmp_path / "store"
    _, ps_id, entries = asyncio.run(populate(root))
    raw = np.random.default_rng(1).normal(size=(30, N_PROBES)).astype(np.float32)
    np.save(tmp_path / "background.npy", raw)
    args = ["recalibrate", "--store-url", f"file://{root}", "--background", str(tmp_path / "background.npy"),
            "--k", "4", "--quiet"]
    assert cli.main(args) == 0
    assert "recalibrated 25 models" in capsys.readouterr().err
    models = asyncio.run(stored_models(root, ps_id))
    want_calibration = None
    for model_id, stored in models.items():
        np.testing.assert_allclose(
            stored.offsets, calibration_offsets(entries[model_id], zscore(raw), 4), rtol=2e-6, atol=2e-6
        )
        np.testing.assert_array_equal(stored.entries.top_indices, entries[model_id].top_indices)
        assert stored.info.metadata["owner"] == "team"
        assert stored.info.calibration.k == 4 and stored.info.calibration.n_background == 30
        want_calibration = want_calibration or stored.info.calibration.background_id
        assert stored.info.calibration.background_id == want_calibration != "bg-old"
    # A second run finds nothing to do; --force redoes everything.
    assert cli.main(args) == 0
    assert "recalibrated 0 models" in capsys.readouterr().err
    assert cli.main([*args, "--force"]) == 0
    assert "recalibrated 25 models" in capsys.readouterr().err


def test_recalibrate_rejects_a_background_of_the_wrong_probe_set(tmp_path, capsys):
    root = tmp_path / "store"
    asyncio.run(populate(root, 2))
    np.save(tmp_path / "bad.npy", np.zeros((5, N_PROBES + 1), dtype=np.float32))
    code = cli.main(["recalibrate", "--store-url", f"file://{root}", "--background", str(tmp_path / "bad.npy")])
    assert code == 1 and "INVALID_ARGUMENT" in capsys.readouterr().err
    code = cli.main(["recalibrate", "--store-url", f"file://{root}", "--background", "names.txt"])
    assert code == 1 and "--encoder-address" in capsys.readouterr().err


def test_recalibrate_needs_a_store(capsys):
    assert cli.main(["recalibrate", "--background", "x.npy"]) == 2
    assert capsys.readouterr().err.strip() == "error: give --store-address or --store-url (one of them)"
