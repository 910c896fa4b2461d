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
    """Add the ``build``, ``clip`` and ``info`` subcommands to ``parser``."""
    commands = parser.add_subparsers(dest="world_command", metavar="COMMAND", required=True)

    build = commands.add_parser("build", help="build a world (resumes an interrupted build)")
    build.add_argument(
        "--scale", choices=("tiny", "demo", "bench"), default="tiny",
        help="tiny: for tests, no quality claims; demo: what scripts/demo.sh builds (minutes); "
        "bench: the quality report's hub (hours)",
    )
    build.add_argument("--seed", type=int, default=0)
    build.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output directory (default: <data dir>/world-<scale>-seed<seed>, where the data "
        "dir is $PROBELOG_DATA_DIR or <repo>/.data)",
    )
    build.add_argument(
        "--replace", action="store_true",
        help="delete OUT first if it holds a world built by another version or with other parameters",
    )
    build.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    build.add_argument("--no-progress", action="store_true", help="no progress bars")
    build.set_defaults(func=_build)

    clip = commands.add_parser(
        "clip",
        help="train a world CLIP on its own (resumable), as a build's CLIP stage does",
        description="Train the world's CLIP (the ModifiedResNet one a build's first CLIP stage trains) into "
        "OUT; with --half, also write a float16 copy, as the demo scale carries.",
    )
    clip.add_argument("--out", type=Path, required=True, help="directory for the config, checkpoint and report")
    clip.add_argument("--seed", type=int, default=0)
    clip.add_argument("--steps", type=int, default=3000)
    clip.add_argument("--batch-size", type=int, default=256)
    clip.add_argument("--threads", type=int, default=1, help="torch threads (1 keeps the result reproducible)")
    clip.add_argument("--half", type=Path, default=None, help="also write a float16 checkpoint here")
    clip.add_argument("--no-progress", action="store_true", help="no progress bar")
    clip.set_defaults(func=_clip)

    info = commands.add_parser("info", help="summarise a built world")
    info.add_argument("dir", type=Path, nargs="?", default=None, help="world directory")
    info.add_argument("--scale", choices=("tiny", "demo", "bench"), default="tiny")
    info.add_argument("--seed", type=int, default=0)
    info.set_defaults(func=_info)


def _build(args: argparse.Namespace) -> int:
    from probelog_world.build import SCALES, build_world, default_world_dir, remove_stale
    from probelog_world.hub import FoundationTooWeakError

    out = args.out or default_world_dir(args.scale, args.seed)
    if args.replace:
        remove_stale(out, SCALES[args.scale], args.seed)
    try:
        build_world(out, scale=args.scale, seed=args.seed, progress=not args.no_progress, threads=args.threads)
    except (ValueError, FoundationTooWeakError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_summary(out)
    return 0


def _clip(args: argparse.Namespace) -> int:
    import numpy as np
    import torch

    from probelog_world.build import CLIP_RN
    from probelog_world.clip import CHECKPOINT_NAME, ClipArchitecture, ClipTraining, save_half, train_clip
    from probelog_world.concepts import ConceptSet, rng_for
    from probelog_world.render import IMAGE_SIZE, render_objects

    if args.steps < 1 or args.batch_size < 2 or args.threads < 1:
        print("error: --steps, --threads must be at least 1 and --batch-size at least 2", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    concepts = ConceptSet()
    # Held-out objects for the report, from the stream a world's eval/objects.npz uses.
    per = 4
    labels = np.repeat(np.arange(len(concepts.fine), dtype=np.int64), per)
    images = render_objects(rng_for(args.seed, "pool", "eval"), concepts.fine_attributes[labels], IMAGE_SIZE)
    arch = ClipArchitecture(image_size=IMAGE_SIZE, **CLIP_RN)
    training = ClipTraining(
        steps=args.steps, batch_size=args.batch_size, warmup_steps=max(10, min(200, args.steps // 10))
    )
    report = train_clip(args.out, concepts, arch, training, args.seed, (images, labels), progress=not args.no_progress)
    if args.half is not None:
        save_half(args.out / CHECKPOINT_NAME, args.half, arch)
    print(json.dumps({k: report[k] for k in ("fine_top1", "coarse_top1", "text_selectivity", "train_seconds")}))
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
        "foundations": {k: v.get("heldout_accuracy") for k, v in info.get("foundations", {}).items()},
        "hub": {
            k: info["hub"].get(k)
            for k in ("n_models", "n_logits", "logits_per_model", "mean_test_accuracy", "mean_logit_pr_auc")
        },
        "probelog_top1": info.get("probelog_top1"),
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
