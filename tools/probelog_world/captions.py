"""Captions for the world's images: what the small CLIP learns language from.

Single objects are captioned with one of several templates, mostly by their fine name and
sometimes by a coarser one ("a photo of a red circle."), so that the text encoder learns every
level of the hierarchy. Scenes are captioned COCO-style: either every object, in random order, or
only some of them (captions of real photos rarely list everything), sometimes with a plain
single-object template, which is also how a search query will read.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from probelog_world.concepts import (
    OBJECT_TEMPLATES,
    SCENE_TEMPLATES,
    Concept,
    ConceptSet,
    join_names,
)

#: Probability of captioning an object by each level: fine, colour+shape, pattern+shape, shape.
LEVEL_WEIGHTS = (0.76, 0.1, 0.09, 0.05)
#: Templates that also read naturally for a scene in which the object is one of several.
_GENERIC_TEMPLATES = OBJECT_TEMPLATES[:4]


class Captioner:
    """Draws captions for images of the world.

    Parameters
    ----------
    concepts : ConceptSet
    """

    def __init__(self, concepts: ConceptSet) -> None:
        self.concepts = concepts
        fine = concepts.fine
        # For each fine concept, the name at each level: fine, colour+shape, pattern+shape, shape.
        self._names = [(c.name, f"{c.colour} {c.shape}", f"{c.pattern} {c.shape}", c.shape) for c in fine]

    def object_captions(self, rng: np.random.Generator, fine_ids: npt.ArrayLike) -> list[str]:
        """One caption per single-object image.

        Parameters
        ----------
        rng : numpy.random.Generator
        fine_ids : array-like of shape (n,), int
            Fine concept index of each image's object.

        Returns
        -------
        list of str, length n
        """
        ids = np.asarray(fine_ids, dtype=np.int64).reshape(-1)
        levels = rng.choice(len(LEVEL_WEIGHTS), size=ids.size, p=LEVEL_WEIGHTS)
        templates = rng.integers(0, len(OBJECT_TEMPLATES), ids.size)
        return [
            OBJECT_TEMPLATES[t].format(self._names[i][lv])
            for i, lv, t in zip(ids.tolist(), levels.tolist(), templates.tolist(), strict=True)
        ]

    def scene_captions(self, rng: np.random.Generator, contents: npt.ArrayLike) -> list[str]:
        """One caption per scene.

        Parameters
        ----------
        rng : numpy.random.Generator
        contents : array-like of shape (n, max_objects), int
            Fine concept indices of each scene's objects, -1 padded (as ``render_scenes``).

        Returns
        -------
        list of str, length n
        """
        rows = np.asarray(contents, dtype=np.int64)
        captions = []
        for row in rows:
            ids = [int(i) for i in row if i >= 0]
            order = rng.permutation(len(ids))
            # Half the captions name everything; the rest name a random non-empty subset.
            keep = len(ids) if rng.random() < 0.5 else int(rng.integers(1, len(ids) + 1))
            names = [self._names[ids[k]][0] for k in order[:keep]]
            if len(names) == 1 and rng.random() < 0.5:
                template = _GENERIC_TEMPLATES[int(rng.integers(0, len(_GENERIC_TEMPLATES)))]
                captions.append(template.format(names[0]))
            else:
                template = SCENE_TEMPLATES[int(rng.integers(0, len(SCENE_TEMPLATES)))]
                captions.append(template.format(join_names(names)))
        return captions


def prompts(names: Sequence[str], template: str = "a photo of a {}.") -> list[str]:
    """The zero-shot prompt for each concept name."""
    return [template.format(n) for n in names]


def concept_names(concepts: Sequence[Concept]) -> list[str]:
    return [c.name for c in concepts]
