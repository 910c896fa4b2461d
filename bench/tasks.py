"""Task search benchmark (issue #14) -- not a test: TaskSearch and SimilarLogits measured on a
world's hub with its ground truth, through the public API, and TaskSearch latency on a
1,000,000-logit synthetic index.

    python bench/tasks.py --world .data/world-tiny-seed0 --tuning-seeds 0 1 2 --seeds 3 4 5
    python bench/tasks.py --world .data/world-tiny-seed0 --latency-logits 1000000 --out bench/results/tasks.md

Each world is served embedded in this process (an on-disk store in a temporary directory, every
hub model indexed through IndexModel), and every figure comes from gRPC calls to it:

1. tasks: per seed, random subsets of 2, 5 and 10 concepts of one hub model's label set (the
   model drawn at random among those with enough labels). A returned model is correct when its
   ground-truth label set contains the whole task. Top-1 and top-5 task accuracy of TaskSearch
   (each aggregation), of the naive alternative (one Search per concept, one hit per model, models
   ranked by the sum of their best per-concept scores; a model missing from a concept's hits
   counts that concept's worst returned score), and of a random model among those with at least
   as many logits as the task has concepts (its exact expectation).
2. SimilarLogits: for every logit whose concept some other hub logit carries too, the share of
   its top-10 similar logits with the same concept (precision@10), against CLIP-text Search with
   the true concept name (the query logit left out of both), and the same ranking ordered by raw
   distance instead of calibrated score.
3. latency: Search and TaskSearch with 2, 10 and 100 text concepts over a synthetic index of
   ``--latency-logits`` logits (the world's probe set and CLIP; descriptors drawn at random),
   wall and process CPU time per call, and the host's load average.

Ground truth is read only to score. Mean and standard deviation are over seeds.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "services"))

from probelog.common.server import create_server  # noqa: E402
from probelog.core.index import SparseLogitIndex  # noqa: E402
from probelog.embedded import EmbeddedSettings, build  # noqa: E402
from probelog.ranker.ranker import Ranker  # noqa: E402
from probelog.v1 import search_pb2  # noqa: E402
from probelog.v1 import search_pb2_grpc as pb_grpc  # noqa: E402

SIZES = (2, 5, 10)
AGGREGATIONS = {
    "mean": search_pb2.TASK_AGGREGATION_MEAN,
    "worst": search_pb2.TASK_AGGREGATION_WORST,
    "mean_rank": search_pb2.TASK_AGGREGATION_MEAN_RANK,
}
NAIVE_DEPTH = 1000  # Search's top_k limit: every model of a small hub, once


def task_request(concepts: Sequence[str], **fields: object) -> search_pb2.TaskSearchRequest:
    return search_pb2.TaskSearchRequest(concepts=[search_pb2.TaskConcept(text=c) for c in concepts], **fields)


def random_top_k(n_eligible: int, n_correct: int, k: int) -> float:
    """P(some correct model among k drawn without replacement from n_eligible)."""
    k = min(k, n_eligible)
    return 1.0 - math.comb(n_eligible - n_correct, k) / math.comb(n_eligible, k)


async def naive_ranking(stub: pb_grpc.SearchServiceStub, task: Sequence[str]) -> list[str]:
    """One Search per concept; models by the sum of their best per-concept scores."""
    totals: dict[str, float] = {}
    per_concept = []
    for concept in task:
        response = await stub.Search(
            search_pb2.SearchRequest(text=concept, top_k=NAIVE_DEPTH, one_hit_per_model=True)
        )
        per_concept.append({h.model_id: h.score for h in response.hits})
    models = set().union(*per_concept)
    for best in per_concept:
        worst = max(best.values())
        for model in models:
            totals[model] = totals.get(model, 0.0) + best.get(model, worst)
    return sorted(models, key=lambda m: (totals[m], m))


async def measure_tasks(
    stub: pb_grpc.SearchServiceStub, truth: dict[str, list[str]], seeds: Sequence[int], n_tasks: int
) -> dict[str, dict[int, dict[str, list[float]]]]:
    """method -> task size -> 'top1'/'top5' -> one accuracy per seed."""
    out: dict[str, dict[int, dict[str, list[float]]]] = {}

    def record(method: str, size: int, top1: list[float], top5: list[float]) -> None:
        cell = out.setdefault(method, {}).setdefault(size, {"top1": [], "top5": []})
        cell["top1"].append(float(np.mean(top1)))
        cell["top5"].append(float(np.mean(top5)))

    n_logits = {m: len(c) for m, c in truth.items()}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for size in SIZES:
            owners = sorted(m for m, c in truth.items() if len(set(c)) >= size)
            if not owners:
                continue
            results: dict[str, tuple[list[float], list[float]]] = {}

            def hit(method: str, ranked: list[str], task: set[str], results: dict = results) -> None:
                top1, top5 = results.setdefault(method, ([], []))
                ok = [task <= set(truth[m]) for m in ranked[:5]]
                top1.append(float(bool(ok[:1] and ok[0])))
                top5.append(float(any(ok)))

            for _ in range(n_tasks):
                owner = owners[int(rng.integers(len(owners)))]
                task = [str(c) for c in rng.choice(sorted(set(truth[owner])), size=size, replace=False)]
                for name, aggregation in AGGREGATIONS.items():
                    response = await stub.TaskSearch(task_request(task, top_k=5, aggregation=aggregation))
                    hit(f"TaskSearch ({name})", [m.model_id for m in response.models], set(task))
                hit("naive (Search per concept, summed)", await naive_ranking(stub, task), set(task))
                eligible = [m for m in truth if n_logits[m] >= size]
                correct = sum(set(task) <= set(truth[m]) for m in eligible)
                top1, top5 = results.setdefault("random model with enough logits", ([], []))
                top1.append(correct / len(eligible))
                top5.append(random_top_k(len(eligible), correct, 5))
            for method, (top1, top5) in results.items():
                record(method, size, top1, top5)
    return out


async def measure_similar(
    stub: pb_grpc.SearchServiceStub, truth: dict[str, list[str]], limit: int = 0
) -> tuple[dict[str, tuple[float, float]], int]:
    """Precision@10 and recall@10 (share of the other same-concept logits, up to 10, found) of
    SimilarLogits (calibrated; by raw distance) and of CLIP-text Search; the number of queries."""
    logits = [(m, j, c) for m, cs in truth.items() for j, c in enumerate(cs)]
    carriers: dict[str, int] = {}
    for _, _, c in logits:
        carriers[c] = carriers.get(c, 0) + 1
    queries = [(m, j, c) for m, j, c in logits if carriers[c] > 1]
    if limit and len(queries) > limit:  # a seeded sample of the query logits
        keep = np.random.default_rng(0).choice(len(queries), size=limit, replace=False)
        queries = [queries[i] for i in sorted(keep)]
    n_all = len(logits)
    scores: dict[str, list[float]] = {"SimilarLogits": [], "SimilarLogits by raw distance": [], "CLIP-text Search": []}
    ceiling = []
    found: dict[str, list[float]] = {}
    for model, j, concept in queries:
        response = await stub.SimilarLogits(
            search_pb2.SimilarLogitsRequest(model_id=model, logit_index=j, top_k=min(n_all, 1000))
        )
        hits = list(response.hits)
        by_distance = sorted(hits, key=lambda h: (h.distance, h.model_id, h.logit_index))
        search = await stub.Search(search_pb2.SearchRequest(text=concept, top_k=11))
        text_hits = [h for h in search.hits if (h.model_id, h.logit_index) != (model, j)]
        for name, ranked in (
            ("SimilarLogits", hits), ("SimilarLogits by raw distance", by_distance), ("CLIP-text Search", text_hits),
        ):
            same = sum(truth[h.model_id][h.logit_index] == concept for h in ranked[:10])
            scores[name].append(same / 10)
            found.setdefault(name, []).append(same / min(10, carriers[concept] - 1))
        ceiling.append(min(10, carriers[concept] - 1) / 10)
    out = {name: (float(np.mean(v)), float(np.mean(found[name]))) for name, v in scores.items()}
    out["ceiling (the same-concept logits there are)"] = (float(np.mean(ceiling)), 1.0)
    return out, len(queries)


def synthetic_arrays(
    n_logits: int, n_probes: int, r: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """n_logits random logits in models of 1-20 logits: distinct top-r probes per row, top-r
    z-scores as a peaked descriptor has them, offsets around the world's own, model sizes."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n_probes, size=(n_logits, r), dtype=np.uint16)
    while True:
        dup = (np.diff(np.sort(idx, axis=1), axis=1) == 0).any(axis=1)
        if not dup.any():
            break
        idx[dup] = rng.integers(0, n_probes, size=(int(dup.sum()), r), dtype=np.uint16)
    val = np.sort(1.8 + rng.exponential(0.5, size=(n_logits, r)), axis=1)[:, ::-1].astype(np.float16)
    offsets = rng.normal(6.0, 1.0, size=n_logits).astype(np.float32)
    sizes = []
    left = n_logits
    while left:
        sizes.append(min(left, int(rng.integers(1, 21))))
        left -= sizes[-1]
    return idx, np.ascontiguousarray(val), offsets, np.asarray(sizes)


