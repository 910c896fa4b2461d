"""The on-disk layout of a built world: one place that names its files.

A world directory (made by ``probelog world build``, from the probelog-tools package) holds a
hub of models, a CLIP, probe sets and, for evaluation only, the ground truth. The services read
a world to wire embedded mode; the world builder writes it; benchmarks and tests read it. All of
them go through :class:`WorldLayout`, so a file moves in one place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class NotAWorldError(FileNotFoundError):
    """A directory is not a built world: it has no ``world.json``."""


@dataclass(frozen=True)
class WorldLayout:
    """Paths inside one world directory.

    Parameters
    ----------
    root : pathlib.Path
        The world directory.
    """

    root: Path

    @classmethod
    def at(cls, root: str | Path) -> WorldLayout:
        """The layout of ``root``; a path to its ``hub/`` means the world above it."""
        path = Path(root)
        if path.name == "hub" and (path.parent / "world.json").is_file():
            path = path.parent
        return cls(path)

    @property
    def world_json(self) -> Path:
        return self.root / "world.json"

    @property
    def concepts_json(self) -> Path:
        return self.root / "concepts.json"

    @property
    def background(self) -> Path:
        """The background concept names for calibration, one a line."""
        return self.root / "background.txt"

    @property
    def clip_dir(self) -> Path:
        return self.root / "clip"

    @property
    def clip_checkpoint(self) -> Path:
        return self.clip_dir / "checkpoint.pt"

    @property
    def clip_report(self) -> Path:
        return self.clip_dir / "report.json"

    def clip_config(self, model_name: str) -> Path:
        """The open_clip model config of the world's CLIP (the file stem is the model name)."""
        return self.clip_dir / f"{model_name}.json"

    @property
    def hub(self) -> Path:
        """The model repository (Triton layout: ``NAME/config.pbtxt``, ``NAME/1/model.onnx``)."""
        return self.root / "hub"

    @property
    def ground_truth(self) -> Path:
        """Evaluation only: what each hub model's logits are. Search never reads it."""
        return self.root / "ground_truth.json"

    def probe_set(self, name: str = "scenes") -> Path:
        return self.root / "probe_sets" / f"{name}.npz"

    @property
    def eval_objects(self) -> Path:
        return self.root / "eval" / "objects.npz"

    def probe_contents(self, name: str) -> Path:
        return self.root / "eval" / f"probe_contents_{name}.npz"

    @property
    def work(self) -> Path:
        """Build state; not needed to use the world."""
        return self.root / "work"

    @property
    def marker(self) -> Path:
        return self.root / "BUILD_COMPLETE"

    def is_world(self) -> bool:
        return self.world_json.is_file()

    def info(self) -> dict[str, Any]:
        """The parsed ``world.json``.

        Raises
        ------
        NotAWorldError
            If there is none.
        """
        if not self.is_world():
            raise NotAWorldError(f"{self.root} is not a built world (no world.json); run `probelog world build`")
        data: dict[str, Any] = json.loads(self.world_json.read_text(encoding="utf-8"))
        return data

    def models_truth(self) -> dict[str, dict[str, Any]]:
        """``ground_truth.json``'s ``models``: model name -> its record (concepts in logit order)."""
        models: dict[str, dict[str, Any]] = json.loads(self.ground_truth.read_text(encoding="utf-8"))["models"]
        return models
