"""Evidence benchmark (issue #17) -- not a test: what asking for evidence costs a Search, and what
a results page's thumbnails cost, through the public API.

    python bench/evidence.py --world .data/world-tiny-seed0 --reps 30 --out bench/results/evidence.md

The world is served embedded in this process (an on-disk store in a temporary directory, every
hub model indexed through IndexModel). Search calls with evidence_probes 0 (the default), 8 and
50 are interleaved, one of each per round, so that the host's load falls on all of them alike;
wall time and this process's CPU time (server and client together) are taken per call, and the
ratios to the call without evidence are of the medians. GetProbeImages asks for the thumbnails a
results page shows (each hit's 8 evidence probes): once cold (encoded, then cached) and then
warm.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np
from tasks import served_world  # bench/tasks.py: the world served embedded, its hub indexed

from probelog.v1 import search_pb2
from probelog.v1 import search_pb2_grpc as pb_grpc

QUERIES = ("plain red square", "purple zigzag star", "blue checkered heart", "plain green circle")
EVIDENCE = (0, 8, 50)


async def timed(call: Callable[[], Awaitable[object]]) -> tuple[float, float, object]:
    c, w = time.process_time(), time.perf_counter()
    result = await call()
    return time.perf_counter() - w, time.process_time() - c, result


async def measure(world: Path, reps: int, store: Path) -> tuple[dict[str, dict[str, float]], float, float]:
    embedded, server, channel = await served_world(world, store)
    stub = pb_grpc.SearchServiceStub(channel)
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    loads = []
    counts = []  # thumbnails per page

    def record(name: str, w: float, c: float) -> None:
        wall.setdefault(name, []).append(w)
        cpu.setdefault(name, []).append(c)

    try:
        for n in EVIDENCE:  # warm: CLIP, kernels, the store's files
            await stub.Search(search_pb2.SearchRequest(text=QUERIES[0], top_k=10, one_hit_per_model=True, evidence_probes=n))
        for i in range(reps):
            text = QUERIES[i % len(QUERIES)]
            for n in EVIDENCE:
                request = search_pb2.SearchRequest(text=text, top_k=10, one_hit_per_model=True, evidence_probes=n)
                w, c, response = await timed(lambda request=request: stub.Search(request))
                record(f"Search, top 10, evidence_probes={n}", w, c)
            indices = sorted({e.probe_index for h in response.hits for e in h.evidence[:8]})[:100]
            images = search_pb2.GetProbeImagesRequest(probe_indices=indices, size_px=64)
            w, c, _ = await timed(lambda images=images: stub.GetProbeImages(images))
            record(f"GetProbeImages, a page's thumbnails (64 px), {'cold' if i == 0 else 'warm'}", w, c)
            counts.append(len(indices))
            loads.append(os.getloadavg()[0])
    finally:
        await channel.close()
        await server.stop(0)
        await embedded.close()
    rows = {
        name: {"n": len(wall[name]), "wall_ms": 1e3 * float(np.median(wall[name])), "cpu_ms": 1e3 * float(np.median(cpu[name]))}
        for name in wall
    }
    return rows, float(np.mean(loads)), float(np.mean(counts))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world", type=Path, required=True, help="a built world")
    parser.add_argument("--reps", type=int, default=30, help="rounds of interleaved calls")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    command = "python bench/evidence.py " + " ".join(sys.argv[1:])
    with tempfile.TemporaryDirectory() as tmp:
        rows, load, per_page = await measure(args.world, args.reps, Path(tmp) / "store")
    base = rows[f"Search, top 10, evidence_probes={EVIDENCE[0]}"]
    lines = [
        "# Evidence per hit and probe thumbnails",
        "",
        f"Produced by `{command}` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{os.cpu_count()} cores, shared with other work: mean 1-minute load average {load:.2f} during the run.",
        f"World {args.world.name}; server and client in one process; medians over the calls (n). A page's "
        f"thumbnails: the distinct evidence probes of its 10 hits, {per_page:.0f} on average.",
        "",
        "| call | n | wall ms | CPU ms | wall / Search without evidence | CPU / Search without evidence |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['n']} | {row['wall_ms']:.2f} | {row['cpu_ms']:.2f} | "
            f"{row['wall_ms'] / base['wall_ms']:.2f} | {row['cpu_ms'] / base['cpu_ms']:.2f} |"
        )
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    asyncio.run(main())