def synthetic_index(n_logits: int, n_probes: int, r: int, seed: int) -> SparseLogitIndex:
    """:func:`synthetic_arrays` as an index."""
    idx, val, offsets, sizes = synthetic_arrays(n_logits, n_probes, r, seed)
    ids = [f"synthetic-{i:07d}" for i in range(len(sizes))]
    return SparseLogitIndex.from_arrays(n_probes, idx, val, offsets, ids, sizes)


async def measure_latency(
    world: Path, concepts: list[str], n_logits: int, reps: int, store: Path
) -> dict[str, dict[str, float]]:
    """Search and TaskSearch (2, 10, 100 concepts) over a synthetic index, through gRPC."""
    embedded = await build(EmbeddedSettings(world=str(world), store_url=f"file://{store}", cache_dir=""))
    ps_id = embedded.engine.default_probe_set or (await embedded.engine.resolve_probe_set("")).probe_set_id
    n_probes = (await embedded.engine.resolve_probe_set(ps_id)).n_probes
    index = await asyncio.to_thread(synthetic_index, n_logits, n_probes, embedded.engine.r, 0)
    ranker = Ranker.from_indexes({ps_id: index})
    await ranker.warm_up()
    embedded.engine.ranker = ranker  # the same engine and encoder, over the synthetic index
    server = await create_server(embedded.servicers, "127.0.0.1:0")
    await server.set_serving()
    calls = {
        "Search (1 concept)": lambda stub: stub.Search(search_pb2.SearchRequest(text=concepts[0], top_k=10)),
        **{
            f"TaskSearch ({n} concepts)": (
                lambda stub, n=n: stub.TaskSearch(task_request(concepts[:n], top_k=10, min_coverage=1), timeout=300)
            )
            for n in (2, 10, 100)
        },
    }
    wall: dict[str, list[float]] = {name: [] for name in calls}
    cpu: dict[str, list[float]] = {name: [] for name in calls}
    stages: dict[str, list[tuple[int, int]]] = {name: [] for name in calls}
    loads = []
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.SearchServiceStub(channel)
            for call in calls.values():
                await call(stub)  # warm: CLIP, kernels, caches
            for _ in range(reps):
                for name, call in calls.items():
                    c, w = time.process_time(), time.perf_counter()
                    response = await call(stub)
                    wall[name].append(time.perf_counter() - w)
                    cpu[name].append(time.process_time() - c)
                    stages[name].append((response.timings.encode_us, response.timings.rank_us))
                loads.append(os.getloadavg()[0])
    finally:
        await server.stop(0)
        await embedded.close()
    return {
        name: {
            "wall_ms": 1e3 * float(np.median(wall[name])),
            "wall_std_ms": 1e3 * float(np.std(wall[name])),
            "cpu_ms": 1e3 * float(np.median(cpu[name])),
            "encode_ms": float(np.median([e for e, _ in stages[name]])) / 1e3,
            "rank_assign_ms": float(np.median([r for _, r in stages[name]])) / 1e3,
            "load": float(np.mean(loads)),
        }
        for name in calls
    }


