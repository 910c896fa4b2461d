"""`probelog probe-set build`: a folder of a team's own images becomes a probe set."""

from __future__ import annotations

import numpy as np
import pytest

from probelog.common.probe_sets import load_probe_set, probe_set_id, read_probe_image
from probelog.descriptor_store.file_store import FileDescriptorStore
from tests.support import procs

SIZE = 48


@pytest.fixture
def folder(tmp_path):
    """Eight images of other sizes and formats in nested folders, one corrupt JPEG, one text file."""
    from PIL import Image

    rng = np.random.default_rng(0)
    root = tmp_path / "val"
    for i, (suffix, size) in enumerate([
        (".jpg", (64, 80)), (".JPEG", (90, 60)), (".png", (50, 50)), (".webp", (120, 70)),
        (".jpg", (70, 64)), (".png", (48, 100)), (".webp", (64, 64)), (".jpeg", (200, 150)),
    ]):
        path = root / f"class-{i % 3}" / f"img-{i}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8)).save(path)
    (root / "class-0" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "README.txt").write_text("not an image")
    return root


def test_a_folder_becomes_a_registered_probe_set_in_a_deterministic_order(folder, tmp_path):
    out, store = tmp_path / "probes.npz", tmp_path / "store"
    args = ["probe-set", "build", str(folder), "--name", "team-val", "--size", str(SIZE)]
    result = procs.cli([*args, "--out", str(out), "--store", f"file://{store}"])
    assert result.returncode == 0, result.stderr
    assert "skipped" in result.stderr and "broken.jpg" in result.stderr
    assert "8 images of 48x48" in result.stderr and "1 unreadable files skipped" in result.stderr
    probe_set = load_probe_set(out)
    assert probe_set.name == "team-val" and probe_set.images.shape == (8, SIZE, SIZE, 3)
    assert result.stdout.strip() == probe_set.probe_set_id == probe_set_id(probe_set.images)
    # Sorted by path, each image's shorter side resized and its centre cropped.
    files = sorted(p for p in folder.rglob("*") if p.name.startswith("img-"))
    np.testing.assert_array_equal(probe_set.images[0], read_probe_image(files[0], SIZE))
    np.testing.assert_array_equal(probe_set.images[-1], read_probe_image(files[-1], SIZE))
    # The same folder gives the same id; a seeded sample is deterministic too.
    again = procs.cli([*args, "--out", str(tmp_path / "again.npz"), "--quiet"])
    assert again.stdout.strip() == probe_set.probe_set_id
    samples = [
        procs.cli([*args, "--count", "3", "--seed", "7", "--out", str(tmp_path / f"s{i}.npz"), "--quiet"])
        for i in range(2)
    ]
    assert samples[0].stdout == samples[1].stdout and samples[0].stdout.strip() != probe_set.probe_set_id
    assert load_probe_set(tmp_path / "s0.npz").n_probes == 3


async def test_the_store_lists_the_probe_set_it_was_registered_in(folder, tmp_path):
    store_dir = tmp_path / "store"
    result = procs.cli([
        "probe-set", "build", str(folder / "**" / "*.png"), "--name", "pngs", "--size", str(SIZE),
        "--store", f"file://{store_dir}", "--quiet",
    ])
    assert result.returncode == 0, result.stderr
    store = FileDescriptorStore(store_dir)
    await store.open()
    (info,) = await store.list_probe_sets()
    assert (info.probe_set_id, info.name, info.n_probes, info.height) == (result.stdout.strip(), "pngs", 2, SIZE)
    await store.close()


def test_mistakes_end_in_one_clear_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in [
        ([str(empty), "--out", str(tmp_path / "x.npz")], f"error: no JPEG, PNG or WebP files in {empty}"),
        ([str(tmp_path / "missing"), "--out", str(tmp_path / "x.npz")], "is neither a directory nor a glob pattern"),
        ([str(empty)], "error: give --out FILE, --store URL, or both"),
    ]:
        result = procs.cli(["probe-set", "build", *args, "--name", "x"])
        assert result.returncode != 0 and message in result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
