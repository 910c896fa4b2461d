"""Serving benchmark -- not a test: Search latency and throughput of two versions of the server,
side by side in one run, on a world's hub and on a synthetic hub.

    python bench/serving.py --world .data/world-tiny-seed0 --baseline-rev 913ffac \\
        --synthetic-logits 100000 --out bench/results/serving.md

The baseline is the tree of ``--baseline-rev`` (``git archive``), the candidate this checkout.
Each runs as ``probelog serve --embedded`` in a process of its own over a copy of the same
on-disk store: the world's hub indexed through IndexModel, or ``--synthetic-logits`` random logits
(bench/tasks.py's generator) written into the store for the world's probe set. The two servers
take turns (baseline, candidate, baseline, candidate, ...), one workload at a time:

- sequential: one client, distinct texts, one call at a time;
- concurrent: 16 clients in closed loops; 30% of the calls repeat a text asked before.

Reported per server: p50 and p99 of the client's wall time per call, calls per second, and the
server process's CPU time per call (utime + stime from /proc), with the host's load average.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "services"))
sys.path.insert(0, str(REPO / "bench"))

from tasks import synthetic_arrays  # noqa: E402

from probelog.core.distance import LogitEntries  # noqa: E402
from probelog.descriptor_store.file_store import FileDescriptorStore  # noqa: E402
from probelog.v1 import search_pb2, types_pb2  # noqa: E402
from probelog.v1 import search_pb2_grpc as pb_grpc  # noqa: E402

CLIENTS = 16
REPEAT_SHARE = 0.3
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    port: int

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start(name: str, services: Path, world: Path, store: Path, work: Path) -> Server:
    ready = work / f"{name}.port"
    ready.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(services), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "probelog.cli", "serve", "--embedded", "--world", str(world),
           "--store-url", f"file://{store}", "--cache-dir", "", "--host", "127.0.0.1", "--port", "0",
           "--ready-file", str(ready)]
    with (work / f"{name}.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    deadline = time.monotonic() + 600
    while not (ready.exists() and ready.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start:\n{(work / f'{name}.log').read_text()[-3000:]}")
        time.sleep(0.1)
    return Server(name, proc, int(ready.read_text()))


def index_world(services: Path, world: Path, store: Path, work: Path) -> None:
    server = start("indexer", services, world, store, work)
    try:
        env = dict(os.environ, PYTHONPATH=str(services))
        subprocess.run([sys.executable, "-m", "probelog.cli", "index", "--all", "--quiet",
                        "--address", f"127.0.0.1:{server.port}"], check=True, env=env)
    finally:
        server.stop()


async def write_synthetic(store_dir: Path, n_logits: int, r: int) -> None:
    """``n_logits`` random logits (bench/tasks.py's generator) as models of 1-20 logits, written
    for the store's one probe set."""
    store = FileDescriptorStore(store_dir)
    await store.open()
    (probe_set,) = await store.list_probe_sets()
    idx, val, offsets, sizes = synthetic_arrays(n_logits, probe_set.n_probes, r, seed=0)
    start = 0
    for m, size in enumerate(sizes.tolist()):
        rows = slice(start, start + size)
        entries = LogitEntries(idx[rows].astype(np.int64), val[rows].astype(np.float32), probe_set.n_probes)
        info = types_pb2.ModelInfo(model_id=f"synthetic-{m:06d}", probe_set_id=probe_set.probe_set_id, n_logits=size, r=r)
        await store.put_model(info, entries, offsets[rows])
        start += size
    await store.close()


@dataclass
class Result:
    wall: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    cpu: float = 0.0
    calls: int = 0
    loads: list[float] = field(default_factory=list)


async def workload(server: Server, texts: list[list[str]], result: Result) -> None:
    """Each client asks its texts in a closed loop; wall time per call, server CPU time."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb_grpc.SearchServiceStub(channel)

        async def client(mine: list[str]) -> None:
            for text in mine:
                started = time.perf_counter()
                await stub.Search(search_pb2.SearchRequest(text=text, top_k=10), timeout=120)
                result.wall.append(time.perf_counter() - started)

        cpu, started = server.cpu_s(), time.perf_counter()
        await asyncio.gather(*(client(mine) for mine in texts))
        result.elapsed += time.perf_counter() - started
        result.cpu += server.cpu_s() - cpu
        result.calls += sum(len(mine) for mine in texts)
        result.loads.append(os.getloadavg()[0])


def streams(names: list[str], clients: int, per_client: int, repeat: float, seed: int) -> list[list[str]]:
    """Texts per client: fresh ones in order, and with probability ``repeat`` one asked before."""
    rng = random.Random(seed)
    fresh = iter(names)
    asked: list[str] = []
    out: list[list[str]] = [[] for _ in range(clients)]
    for _ in range(per_client):
        for mine in out:
            text = rng.choice(asked) if asked and rng.random() < repeat else next(fresh)
            asked.append(text)
            mine.append(text)
    return out


def query_texts(world: Path, n: int, round_: int) -> list[str]:
    """``n`` distinct texts from the world's concept names, different in every round."""
    names = [c["name"] for c in json.loads((world / "concepts.json").read_text())]
    forms = ["{}", "a photo of a {}", "a {} on a plain background", "an image showing a {}", "a close-up of a {}",
             "a small {}", "a large {}", "a drawing of a {}"]
    texts = [f.format(name) for f in forms for name in names]
    random.Random(round_).shuffle(texts)
    if len(texts) < n:
        raise SystemExit(f"the world has {len(texts)} distinct texts, {n} needed")
    return texts[:n]


def pct(values: list[float], q: float) -> float:
    return 1e3 * float(np.percentile(values, q))


async def run_hub(label: str, servers: list[Server], world: Path, rounds: int, seq_calls: int, per_client: int) -> list[str]:
    results = {(s.name, w): Result() for s in servers for w in ("sequential", "concurrent")}
    for server in servers:  # warm: probe-set embeddings, kernels (texts not among the queries)
        await workload(server, [["warm-up call", "another warm-up call"]], Result())
    for round_ in range(rounds):
        texts = query_texts(world, seq_calls + CLIENTS * per_client, 100 + round_)
        for server in servers:  # the same texts for both, never asked of that server before
            await workload(server, [texts[:seq_calls]], results[(server.name, "sequential")])
        for server in servers:
            conc = streams(texts[seq_calls:], CLIENTS, per_client, REPEAT_SHARE, round_)
            await workload(server, conc, results[(server.name, "concurrent")])
    lines = [f"### {label}", "", "| server | workload | p50 ms | p99 ms | calls/s | server CPU ms/call | load (1 min) |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for (name, kind), res in results.items():
        lines.append(
            f"| {name} | {kind} | {pct(res.wall, 50):.1f} | {pct(res.wall, 99):.1f} | {res.calls / res.elapsed:.1f} | "
            f"{1e3 * res.cpu / res.calls:.2f} | {np.mean(res.loads):.2f} |"
        )
    ratios = []
    for kind in ("sequential", "concurrent"):
        before, after = results[(servers[0].name, kind)], results[(servers[1].name, kind)]
        ratios.append(
            f"- {kind}: p50 {pct(before.wall, 50) / pct(after.wall, 50):.2f}x lower, calls/s "
            f"{(after.calls / after.elapsed) / (before.calls / before.elapsed):.2f}x, server CPU per call "
            f"{before.cpu / max(after.cpu, 1e-9):.2f}x lower ({servers[1].name} vs {servers[0].name})"
        )
    return [*lines, "", *ratios, ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", type=Path, required=True)
    parser.add_argument("--baseline-rev", required=True, help="git revision of the baseline server")
    parser.add_argument("--synthetic-logits", type=int, default=100_000, help="0 skips the synthetic hub")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sequential-calls", type=int, default=100)
    parser.add_argument("--per-client", type=int, default=25, help="calls per concurrent client per round")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    command = "python bench/serving.py " + " ".join(sys.argv[1:])
    world = args.world.resolve()
    report = [
        "# Serving: Search latency and throughput, baseline and candidate side by side", "",
        f"Command: `{command}`", "",
        f"Run {dt.date.today().isoformat()} on {platform.machine()}, {os.cpu_count()} CPUs (shared host: "
        "the load average is reported beside each figure). Servers take turns workload by workload; "
        f"{args.rounds} rounds, texts never asked of a server before (sequential) or 30% repeats "
        f"(concurrent, {CLIENTS} clients x {args.per_client} calls a round).", "",
        f"Baseline: `{args.baseline_rev}`; candidate: "
        f"`{subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True, cwd=REPO).stdout.strip()}`"
        " and its working tree.", "",
    ]
    with tempfile.TemporaryDirectory(prefix="probelog-serving-") as tmp:
        work = Path(tmp)
        baseline = work / "baseline"
        baseline.mkdir()
        archive = subprocess.run(["git", "archive", args.baseline_rev, "services"], cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive.stdout, check=True)
        trees = {"baseline": baseline / "services", "candidate": REPO / "services"}
        hubs = [("world hub", "world")]
        if args.synthetic_logits:
            hubs.append((f"synthetic hub of {args.synthetic_logits:,} logits", "synthetic"))
        for label, kind in hubs:
            store = work / f"store-{kind}"
            print(f"[serving] preparing the {label}", file=sys.stderr)
            if kind == "world":
                index_world(trees["candidate"], world, store, work)
            else:
                index_world(trees["candidate"], world, store, work)  # registers the probe set
                shutil.rmtree(store / "models")
                (store / "changes.log").unlink()
                (store / "models").mkdir()
                asyncio.run(write_synthetic(store, args.synthetic_logits, r=50))
            servers = []
            try:
                for name, tree in trees.items():
                    copy = work / f"{kind}-{name}"
                    shutil.copytree(store, copy)
                    servers.append(start(name, tree, world, copy, work))
                print(f"[serving] measuring the {label}", file=sys.stderr)
                report += asyncio.run(run_hub(label, servers, world, args.rounds, args.sequential_calls, args.per_client))
            finally:
                for server in servers:
                    server.stop()
    text = "\n".join(report)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
