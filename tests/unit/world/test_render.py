from __future__ import annotations

import numpy as np
import pytest

from probelog.common.probe_sets import probe_set_id
from probelog_world import render
from probelog_world.concepts import COLOURS, ConceptSet

SIZE = render.IMAGE_SIZE


@pytest.fixture(scope="module")
def concepts() -> ConceptSet:
    return ConceptSet()


def _draw(name: str, seed: int, concepts: ConceptSet) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, len(concepts.fine), 24)
    attrs = concepts.fine_attributes
    if name == "objects":
        return render.render_objects(rng, attrs[ids])
    if name == "scenes":
        return render.render_scenes(rng, 24, attrs)[0]
    if name == "noise":
        return render.render_dead_leaves(rng, 24)
    return render.render_shifted(rng, attrs[ids])


@pytest.mark.parametrize("name", ["objects", "scenes", "noise", "shifted"])
def test_distributions_are_deterministic_uint8_rgb(name: str, concepts: ConceptSet) -> None:
    images = _draw(name, 7, concepts)
    assert images.shape == (24, SIZE, SIZE, 3) and images.dtype == np.uint8
    assert np.array_equal(images, _draw(name, 7, concepts))
    assert probe_set_id(images) == probe_set_id(_draw(name, 7, concepts))
    assert probe_set_id(images) != probe_set_id(_draw(name, 8, concepts))
    assert images.std() > 10  # not blank


def test_plain_objects_show_their_colour(concepts: ConceptSet) -> None:
    rng = np.random.default_rng(0)
    names = list(COLOURS)
    attrs = concepts.fine_attributes[[concepts[f"plain {c} circle"].index for c in names]]
    n = len(names)
    canvas = render.plain_backgrounds(rng, n, SIZE)
    centre = np.full(n, SIZE / 2, np.float32)
    coverage = render.paint_layer(
        canvas, render.sample_layer(rng, attrs, centre, centre, np.full(n, 15.0, np.float32))
    )
    for i, colour in enumerate(names):
        inside = canvas[i][coverage[i] > 0.99]
        assert len(inside) > 300
        assert np.abs(np.median(inside, axis=0) - np.array(COLOURS[colour])).max() < 0.2, colour


def test_shapes_have_distinct_silhouettes(concepts: ConceptSet) -> None:
    canvas = np.zeros((len(render.SHAPES), SIZE, SIZE, 3), dtype=np.float32)
    n = len(render.SHAPES)
    attrs = np.array([[0, 0, s] for s in range(n)])
    layer = render.sample_layer(
        np.random.default_rng(0),
        attrs,
        np.full(n, SIZE / 2, np.float32),
        np.full(n, SIZE / 2, np.float32),
        np.full(n, 18.0, np.float32),
    )
    layer.angle[:] = 0.0
    coverage = render.paint_layer(canvas, layer)
    assert coverage.shape == (n, SIZE, SIZE)
    assert ((coverage >= 0) & (coverage <= 1)).all()
    masks = coverage > 0.5
    assert all(m.sum() > 150 for m in masks)
    for i in range(n):
        for j in range(i + 1, n):
            assert (masks[i] != masks[j]).sum() > 40, (render.SHAPES[i], render.SHAPES[j])


def test_scene_contents_are_padded_fine_indices(concepts: ConceptSet) -> None:
    _, contents = render.render_scenes(np.random.default_rng(1), 50, concepts.fine_attributes)
    assert contents.shape == (50, 4) and contents.dtype == np.int64
    counts = (contents >= 0).sum(axis=1)
    assert counts.min() >= 2 and counts.max() <= 4
    assert (contents < len(concepts.fine)).all()
    # Padding only at the end of a row.
    assert all((row[(row >= 0).sum() :] == -1).all() for row in contents)
