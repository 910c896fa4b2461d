"""The world's concepts: colour x pattern x shape, with coarser concepts above them.

Every fine concept is one colour, one surface pattern and one shape, named in plain English
("red striped circle", "plain blue star"). Three coarse levels sit above them:

=================  =====================  ==========================================
level              example                covers
=================  =====================  ==========================================
``shape``          "circle"               every colour and pattern of that shape
``colour_shape``   "red circle"           every pattern of that colour and shape
``pattern_shape``  "striped circle"       every colour of that pattern and shape
=================  =====================  ==========================================

so "red striped circle" has the parents "red circle" and "striped circle", and both of those have
the parent "circle". The vocabularies are fixed: the concept list, its order and its names do not
depend on the seed, so a concept's index means the same thing in every world.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

#: Object colours, RGB in [0, 1]. Hues far apart, plus black and white, so that colour survives
#: the renderer's jitter and the shading of patterns.
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.10, 0.10),
    "orange": (0.96, 0.52, 0.06),
    "yellow": (0.95, 0.86, 0.12),
    "green": (0.14, 0.64, 0.20),
    "blue": (0.14, 0.30, 0.92),
    "purple": (0.56, 0.20, 0.76),
    "white": (0.96, 0.96, 0.96),
    "black": (0.07, 0.07, 0.07),
}

#: Surface patterns, drawn in a darker (or, on black, lighter) shade of the object's colour.
PATTERNS: tuple[str, ...] = ("plain", "striped", "dotted", "checkered", "zigzag", "ringed")

#: Silhouettes. Each fits in the unit disc of the object's own frame (see ``render``).
SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "diamond",
    "crescent",
    "heart",
)

FINE = "fine"
COARSE = "coarse"
COARSE_KINDS: tuple[str, ...] = ("shape", "colour_shape", "pattern_shape")

#: Templates for the single-concept captions the CLIP is trained on (``{}`` is a concept name).
OBJECT_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a {}.",
    "a picture of a {}.",
    "an image of a {}.",
    "a close-up photo of a {}.",
    "a {} on a plain background.",
    "a rendering of a {}.",
    "a centred {}.",
)

#: Templates for scene captions (``{}`` is a list of concept names joined in English).
SCENE_TEMPLATES: tuple[str, ...] = (
    "a scene with {}.",
    "a photo of {}.",
    "a cluttered picture with {}.",
    "{} on a textured background.",
    "a picture containing {}.",
)


def fine_name(colour: str, pattern: str, shape: str) -> str:
    """Plain-English name of a fine concept ("red striped circle", "plain red circle")."""
    if pattern == "plain":
        return f"plain {colour} {shape}"
    return f"{colour} {pattern} {shape}"


def with_article(name: str) -> str:
    """``"a red circle"`` / ``"an orange star"``."""
    return ("an " if name[:1] in "aeiou" else "a ") + name


def join_names(names: Sequence[str]) -> str:
    """English list with articles: ``"a red circle, a blue star and an orange heart"``."""
    items = [with_article(n) for n in names]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


@dataclass(frozen=True)
class Concept:
    """One concept of the world.

    Attributes
    ----------
    index : int
        Position in :attr:`ConceptSet.concepts`; fine concepts come first.
    name : str
        Plain-English name, unique across the world.
    level : {"fine", "coarse"}
    kind : str
        ``"fine"`` or one of :data:`COARSE_KINDS`.
    colour, pattern : str or None
        ``None`` where the concept does not fix that attribute.
    shape : str
    parents : tuple of str
        Names of the concepts one level up (empty for shapes).
    """

    index: int
    name: str
    level: str
    kind: str
    shape: str
    colour: str | None = None
    pattern: str | None = None
    parents: tuple[str, ...] = field(default=())

    def covers(self, colour: str, pattern: str, shape: str) -> bool:
        """Whether an object with these attributes is an instance of this concept."""
        return (
            self.shape == shape
            and (self.colour is None or self.colour == colour)
            and (self.pattern is None or self.pattern == pattern)
        )

    def to_json(self) -> dict[str, Any]:
        """The record written to ``concepts.json``."""
        return {
            "index": self.index,
            "name": self.name,
            "level": self.level,
            "kind": self.kind,
            "parents": list(self.parents),
            "attributes": {"colour": self.colour, "pattern": self.pattern, "shape": self.shape},
        }


class ConceptSet:
    """All concepts of the world, fine ones first, in a fixed order."""

    def __init__(self) -> None:
        concepts: list[Concept] = []
        for shape in SHAPES:
            for colour in COLOURS:
                for pattern in PATTERNS:
                    concepts.append(
                        Concept(
                            index=len(concepts),
                            name=fine_name(colour, pattern, shape),
                            level=FINE,
                            kind=FINE,
                            shape=shape,
                            colour=colour,
                            pattern=pattern,
                            parents=(f"{colour} {shape}", f"{pattern} {shape}"),
                        )
                    )
        for shape in SHAPES:
            concepts.append(Concept(len(concepts), shape, COARSE, "shape", shape))
        for shape in SHAPES:
            for colour in COLOURS:
                concepts.append(
                    Concept(
                        len(concepts),
                        f"{colour} {shape}",
                        COARSE,
                        "colour_shape",
                        shape,
                        colour=colour,
                        parents=(shape,),
                    )
                )
        for shape in SHAPES:
            for pattern in PATTERNS:
                concepts.append(
                    Concept(
                        len(concepts),
                        f"{pattern} {shape}",
                        COARSE,
                        "pattern_shape",
                        shape,
                        pattern=pattern,
                        parents=(shape,),
                    )
                )
        self.concepts: tuple[Concept, ...] = tuple(concepts)
        self._by_name = {c.name: c for c in concepts}
        if len(self._by_name) != len(concepts):
            raise AssertionError("concept names are not unique")

    def __len__(self) -> int:
        return len(self.concepts)

    def __getitem__(self, name: str) -> Concept:
        return self._by_name[name]

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    @cached_property
    def fine(self) -> tuple[Concept, ...]:
        """Fine concepts; ``fine[i].index == i``."""
        return tuple(c for c in self.concepts if c.level == FINE)

    @cached_property
    def coarse(self) -> tuple[Concept, ...]:
        return tuple(c for c in self.concepts if c.level == COARSE)

    def of_kind(self, kind: str) -> tuple[Concept, ...]:
        """Concepts of one kind (``"fine"`` or one of :data:`COARSE_KINDS`), in index order."""
        return tuple(c for c in self.concepts if c.kind == kind)

    @cached_property
    def fine_attributes(self) -> npt.NDArray[np.int64]:
        """Attribute indices of the fine concepts.

        Returns
        -------
        ndarray of shape (n_fine, 3), int64
            Row ``i`` is ``(colour, pattern, shape)`` of fine concept ``i``, each an index into
            ``COLOURS``, ``PATTERNS`` and ``SHAPES``.
        """
        colours = list(COLOURS)
        return np.array(
            [
                (colours.index(c.colour or ""), PATTERNS.index(c.pattern or ""), SHAPES.index(c.shape))
                for c in self.fine
            ],
            dtype=np.int64,
        )

    def members(self, name: str) -> npt.NDArray[np.int64]:
        """Indices of the fine concepts covered by a concept (itself, if it is fine).

        Returns
        -------
        ndarray of shape (n_members,), int64
        """
        concept = self[name]
        return np.array(
            [f.index for f in self.fine if concept.covers(f.colour or "", f.pattern or "", f.shape)],
            dtype=np.int64,
        )

    def ancestors(self, name: str) -> tuple[str, ...]:
        """Every concept above ``name`` in the hierarchy (parents, their parents, ...)."""
        seen: dict[str, None] = {}
        stack = list(self[name].parents)
        while stack:
            parent = stack.pop(0)
            if parent not in seen:
                seen[parent] = None
                stack.extend(self[parent].parents)
        return tuple(seen)

    def to_json(self) -> list[dict[str, Any]]:
        return [c.to_json() for c in self.concepts]


def seed_for(seed: int, *labels: str | int) -> np.random.SeedSequence:
    """A seed sequence for one named random stream of the world.

    Streams are keyed by strings, so adding a stream never shifts the numbers another draws, and the
    same ``(seed, labels)`` gives the same stream in every process (unlike Python's ``hash``).
    """
    digest = hashlib.sha256("/".join(str(x) for x in labels).encode()).digest()
    key = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]
    return np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *key])


def rng_for(seed: int, *labels: str | int) -> np.random.Generator:
    """``np.random.default_rng`` on :func:`seed_for`."""
    return np.random.default_rng(seed_for(seed, *labels))


def background_names(concepts: ConceptSet, seed: int, size: int = 500) -> list[str]:
    """The background concept set for hubness calibration (paper Sec. 4.2, App. C).

    The paper draws 500 random ImageNet-21k class names: a vocabulary larger than, and covering,
    the hub's concepts. Here the same role is played by up to ``size`` names drawn without
    replacement from every concept of the world, fine and coarse, with a fixed seed.

    Returns
    -------
    list of str
        In drawing order.
    """
    rng = rng_for(seed, "background")
    order = rng.permutation(len(concepts))[: min(size, len(concepts))]
    return [concepts.concepts[int(i)].name for i in order]