async def served_world(world: Path, store: Path) -> tuple[object, grpc.aio.Server, grpc.aio.Channel]:
    embedded = await build(EmbeddedSettings(world=str(world), store_url=f"file://{store}", cache_dir=""))
    server = await create_server(embedded.servicers, "127.0.0.1:0")
    await server.set_serving()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
    stub = pb_grpc.SearchServiceStub(channel)
    source = await stub.ListSourceModels(search_pb2.ListSourceModelsRequest())
    for model in source.models:
        if not model.indexed:
            await stub.IndexModel(search_pb2.IndexModelRequest(model_name=model.model_name), timeout=900)
    return embedded, server, channel


def fmt(values: list[float]) -> str:
    return f"{100 * np.mean(values):.1f} ± {100 * np.std(values):.1f}"


def task_table(results: dict[str, dict[int, dict[str, list[float]]]], n_tasks: int, seeds: Sequence[int]) -> list[str]:
    lines = [
        f"Task accuracy (%), mean ± std over seeds {', '.join(map(str, seeds))}, {n_tasks} tasks per seed and size:",
        "",
        "| method | " + " | ".join(f"top-1 ({s}) | top-5 ({s})" for s in SIZES) + " |",
        "|---|" + "---|---|" * len(SIZES),
    ]
    for method, per_size in results.items():
        cells = []
        for s in SIZES:
            cell = per_size.get(s)
            cells += [fmt(cell["top1"]), fmt(cell["top5"])] if cell else ["-", "-"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", type=Path, action="append", required=True, help="a built world (repeatable)")
    parser.add_argument("--tuning-seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--seeds", type=int, nargs="*", default=[3, 4, 5], help="held-out task seeds")
    parser.add_argument("--tasks", type=int, default=20, help="tasks per seed and size")
    parser.add_argument("--similar-queries", type=int, default=0, help="sample this many query logits; 0: all")
    parser.add_argument("--latency-logits", type=int, default=0, help="synthetic index size; 0 skips latency")
    parser.add_argument("--latency-reps", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    command = "python bench/tasks.py " + " ".join(sys.argv[1:])
    lines = [
        "# Task search and similar logits",
        "",
        f"Produced by `{command}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, "
        f"{platform.machine()}, {os.cpu_count()} cores, shared with other work (load average below).",
        "",
    ]
    report: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for w, world in enumerate(args.world):
            truth = {m: v["concepts"] for m, v in json.loads((world / "ground_truth.json").read_text())["models"].items()}
            embedded, server, channel = await served_world(world, Path(tmp) / f"store-{w}")
            try:
                stub = pb_grpc.SearchServiceStub(channel)
                n_logits = sum(len(c) for c in truth.values())
                lines += [f"## {world.name}: {len(truth)} models, {n_logits} logits", ""]
                for label, seeds in (("tuning", args.tuning_seeds), ("held-out", args.seeds)):
                    if not seeds:
                        continue
                    started = time.perf_counter()
                    results = await measure_tasks(stub, truth, seeds, args.tasks)
                    report[f"{world.name}/{label}"] = results
                    lines += [f"### Tasks, {label} seeds ({time.perf_counter() - started:.0f} s)", ""]
                    lines += [*task_table(results, args.tasks, seeds), ""]
                similar, n_queries = await measure_similar(stub, truth, args.similar_queries)
                report[f"{world.name}/similar"] = similar
                lines += [
                    f"### SimilarLogits over {n_queries} logits whose concept another logit carries",
                    "",
                    "| method | share of the top-10 with the same concept | share of the same-concept logits "
                    "(up to 10) in the top-10 |",
                    "|---|---|---|",
                    *(f"| {name} | {100 * p:.1f}% | {100 * r:.1f}% |" for name, (p, r) in similar.items()),
                    "",
                ]
            finally:
                await channel.close()
                await server.stop(0)
                await embedded.close()
        if args.latency_logits:
            concepts = [c["name"] for c in json.loads((args.world[0] / "concepts.json").read_text()) if c["level"] == "fine"][:100]
            latency = await measure_latency(args.world[0], concepts, args.latency_logits, args.latency_reps, Path(tmp) / "lat")
            report["latency"] = latency
            lines += [
                f"## Latency over a synthetic index of {args.latency_logits:,} logits "
                f"(medians of {args.latency_reps} interleaved calls through gRPC; server and client in one process)",
                "",
                "| call | wall (ms) | std (ms) | process CPU (ms) | encode (ms) | rank + assign (ms) | load average |",
                "|---|---|---|---|---|---|---|",
                *(
                    f"| {name} | {v['wall_ms']:.0f} | {v['wall_std_ms']:.0f} | {v['cpu_ms']:.0f} | "
                    f"{v['encode_ms']:.0f} | {v['rank_assign_ms']:.0f} | {v['load']:.2f} |"
                    for name, v in latency.items()
                ),
                "",
            ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
