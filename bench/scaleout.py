"""Bulk indexing through 1, 2 and 4 workers on the Redis Streams work queue, in one run per hub.

For each world: Redis, tritonserver and the five services as processes (the dev stack, its
orchestrator with the work queue), then for N in --workers: N `probelog serve indexer`
processes (one worker each), EnqueueIndexing(all, reindex) and the wall time until every model
is done. CPU time (user + system, from /proc, children included) is read for every process
before and after, and divided by the models indexed: what each stage costs per model.
Then a worker is killed (SIGKILL) while it holds a claim (its runner is stopped with SIGSTOP,
so it hangs on the model it claimed) and the time until another worker has taken that model over
and finished it is measured, with the claim timeout it ran under.

    .venv/bin/python bench/scaleout.py --world .data/world-tiny-seed0 --world .data/world-demo-seed0

Results go to bench/results/scaleout.md (the "## Indexing workers" section) and stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import shlex
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "services"), str(REPO), str(REPO / "tools")]

import redis  # noqa: E402

from probelog.client import ProbeLogClient  # noqa: E402
from probelog_devstack import free_port  # noqa: E402
from probelog_devstack.stack import DevStack, ServiceProcess, StackSpec  # noqa: E402

RESULTS = REPO / "bench" / "results" / "scaleout.md"
SECTION = "## Indexing workers"
QUEUE = "{probelog:index}"
#: The claim timeout of the workers in the kill measurement (s).
CLAIM_TIMEOUT_S = 10.0
#: The paper-scale target of the projection.
TARGET_MODELS, TARGET_LOGITS = 1_000_000, 57
#: Assumption, not measured here: the ProbeLog paper puts probing a million models at about
#: 3,300 GPU hours, i.e. 11.9 GPU seconds per model.
PAPER_GPU_HOURS = 3300.0
#: Deadlines the projection is worked out for (hours).
TARGET_HOURS = (24.0, 168.0)
TICKS = os.sysconf("SC_CLK_TCK")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live descendants, and of the children they reaped."""
    tree = _children()
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # utime, stime, cutime, cstime: fields 14-17 of stat, 12-15 after the command name.
        total += sum(int(f) for f in fields[11:15]) / TICKS
        todo += tree.get(current, [])
    return total


@dataclass
class Run:
    hub: str
    n_models: int
    workers: int
    wall_s: float
    cpu_s: dict[str, float]
    mean_logits: float = 0.0


def mean_logits(world: str) -> float:
    from probelog.common.world_layout import WorldLayout

    models = WorldLayout.at(world).models_truth()
    return sum(len(m["concepts"]) for m in models.values()) / len(models)


