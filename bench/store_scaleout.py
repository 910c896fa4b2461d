"""The descriptor store on one Redis against a 3-master Redis Cluster on loopback, in one run.

Both are real ``redis-server`` processes started here (tools/probelog_devstack/redis_server.py).
Each round writes ``--models`` models of ``--logits`` logits (r = 50, a probe set of
``--probes`` probes) through ``RedisDescriptorStore.put_model`` (one MULTI/EXEC each, with its
change-feed entry), ``--concurrency`` at a time, then reads them all back with their descriptors
(``get_model``), on the single Redis and on the cluster in turn; the rounds alternate so that
both see the same host load. Reported per phase: the median over rounds of wall time, models/s
and logits/s, and CPU time of this process (the client: encoding, redis-py) and of the
redis-server processes (from /proc). Then the bytes per logit: Redis memory (``used_memory`` of
every master, before and after the writes) and the ranker's index arrays for the same models.

    nice -n 10 .venv/bin/python bench/store_scaleout.py

Results go to bench/results/scaleout-store.md (and stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "services"), str(REPO), str(REPO / "tools")]

import numpy as np  # noqa: E402
import redis.asyncio as aioredis  # noqa: E402

from probelog.core.distance import DEFAULT_R, logit_entries  # noqa: E402
from probelog.core.index import SparseLogitIndex  # noqa: E402
from probelog.descriptor_store.config import StoreSettings  # noqa: E402
from probelog.descriptor_store.redis_store import RedisDescriptorStore  # noqa: E402
from probelog.v1 import types_pb2  # noqa: E402
from probelog_devstack import redis_server  # noqa: E402

#: Distinct random models generated; the rest reuse their descriptors under other ids.
_DISTINCT = 64
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def labels(n_logits: int) -> list[str]:
    """Class names of about the length of ImageNet's (a median of 9 characters)."""
    return [f"class {j:03d}" for j in range(n_logits)]


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


@dataclass
class Backend:
    name: str
    url: str
    cluster: bool
    pids: list[int]
    ports: list[int]
    samples: dict[str, list[tuple[float, float, float]]] = field(default_factory=dict)
    memory: list[int] = field(default_factory=list)


async def used_memory(backend: Backend) -> int:
    """``used_memory`` summed over the backend's masters."""
    total = 0
    for port in backend.ports:
        client = aioredis.Redis(host="127.0.0.1", port=port)
        try:
            total += int((await client.info("memory"))["used_memory"])
        finally:
            await client.aclose()
    return total


async def timed(backend: Backend, phase: str, work: Callable[[], Awaitable[None]]) -> None:
    servers = sum(proc_cpu_s(p) for p in backend.pids)
    cpu, wall = time.process_time(), time.perf_counter()
    await work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    servers = sum(proc_cpu_s(p) for p in backend.pids) - servers
    backend.samples.setdefault(phase, []).append((wall, cpu, servers))


async def one_round(backend: Backend, models: list[Any], args: argparse.Namespace) -> None:
    store = RedisDescriptorStore.from_settings(StoreSettings(
        store_url=backend.url, redis_cluster=backend.cluster, redis_key_prefix="b" + uuid.uuid4().hex[:8],
    ))
    await store.open()
    try:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (args.probes, 8, 8, 3), dtype=np.uint8)
        ps, _ = await store.put_probe_set("bench", images)
        slots = asyncio.Semaphore(args.concurrency)
        ids = [f"hub/model-{i:07d}" for i in range(args.models)]

        async def put(i: int) -> None:
            entries, offsets = models[i % len(models)]
            info = types_pb2.ModelInfo(
                model_id=ids[i], probe_set_id=ps.probe_set_id, n_logits=entries.n_logits, r=entries.r,
                labels=labels(entries.n_logits),
            )
            async with slots:
                await store.put_model(info, entries, offsets)

        async def get(i: int) -> None:
            async with slots:
                await store.get_model(ps.probe_set_id, ids[i], include_descriptors=True)

        before = await used_memory(backend)
        await timed(backend, "write", lambda: _gather(put, args.models))
        backend.memory.append(await used_memory(backend) - before)
        await timed(backend, "read", lambda: _gather(get, args.models))
        # Free the round's keys so that every round starts from the same memory.
        for port in backend.ports:
            client = aioredis.Redis(host="127.0.0.1", port=port)
            await client.flushall()
            await client.aclose()
    finally:
        await store.close()


async def _gather(fn: Callable[[int], Awaitable[None]], n: int) -> None:
    await asyncio.gather(*(fn(i) for i in range(n)))


def make_models(args: argparse.Namespace) -> list[Any]:
    rng = np.random.default_rng(1)
    out = []
    for _ in range(_DISTINCT):
        logits = rng.normal(size=(args.logits, args.probes)).astype(np.float32)
        out.append((logit_entries(logits, DEFAULT_R), rng.normal(size=args.logits).astype(np.float32)))
    return out


