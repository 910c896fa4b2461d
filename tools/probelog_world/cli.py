"""``probelog world ...``: build and inspect miniature worlds.

``register(subparsers)`` adds the command group to the main ``probelog`` parser; ``python -m
probelog_world`` runs the same commands on their own. Torch is imported only when a command
runs, so registering costs nothing.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``world`` command group to an ``argparse`` subparsers object.

    Returns
    -------
    argparse.ArgumentParser
        The ``world`` parser; each subcommand sets ``func(args) -> int``.
    """
    world: argparse.ArgumentParser = subparsers.add_parser(
        "world",
        help="build the trained miniature world (CLIP, probe sets, model hub)",
        description=DESCRIPTION,
    )
    add_commands(world)
    return world


DESCRIPTION = (
    "Build and inspect miniature worlds: a procedural image world, a small CLIP trained on it, "
    "probe sets and a hub of trained classifiers with known labels."
)


def add_commands(parser: argparse.ArgumentParser) -> None:
    """Add the ``build`` and ``info`` subcommands to ``parser``."""
    commands = parser.add_subparsers(dest="world_command", metavar="COMMAND", required=True)

    build = commands.add_parser("build", help="build a world (resumes an interrupted build)")
    build.add_argument("--scale", choices=("tiny", "bench"), default="tiny")
    build.add_argument("--seed", type=int, default=0)
    build.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default: <data dir>/world-<scale>-seed<seed>, where the data "
        "dir is $PROBELOG_DATA_DIR or <repo>/.data)",
    )
    build.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    build.set_defaults(func=_build)

    info = commands.add_parser("info", help="summarise a built world")
    info.add_argument("dir", type=Path, nargs="?", default=None, help="world directory")
    info.add_argument("--scale", choices=("tiny", "bench"), default="tiny")
    info.add_argument("--seed", type=int, default=0)
    info.set_defaults(func=_info)


def _build(args: argparse.Namespace) -> int:
    from probelog_world.build import build_world, default_world_dir

    out = args.out or default_world_dir(args.scale, args.seed)
    build_world(out, scale=args.scale, seed=args.seed, progress=not args.no_progress, threads=args.threads)
    _print_summary(out)
    return 0


def _info(args: argparse.Namespace) -> int:
    from probelog_world.build import default_world_dir

    out = args.dir or default_world_dir(args.scale, args.seed)
    if not (out / "world.json").is_file():
        print(f"no built world in {out}", file=sys.stderr)
        return 1
    _print_summary(out)
    return 0


def _print_summary(out: Path) -> None:
    info = json.loads((out / "world.json").read_text())
    summary = {
        "dir": str(out),
        "scale": info["scale"],
        "seed": info["seed"],
        "clip_model_name": info["clip_model_name"],
        "clip_zero_shot_top1": info["clip_zero_shot_top1"],
        "probe_sets": {k: v["id"] for k, v in info["probe_sets"].items()},
        "hub": {k: info["hub"][k] for k in ("n_models", "n_logits", "mean_test_accuracy")},
        "build_seconds": info["build_seconds"],
    }
    print(json.dumps(summary, indent=2))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m probelog_world``."""
    parser = argparse.ArgumentParser(prog="python -m probelog_world", description=DESCRIPTION)
    add_commands(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # open_clip logs every step of model creation at INFO on the root logger.
    logging.getLogger().handlers[0].addFilter(lambda r: r.name != "root" or r.levelno >= logging.WARNING)
    return int(args.func(args))