def projection(cpu_per_model: dict[str, float], logits: float) -> list[str]:
    """The workers and GPUs for TARGET_MODELS, from the measured CPU per model and the paper's
    GPU time (the arithmetic, written out)."""
    gpu_s = PAPER_GPU_HOURS * 3600 / TARGET_MODELS
    worker = cpu_per_model["indexer workers"] * TARGET_LOGITS / logits
    rest = sum(v for k, v in cpu_per_model.items() if k not in ("indexer workers", "tritonserver"))
    cpu = worker + rest
    lines = [
        f"### {TARGET_MODELS:,} models of {TARGET_LOGITS} logits, on paper", "",
        f"- GPU time per model (assumption, not measured here): the ProbeLog paper's estimate of about "
        f"{PAPER_GPU_HOURS:,.0f} GPU hours for {TARGET_MODELS:,} models, g = {PAPER_GPU_HOURS:,.0f} x 3600 / "
        f"{TARGET_MODELS:,} = {gpu_s:.2f} GPU s per model. On this host the same work is tritonserver's CPU "
        f"time above (onnxruntime on the CPU): the stage that bounds indexing here.",
        f"- CPU time per model outside Triton (measured, the run with the most workers on the last hub): the "
        f"worker's {cpu_per_model['indexer workers']:.3f} s scaled to {TARGET_LOGITS} logits from this hub's "
        f"{logits:.1f} (descriptors and calibration grow with the logits) = {worker:.3f} s, plus "
        f"{rest:.3f} s in the probe runner, store, Redis, ranker, orchestrator and encoder: c = {cpu:.3f} CPU s per model.",
        f"- Total: {TARGET_MODELS:,} x {gpu_s:.2f} s = {PAPER_GPU_HOURS:,.0f} GPU hours and "
        f"{TARGET_MODELS:,} x {cpu:.3f} s = {TARGET_MODELS * cpu / 3600:,.0f} CPU hours.",
        "",
        "| finish in | models/s | Triton GPUs = 3,300 h / T | workers = GPUs x (g + c) / g, one model in flight per GPU | CPU cores = models/s x c |",
        "|---|---:|---:|---:|---:|",
    ]
    for hours in TARGET_HOURS:
        rate = TARGET_MODELS / (hours * 3600)
        gpus = -(-PAPER_GPU_HOURS // hours)
        workers = -(-gpus * (gpu_s + cpu) // gpu_s)
        lines.append(
            f"| {hours:.0f} h | {rate:.2f} | {gpus:.0f} | {workers:.0f} | {rate * cpu:.1f} |"
        )
    lines += [
        "",
        "A worker holds one model at a time and waits on Triton for most of it, so about one worker per GPU "
        "keeps the GPUs busy; more workers only queue at Triton (and Triton's dynamic batching does not merge "
        "probes of different models). The CPU side is a few cores, not a bound.",
        "",
    ]
    return lines


def reset_queue(url: str) -> None:
    redis.Redis.from_url(url).delete(*(f"{QUEUE}:{k}" for k in ("stream", "queued", "running", "done", "failed", "errors")))


def indexer(stack: DevStack, name: str, runner: str = "", claim_timeout_s: float = 60.0) -> ServiceProcess:
    services = stack.services
    process = ServiceProcess(name, [
        "indexer", *stack.spec.orchestrator_flags, "--store-address", services["descriptor-store"].address,
        "--runner-address", runner or services["probe-runner"].address,
        "--encoder-address", services["clip-encoder"].address, "--ranker-addresses", services["ranker"].address,
        "--index-queue-url", stack.redis.url, "--index-claim-timeout-s", str(claim_timeout_s), "--log-level", "WARNING",
    ], free_port(), stack.spec.workdir)
    process.launch()
    return process


async def progress(address: str):
    async with ProbeLogClient(address) as client:
        return await client.indexing_progress()


async def enqueue_all(address: str) -> int:
    async with ProbeLogClient(address) as client:
        return (await client.enqueue_indexing(all_models=True, reindex=True)).enqueued


def pids(stack: DevStack, workers: list[ServiceProcess]) -> dict[str, list[int]]:
    s = stack.services
    return {
        "indexer workers": [w.proc.pid for w in workers],
        "probe runner": [s["probe-runner"].proc.pid],
        "tritonserver": [stack.triton.proc.pid],
        "descriptor store": [s["descriptor-store"].proc.pid],
        "redis": [stack.redis.proc.pid],
        "ranker": [s["ranker"].proc.pid],
        "orchestrator (queues)": [s["orchestrator"].proc.pid],
        "CLIP encoder": [s["clip-encoder"].proc.pid],
    }


def measure(stack: DevStack, world: str, n_workers: int) -> Run:
    hub = Path(world).name
    reset_queue(stack.redis.url)
    workers = [indexer(stack, f"bench-indexer-{n_workers}-{i}") for i in range(n_workers)]
    try:
        for w in workers:
            w.wait_ready()
        processes = pids(stack, workers)
        before = {k: sum(cpu_seconds(p) for p in v) for k, v in processes.items()}
        started = time.perf_counter()
        n = asyncio.run(enqueue_all(stack.address))
        while True:
            p = asyncio.run(progress(stack.address))
            if p.done + p.failed >= n:
                break
            time.sleep(0.1)
        wall = time.perf_counter() - started
        after = {k: sum(cpu_seconds(p) for p in v) for k, v in processes.items()}
        if p.failed:
            raise RuntimeError(f"{p.failed} models failed: {list(p.failures)}")
    finally:
        for w in workers:
            w.stop()
    run = Run(hub, n, n_workers, wall, {k: after[k] - before[k] for k in before}, mean_logits(world))
    print(f"{hub}: {n_workers} workers, {n} models in {wall:.1f} s ({n / wall:.2f} models/s); "
          f"CPU {sum(run.cpu_s.values()):.1f} s", flush=True)
    return run


def measure_kill(stack: DevStack) -> dict[str, float | str]:
    """A worker killed while it holds a claim: seconds until another worker finished its model."""
    reset_queue(stack.redis.url)
    s = stack.services
    frozen = ServiceProcess("bench-runner-frozen", [
        "probe-runner", "--runner", stack.triton.url, "--store-address", s["descriptor-store"].address,
    ], free_port(), stack.spec.workdir)
    frozen.launch()
    frozen.wait_ready()
    survivor = None
    try:
        os.kill(frozen.proc.pid, signal.SIGSTOP)
        victim = indexer(stack, "bench-victim", runner=frozen.address, claim_timeout_s=CLAIM_TIMEOUT_S)
        victim.wait_ready()
        client = redis.Redis.from_url(stack.redis.url)
        n = asyncio.run(enqueue_all(stack.address))
        while not client.smembers(f"{QUEUE}:running"):
            time.sleep(0.05)
        (lost,) = client.smembers(f"{QUEUE}:running")
        claimed = time.perf_counter()
        victim.proc.send_signal(signal.SIGKILL)
        victim.proc.wait()
        killed = time.perf_counter()
        survivor = indexer(stack, "bench-survivor", claim_timeout_s=CLAIM_TIMEOUT_S)
        survivor.wait_ready()
        serving = time.perf_counter()
        while not client.sismember(f"{QUEUE}:done", lost):
            time.sleep(0.05)
        lost_done = time.perf_counter()
        while asyncio.run(progress(stack.address)).done < n:
            time.sleep(0.1)
        all_done = time.perf_counter()
    finally:
        os.kill(frozen.proc.pid, signal.SIGCONT)
        frozen.stop()
        if survivor is not None:
            survivor.stop()
    result: dict[str, float | str] = {
        "models": n, "lost": lost.decode(), "claim_timeout_s": CLAIM_TIMEOUT_S,
        "claim_to_kill_s": killed - claimed, "kill_to_survivor_serving_s": serving - killed,
        "kill_to_lost_done_s": lost_done - killed, "kill_to_all_done_s": all_done - killed,
    }
    print(f"kill: {result}", flush=True)
    return result


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def report(runs: list[Run], kill: dict[str, float | str], command: str, load: list[str], took_s: float) -> str:
    lines = [
        SECTION, "",
        f"Command: `{command}`  ",
        f"Machine: {os.cpu_count()} cores, shared with other jobs; Python {platform.python_version()}; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {took_s:.0f} s in all. "
        f"Host load average (1, 5, 15 min) before and after: {load[0]} / {load[-1]}.",
        "",
        "Redis, tritonserver (Python backend running onnxruntime, on the CPU) and the five services run "
        "as processes on loopback (the dev stack). N `probelog serve indexer` processes (one worker each) "
        "claim from the queue; `EnqueueIndexing(all, reindex)` queues the hub and the clock stops when "
        "every model is done. CPU is user + system time from /proc (descendants included), per model.",
        "",
        "| hub | models | workers | wall s | models/s | speed-up vs 1 | CPU s/model (all processes) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in runs:
        base = next(r for r in runs if r.hub == run.hub and r.workers == runs[0].workers)
        cpu = sum(run.cpu_s.values()) / run.n_models
        lines.append(
            f"| {run.hub} | {run.n_models} | {run.workers} | {run.wall_s:.1f} | {run.n_models / run.wall_s:.2f} "
            f"| {base.wall_s / run.wall_s:.2f} | {cpu:.2f} |"
        )
    stages = list(runs[0].cpu_s)
    lines += ["", "CPU seconds per model, by process (what bounds indexing on this host):", "",
              "| hub | workers | " + " | ".join(stages) + " |",
              "|---|---:|" + "---:|" * len(stages)]
    for run in runs:
        lines.append(f"| {run.hub} | {run.workers} | "
                     + " | ".join(f"{run.cpu_s[s] / run.n_models:.3f}" for s in stages) + " |")
    lines += [
        "",
        f"A worker killed while it holds a claim ({kill['models']} models of the last hub; claim timeout "
        f"{kill['claim_timeout_s']:.0f} s; the killed worker's runner was stopped, so it held `{kill['lost']}` "
        f"for {kill['claim_to_kill_s']:.1f} s before the kill): the new worker served "
        f"{kill['kill_to_survivor_serving_s']:.1f} s after the kill, finished the lost model "
        f"{kill['kill_to_lost_done_s']:.1f} s after the kill and the whole queue "
        f"{kill['kill_to_all_done_s']:.1f} s after it. The lost model waits at most the claim timeout "
        "after its last sign of life, plus one model's indexing in front of it.",
        "",
    ]
    last = max((r for r in runs if r.hub == runs[-1].hub), key=lambda r: r.workers)
    lines += projection({k: v / last.n_models for k, v in last.cpu_s.items()}, last.mean_logits)
    return "\n".join(lines)


def write(section: str) -> None:
    """Replace the indexing section of the results file, keeping any other section."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Scale-out: measured figures\n\n"
    pattern = re.compile(rf"{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(lambda _: section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", action="append", required=True, help="a built world (repeatable)")
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--json", default="", help="also write the raw figures here")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    command = "nice -n 10 .venv/bin/python bench/scaleout.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    load = [loadavg()]
    started = time.perf_counter()
    runs: list[Run] = []
    kill: dict[str, float | str] = {}
    for world in args.world:
        with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as work:
            spec = StackSpec.from_world(world, work, index_queue=True)
            with DevStack(spec) as stack:
                # A first pass, not timed: loads every model into Triton and the background
                # descriptors into the workers' cache path, as in a running service.
                measure(stack, world, counts[0])
                runs += [measure(stack, world, n) for n in counts]
                if world == args.world[-1]:
                    kill = measure_kill(stack)
    load.append(loadavg())
    took = time.perf_counter() - started
    if args.json:
        raw = {"runs": [dataclasses.asdict(r) for r in runs], "kill": kill, "command": command, "load": load, "took_s": took}
        Path(args.json).write_text(json.dumps(raw, indent=1))
    section = report(runs, kill, command, load, took)
    print(section)
    if not args.no_write:
        write(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