def ranker_bytes_per_logit(models: list[Any], args: argparse.Namespace) -> tuple[float, int]:
    """The ranker's index arrays per logit (float16 values, as served), over ``_DISTINCT``
    models of ``--logits`` logits."""
    index = SparseLogitIndex(args.probes, DEFAULT_R, np.float16)
    for i, (entries, offsets) in enumerate(models):
        index.add(f"m{i}", entries, offsets, labels(entries.n_logits))
    stats = index.stats()
    return stats.index_bytes / stats.n_logits, stats.n_logits


def fmt_row(name: str, phase: str, samples: list[tuple[float, float, float]], n_models: int, n_logits: int) -> str:
    wall = statistics.median(s[0] for s in samples)
    cpu = statistics.median(s[1] for s in samples)
    servers = statistics.median(s[2] for s in samples)
    return (
        f"| {name} | {phase} | {wall:.2f} | {n_models / wall:,.0f} | {n_logits / wall:,.0f} | "
        f"{cpu:.2f} | {servers:.2f} | {n_models / (cpu + servers):,.0f} |"
    )


async def run(args: argparse.Namespace) -> str:
    work = Path(tempfile.mkdtemp(prefix="store-scaleout-"))
    single = redis_server.start(work / "single")
    cluster = redis_server.start_cluster(work / "cluster")
    backends = [
        Backend("one Redis", single.url, False, [single.proc.pid], [single.port]),
        Backend("Redis Cluster, 3 masters", cluster.url, True, [m.proc.pid for m in cluster.masters],
                [m.port for m in cluster.masters]),
    ]
    models = make_models(args)
    load_before = os.getloadavg()
    started = dt.datetime.now(dt.UTC)
    try:
        for _ in range(args.rounds):
            for backend in backends:
                await one_round(backend, models, args)
    finally:
        single.stop()
        cluster.stop()
    load_after = os.getloadavg()
    per_logit_ranker, ranker_logits = ranker_bytes_per_logit(models, args)
    n_logits = args.models * args.logits
    lines = [
        "# Store throughput: one Redis vs a 3-master Redis Cluster (loopback)",
        "",
        f"Command: `nice -n 10 .venv/bin/python bench/store_scaleout.py {shlex.join(sys.argv[1:])}` "
        f"({started:%Y-%m-%d %H:%M} UTC, one run).",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores shared with other work; load average "
        f"{' / '.join(f'{x:.1f}' for x in load_before)} before, {' / '.join(f'{x:.1f}' for x in load_after)} after; "
        f"Python {platform.python_version()}, redis-server from Debian, redis-py's asyncio client "
        "(the cluster client for the cluster).",
        "",
        f"Workload: {args.models:,} models of {args.logits} logits ({n_logits:,} logits), r = {DEFAULT_R}, "
        f"{args.probes:,} probes, {args.concurrency} calls in flight; each write is one MULTI/EXEC "
        "(model record, listing entry, change-feed entry) in the model's partition. Medians of "
        f"{args.rounds} rounds, the two backends alternating. *Client CPU*: this process; "
        "*server CPU*: every redis-server of the backend (/proc).",
        "",
        "| backend | phase | wall s | models/s | logits/s | client CPU s | server CPU s | models per CPU-s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in ("write", "read"):
        for backend in backends:
            lines.append(fmt_row(backend.name, phase, backend.samples[phase], args.models, n_logits))
    single_b, cluster_b = backends
    lines += ["", "Cluster vs one Redis (medians):", ""]
    for phase in ("write", "read"):
        walls = [statistics.median(s[0] for s in b.samples[phase]) for b in backends]
        cpus = [statistics.median(s[1] + s[2] for s in b.samples[phase]) for b in backends]
        lines.append(
            f"- {phase}: wall time x{walls[1] / walls[0]:.2f}, CPU time (client + servers) x{cpus[1] / cpus[0]:.2f}"
        )
    per_logit = {b.name: statistics.median(b.memory) / n_logits for b in backends}
    lines += [
        "",
        "## Bytes per logit",
        "",
        f"- Redis (`used_memory` after minus before the writes, all masters): one Redis "
        f"{per_logit[single_b.name]:.0f} B, cluster {per_logit[cluster_b.name]:.0f} B "
        f"(the record: {DEFAULT_R} uint32 indices + {DEFAULT_R} float32 values = {DEFAULT_R * 8} B, "
        "plus an offset, a label and the keys).",
        f"- Ranker index arrays (float16 values, as served; {ranker_logits:,} logits; labels not "
        f"counted): {per_logit_ranker:.0f} B.",
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=2000)
    parser.add_argument("--logits", type=int, default=57)
    parser.add_argument("--probes", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "scaleout-store.md"))
    args = parser.parse_args()
    text = asyncio.run(run(args))
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
