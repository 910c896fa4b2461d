from __future__ import annotations

import numpy as np

from probelog_world.captions import Captioner
from probelog_world.concepts import (
    COARSE_KINDS,
    COLOURS,
    PATTERNS,
    SHAPES,
    ConceptSet,
    background_names,
    join_names,
    rng_for,
)


def test_at_least_300_fine_concepts_with_unique_names() -> None:
    concepts = ConceptSet()
    assert len(concepts.fine) == len(COLOURS) * len(PATTERNS) * len(SHAPES) >= 300
    assert len({c.name for c in concepts.concepts}) == len(concepts)
    assert [c.index for c in concepts.concepts] == list(range(len(concepts)))
    assert all(c.level == "fine" for c in concepts.concepts[: len(concepts.fine)])


def test_hierarchy_fine_to_coarse_to_shape() -> None:
    concepts = ConceptSet()
    fine = concepts["red striped circle"]
    assert set(fine.parents) == {"red circle", "striped circle"}
    assert concepts["red circle"].parents == ("circle",)
    assert set(concepts.ancestors("plain blue star")) == {"blue star", "plain star", "star"}
    for concept in concepts.concepts:
        for parent in concept.parents:
            assert concepts[parent].level == "coarse"
    assert {c.kind for c in concepts.coarse} == set(COARSE_KINDS)


def test_members_cover_exactly_the_children() -> None:
    concepts = ConceptSet()
    assert concepts.members("circle").size == len(COLOURS) * len(PATTERNS)
    assert concepts.members("red circle").size == len(PATTERNS)
    assert concepts.members("striped circle").size == len(COLOURS)
    assert concepts.members("red striped circle").tolist() == [concepts["red striped circle"].index]
    attrs = concepts.fine_attributes[concepts.members("red circle")]
    assert set(attrs[:, 0]) == {list(COLOURS).index("red")} and set(attrs[:, 2]) == {0}


def test_background_set_is_seeded_and_drawn_from_world_names() -> None:
    concepts = ConceptSet()
    names = background_names(concepts, seed=3)
    assert len(names) == min(500, len(concepts)) and len(set(names)) == len(names)
    assert all(n in concepts for n in names)
    assert names == background_names(concepts, seed=3)
    assert names != background_names(concepts, seed=4)


def test_named_streams_are_independent_and_reproducible() -> None:
    a = rng_for(0, "probes", "scenes").integers(0, 1 << 30, 4)
    assert np.array_equal(a, rng_for(0, "probes", "scenes").integers(0, 1 << 30, 4))
    assert not np.array_equal(a, rng_for(0, "probes", "objects").integers(0, 1 << 30, 4))
    assert not np.array_equal(a, rng_for(1, "probes", "scenes").integers(0, 1 << 30, 4))


def test_captions_name_the_objects() -> None:
    concepts = ConceptSet()
    captioner = Captioner(concepts)
    rng = np.random.default_rng(0)
    caps = captioner.object_captions(rng, [concepts["orange dotted heart"].index] * 50)
    assert all("heart" in c for c in caps)
    assert any("orange dotted heart" in c for c in caps)
    contents = np.array([[concepts["red striped circle"].index, concepts["plain blue star"].index, -1]])
    for caption in captioner.scene_captions(rng, np.repeat(contents, 20, axis=0)):
        assert "red striped circle" in caption or "plain blue star" in caption
    assert join_names(["orange star", "red circle"]) == "an orange star and a red circle"
