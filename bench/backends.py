"""Production backends against the embedded ones, side by side in one run.

1. Probe throughput (images/s): the same models and probe set through Triton (tritonserver from
   the nvidia-pytriton wheel, Python backend running onnxruntime) and through the in-process
   ONNX runner, both behind :class:`~probelog.probe_runner.runner.ProbeRunner`. "cold" is the
   first probe (Triton loads the model, explicit model control); "warm" the median of repeats.
2. Store throughput: model records written and read (models/s, MB/s) and a probe set written
   and read (MB/s), Redis against the on-disk store, on synthetic descriptors of the world's
   shape (n_probes of its probe set, r = 50).
3. IndexModel to searchable, per model: the dev stack (five services, Triton, Redis) against the
   embedded server, both over gRPC; the stages come from IndexModelResponse.timings.

    .venv/bin/python bench/backends.py --world .data/world-tiny-seed0
    .venv/bin/python bench/backends.py --mini .data/bench-mini      # the tests' mini world

Results go to bench/results/backends.md (and stdout).
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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "services"), str(REPO)]

from probelog.client import ProbeLogClient  # noqa: E402
from probelog.common.errors import ProbeLogError  # noqa: E402
from probelog.common.ports import iter_models  # noqa: E402
from probelog.common.probe_sets import load_probe_set  # noqa: E402
from probelog.common.world_layout import WorldLayout  # noqa: E402
from probelog.core.distance import DEFAULT_R, logit_entries  # noqa: E402
from probelog.descriptor_store.config import StoreSettings  # noqa: E402
from probelog.descriptor_store.file_store import FileDescriptorStore  # noqa: E402
from probelog.descriptor_store.records import encode_record  # noqa: E402
from probelog.descriptor_store.redis_store import RedisDescriptorStore  # noqa: E402
from probelog.probe_runner import triton_repo  # noqa: E402
from probelog.probe_runner.onnx_backend import OnnxProbeBackend  # noqa: E402
from probelog.probe_runner.runner import ProbeRunner  # noqa: E402
from probelog.probe_runner.triton import TritonProbeBackend  # noqa: E402
from probelog.v1 import types_pb2  # noqa: E402
from probelog_devstack import free_port, redis_server, triton_server  # noqa: E402
from probelog_devstack.stack import DevStack, ServiceProcess, StackSpec  # noqa: E402


@dataclass
class World:
    hub: Path
    probe_set_file: Path
    encoder_flags: list[str]
    orchestrator_flags: list[str]
    label: str


def load_world(args: argparse.Namespace) -> World:
    if args.mini:
        from tests.support import mini

        root = Path(args.mini).resolve()
        world = mini.build(root) if not (root / "hub").is_dir() else mini.MiniWorld(
            root, root / f"{mini.CLIP_NAME}.json", root / "clip.pt", root / "probes.npz", root / "hub",
            root / "background.txt", b"",
        )
        flags = mini.service_flags(world)
        return World(Path(args.hub or world.hub), world.probe_set_file, flags["clip"], flags["orchestrator"],
                     f"mini world ({root})")
    spec = StackSpec.from_world(args.world, Path(tempfile.mkdtemp()))
    return World(Path(args.hub or spec.hub), WorldLayout.at(args.world).probe_set().resolve(), spec.encoder_flags, spec.orchestrator_flags,
                 f"world {args.world}")


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


# ---------------------------------------------------------------------- 1. probe throughput


async def probe_throughput(world: World, models: list[str], work: Path, repeats: int) -> list[str]:
    store = FileDescriptorStore(work / "probe-store")
    await store.open()
    probes = load_probe_set(world.probe_set_file)
    ps_id = (await store.put_probe_set(probes.name, probes.images))[0].probe_set_id
    repo = work / "triton-repository"
    triton_repo.write_repository(world.hub, repo, backend="python", models=models)
    server = triton_server.start(repo, work / "triton")
    triton = TritonProbeBackend(server.address, timeout_s=300)
    await triton.open()
    runners = {"triton (python backend)": ProbeRunner(triton, store), "in-process onnx": ProbeRunner(OnnxProbeBackend(world.hub), store)}
    rows = []
    totals: dict[str, list[float]] = {name: [] for name in runners}
    try:
        for model in models:
            cells = []
            for name, runner in runners.items():
                started = time.perf_counter()
                await runner.probe(model, "", ps_id)
                cold = probes.n_probes / (time.perf_counter() - started)
                warm = []
                for _ in range(repeats):
                    started = time.perf_counter()
                    await runner.probe(model, "", ps_id)
                    warm.append(probes.n_probes / (time.perf_counter() - started))
                totals[name].append(med(warm))
                cells += [f"{cold:,.0f}", f"{med(warm):,.0f}"]
            ratio = totals["in-process onnx"][-1] / totals["triton (python backend)"][-1]
            rows.append(f"| {model} | " + " | ".join(cells) + f" | {ratio:.1f}x |")
    finally:
        await triton.close()
        server.stop()
    t, o = med(totals["triton (python backend)"]), med(totals["in-process onnx"])
    return [
        f"Probe set: {probes.n_probes} images of {probes.images.shape[1]}x{probes.images.shape[2]}; "
        f"{len(models)} models; warm = median of {repeats} probes.",
        "",
        "| model | Triton cold img/s | Triton warm img/s | in-process cold img/s | in-process warm img/s | in-process / Triton (warm) |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        f"| **median** | | **{t:,.0f}** | | **{o:,.0f}** | **{o / t:.1f}x** |",
    ]


# ---------------------------------------------------------------------- 2. store throughput


async def store_throughput(world: World, work: Path, n_models: int, n_logits: int) -> list[str]:
    probes = load_probe_set(world.probe_set_file)
    n_probes = probes.n_probes
    rng = np.random.default_rng(0)
    models = []
    for i in range(n_models):
        entries = logit_entries(rng.normal(size=(n_logits, n_probes)).astype(np.float32), min(DEFAULT_R, n_probes))
        offsets = rng.normal(size=n_logits).astype(np.float32)
        models.append((f"model-{i:05d}", entries, offsets))
    redis = redis_server.start(work / "redis")
    rows = []
    try:
        stores: dict[str, RedisDescriptorStore | FileDescriptorStore] = {
            "redis (in memory, loopback)": RedisDescriptorStore.from_settings(StoreSettings(store_url=redis.url)),
            "file (fsync per write)": FileDescriptorStore(work / "file-store"),
        }
        for name, store in stores.items():
            await store.open()
            started = time.perf_counter()
            ps, _ = await store.put_probe_set(probes.name, probes.images)
            ps_write = time.perf_counter() - started
            if isinstance(store, RedisDescriptorStore):
                store._probe_sets.clear()  # read it back from Redis, not the cache
            started = time.perf_counter()
            await store.get_probe_set(ps.probe_set_id)
            ps_read = time.perf_counter() - started
            infos = [types_pb2.ModelInfo(model_id=m, probe_set_id=ps.probe_set_id, n_logits=n_logits, r=e.r)
                     for m, e, _ in models]
            nbytes = sum(len(encode_record(info, e, o)) for info, (_, e, o) in zip(infos, models, strict=True))
            started = time.perf_counter()
            for info, (_, entries, offsets) in zip(infos, models, strict=True):
                await store.put_model(info, entries, offsets)
            write = time.perf_counter() - started
            started = time.perf_counter()
            for model_id, _, _ in models:
                await store.get_model(ps.probe_set_id, model_id, include_descriptors=True)
            read = time.perf_counter() - started
            started = time.perf_counter()
            listed = 0
            async for page in iter_models(store, ps.probe_set_id):
                listed += len(page)
            listing = time.perf_counter() - started
            await store.close()
            mb = nbytes / 1e6
            rows.append(
                f"| {name} | {n_models / write:,.0f} ({mb / write:,.1f} MB/s) | {n_models / read:,.0f} "
                f"({mb / read:,.1f} MB/s) | {listed / listing:,.0f} | {probes.images.nbytes / 1e6 / ps_write:,.0f} | "
                f"{probes.images.nbytes / 1e6 / ps_read:,.0f} |"
            )
    finally:
        redis.stop()
    return [
        f"{n_models} models x {n_logits} logits, r = {min(DEFAULT_R, n_probes)}, n_probes = {n_probes}: "
        f"{nbytes / n_models / 1e3:.1f} kB per model record; one write or read in flight at a time.",
        "",
        "| store | write models/s | read models/s (with descriptors) | list models/s | probe set write MB/s | probe set read MB/s |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
    ]


# ---------------------------------------------------------------------- 3. IndexModel -> searchable


async def index_times(address: str, models: list[str]) -> tuple[list[list[float]], list[str]]:
    """[cold, warm] rows of [total, probe, descriptors, store, searchable, client wall] in s."""
    results: list[list[float]] = []
    failed = []
    async with ProbeLogClient(address) as client:
        for attempt in ("cold", "warm"):
            for model in models:
                started = time.perf_counter()
                try:
                    response = await client.index(model)
                except ProbeLogError:
                    failed.append(model)
                    continue
                wall = time.perf_counter() - started
                t = response.timings
                results.append([attempt == "warm", t.total_us / 1e6, t.probe_us / 1e6, t.descriptors_us / 1e6,
                                t.store_us / 1e6, t.searchable_us / 1e6, wall])
    return results, sorted(set(failed))


def summarise(label: str, results: list[list[float]]) -> list[str]:
    rows = []
    for warm, name in ((False, "cold (first index: model load)"), (True, "warm (re-index)")):
        chosen = [r[1:] for r in results if bool(r[0]) == warm]
        if not chosen:
            continue
        cols = list(zip(*chosen, strict=True))
        cells = " | ".join(f"{med(list(c)) * 1000:,.0f}" for c in cols)
        rows.append(f"| {label} | {name} | {len(chosen)} | {cells} |")
    return rows


async def index_to_searchable(world: World, models: list[str], work: Path) -> list[str]:
    spec = StackSpec(hub=world.hub, workdir=work / "stack", encoder_flags=world.encoder_flags,
                     orchestrator_flags=world.orchestrator_flags)
    rows = []
    failed: set[str] = set()
    with DevStack(spec) as stack:
        stack_results, f1 = await index_times(stack.address, models)
    failed.update(f1)
    embedded = ServiceProcess("embedded", [
        "--embedded", "--store-url", f"file://{work / 'embedded-store'}", "--runner-url", f"onnx://{world.hub}",
        *world.encoder_flags, *world.orchestrator_flags,
    ], free_port(), work)
    embedded.launch()
    try:
        embedded.wait_ready()
        embedded_results, f2 = await index_times(embedded.address, models)
    finally:
        embedded.stop()
    failed.update(f2)
    rows += summarise("Triton + Redis (5 services)", stack_results)
    rows += summarise("embedded (1 process)", embedded_results)
    return [
        f"{len(models) - len(failed)} models indexed, one at a time, cold then warm; medians per model, ms. "
        + (f"Refused (not indexable): {', '.join(sorted(failed))}." if failed else ""),
        "",
        "| backend | pass | models | total (server) | probe | descriptors + offsets | store write | until searchable | client wall |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]


# ---------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--world", help="a world built by `probelog world build`")
    which.add_argument("--mini", help="the tests' mini world in this directory (built when missing)")
    parser.add_argument("--hub", help="another model hub (default: the world's)")
    parser.add_argument("--models", type=int, default=8, help="hub models to probe and index (first N by name)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--store-models", type=int, default=500)
    parser.add_argument("--store-logits", type=int, default=10)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "backends.md"))
    args = parser.parse_args()
    world = load_world(args)
    hub_models = sorted(p.name for p in world.hub.iterdir() if (p / "config.pbtxt").is_file())
    probeable = [m for m in hub_models if m not in ("bad-output", "dead-logit")][: args.models]
    work = Path(tempfile.mkdtemp(prefix="probelog-bench-"))

    async def run() -> list[str]:
        lines = ["## 1. Probe throughput: Triton vs the in-process runner", ""]
        lines += await probe_throughput(world, probeable, work, args.repeats)
        lines += ["", "## 2. Store throughput: Redis vs the on-disk store", ""]
        lines += await store_throughput(world, work, args.store_models, args.store_logits)
        lines += ["", "## 3. IndexModel to searchable, per model", ""]
        lines += await index_to_searchable(world, probeable, work)
        return lines

    started = time.perf_counter()
    body = asyncio.run(run())
    command = ".venv/bin/python bench/backends.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    header = [
        "# Production backends vs embedded: measured side by side in one run",
        "",
        f"Command: `{command}`  ",
        f"Data: {world.label}, hub {world.hub}  ",
        f"Machine: {os.cpu_count()} cores ({cpu}), shared with other jobs; Python {platform.python_version()}; "
        f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; {time.perf_counter() - started:.0f} s in all.",
        "",
        "Ratios within one run are what to read; absolute numbers move with the machine's load.",
        "",
    ]
    text = "\n".join(header + body) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
