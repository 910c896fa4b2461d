"""Benchmarks run from the command line: ``probelog bench quality``."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def _quality(args: argparse.Namespace) -> int:
    from probelog.common.logs import configure_logging
    from probelog_bench.quality import run_quality

    configure_logging("INFO")
    world = Path(args.hub)
    if world.name == "hub" and (world.parent / "world.json").is_file():
        world = world.parent
    if not (world / "world.json").is_file():
        print(f"error: {args.hub} is not a built world (no world.json)", file=sys.stderr)
        return 2
    from probelog_bench.quality import R

    if args.probes <= R or (args.pool_size and args.pool_size <= R) or args.seeds < 1:
        print(f"error: --probes and --pool-size must exceed r = {R}, and --seeds must be at least 1", file=sys.stderr)
        return 2
    command = "probelog " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    sizes = None
    if args.pool_size:
        sizes = {"scenes": 2 * args.pool_size, "objects": args.pool_size, "shifted": args.pool_size, "noise": args.pool_size}
    report = run_quality(
        world, Path(args.out), range(args.seeds), args.threads, command,
        n_probes=args.probes, pool_sizes=sizes,
    )
    print(f"wrote {report}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    bench = subparsers.add_parser("bench", help="benchmarks")
    sub = bench.add_subparsers(dest="bench", required=True)
    quality = sub.add_parser("quality", help="the paper's experiments on a world's hub")
    quality.add_argument("--hub", required=True, help="a built world directory (or its hub/)")
    quality.add_argument("--out", default="bench/results", help="where quality.md and its plots go")
    quality.add_argument("--seeds", type=int, default=3, help="seeds of probe sampling")
    quality.add_argument("--threads", type=int, default=2, help="onnxruntime threads")
    quality.add_argument("--probes", type=int, default=4000, help="probes per experiment (paper: 4,000)")
    quality.add_argument(
        "--pool-size", type=int, default=0,
        help="probes rendered per distribution (scenes get twice as many); default: 9,000 scenes, 4,500 others",
    )
    quality.set_defaults(func=_quality)
