"""The compiled kernels of a git revision against the working tree's, side by side in one run.

    taskset -c 1 python bench/kernel_ab.py --base main                # 1,000,000 logits, 7 reps
    taskset -c 1 python bench/kernel_ab.py --base HEAD~1 --logits 300000 --reps 5
    taskset -c 1 python bench/kernel_ab.py --base 2acd912 --tolerance 1e-5  # another summation order

Both versions of ``probelog/core/_compiled.py`` scan the same synthetic index (bench/ranker.py's
layout) on one numba thread, interleaved with the read-once floor: one query and a batch of 32,
median wall and process CPU time. Before timing, both must return the same hits for 20 single
queries and one batch of 32, with the same float32 scores (within ``--tolerance``, relative,
when the two revisions sum in different orders). Not a test: figures for bench/results/.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

import numpy as np  # noqa: E402
import ranker as bench  # noqa: E402  (puts services/ on sys.path)

from probelog.core import _compiled, kernels  # noqa: E402
from probelog.core.descriptors import zscore  # noqa: E402

COMPILED = "services/probelog/core/_compiled.py"


def load_base(rev: str, folder: Path) -> ModuleType:
    """``_compiled`` as it is at ``rev``, imported from a copy in ``folder`` (its own numba cache)."""
    source = subprocess.run(["git", "-C", str(REPO), "show", f"{rev}:{COMPILED}"],
                            check=True, capture_output=True, text=True).stdout
    path = folder / "base_compiled.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("base_compiled", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def searcher(index, module: ModuleType, z) -> Callable[[], object]:
    """index.search(z) through ``module``'s kernels."""

    def call() -> object:
        saved = kernels._compiled
        kernels._compiled = module
        try:
            return index.search(z, bench.TOP_K, normalized=True)
        finally:
            kernels._compiled = saved

    return call


def hits(result) -> list[list[tuple[str, int, float]]]:
    return [[(h.model_id, h.logit_index, h.score) for h in q] for q in result]


def agree(a, b, tolerance: float) -> bool:
    """Same hits in the same order; scores equal, or within ``tolerance`` (relative) when set."""
    ha, hb = hits(a), hits(b)
    if [[h[:2] for h in q] for q in ha] != [[h[:2] for h in q] for q in hb]:
        return False
    scores_a = np.array([h[2] for q in ha for h in q])
    scores_b = np.array([h[2] for q in hb for h in q])
    return bool(np.all(np.abs(scores_a - scores_b) <= tolerance * np.abs(scores_a)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="main", help="git revision of the kernels to compare with")
    parser.add_argument("--logits", type=int, default=1_000_000)
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--tolerance", type=float, default=0.0,
                        help="relative score difference allowed (kernels that sum in another order)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = load_base(args.base, Path(tmp))
        index, _ = bench.build_index(args.logits, 0)
        z = zscore(bench.synthetic_queries(32, 1))
        words = bench.floor_arrays(index)
        _compiled.numba.set_num_threads(1)
        for q in range(20):
            if not agree(searcher(index, base, z[q])(), searcher(index, _compiled, z[q])(), args.tolerance):
                raise SystemExit(f"query {q}: the two kernels disagree")
        if not agree(searcher(index, base, z)(), searcher(index, _compiled, z)(), args.tolerance):
            raise SystemExit("batch of 32: the two kernels disagree")
        methods = {
            "read-once floor": lambda: bench.read_once(words),
            f"1 query, {args.base}": searcher(index, base, z[0]),
            "1 query, this tree": searcher(index, _compiled, z[0]),
            f"batch of 32, {args.base}": searcher(index, base, z),
            "batch of 32, this tree": searcher(index, _compiled, z),
        }
        load = os.getloadavg()
        timer = bench.Timer()
        timer.run(methods, args.reps)
    floor = timer.cpu_median("read-once floor")
    print(f"{args.logits:,} logits, 1 thread, {args.reps} reps; load average "
          f"{' / '.join(f'{x:.1f}' for x in load)} -> {' / '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("| method | wall ms | CPU ms | CPU vs floor | queries per CPU-s |")
    print("|---|---:|---:|---:|---:|")
    for name in methods:
        cpu = timer.cpu_median(name)
        per_s = "" if name == "read-once floor" else f"{(32 if 'batch' in name else 1) / cpu:,.0f}"
        print(f"| {name} | {timer.median(name) * 1e3:.1f} | {cpu * 1e3:.1f} | {cpu / floor:.2f}x | {per_s} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
