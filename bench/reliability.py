"""Bad input, faults and load against a real embedded server with API keys, in one run.

1. Every bad input and fault tried: the request, the status it got, and what was written
   (the model listing before and after; a model that was written is checked whole: listed,
   found by GetModel and returned by Search).
2. Image bombs: PNGs of a few kB that decode to 13000 x 13000 pixels, four per search, four
   searches at once, while health is checked: refusal time, health latency, server peak RSS.
3. Load: 16 clients, each on its own connection, searching for 60 s on 127.0.0.1: queries/s,
   p50/p99 latency, errors, server RSS before and after, host load average.

    .venv/bin/python bench/reliability.py --world .data/world-tiny-seed0

Results go to bench/results/reliability.md (and stdout).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import platform
import random
import shlex
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "services"), str(REPO), str(REPO / "tools")]

import grpc  # noqa: E402
from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: E402
from PIL import Image  # noqa: E402

from probelog.v1 import (  # noqa: E402
    clip_encoder_pb2,
    descriptor_store_pb2,
    descriptor_store_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
    types_pb2,
)
from probelog_devstack import free_port  # noqa: E402
from probelog_devstack.stack import ServiceProcess  # noqa: E402

#: Rounds of image-bomb searches per attacker.
ROUNDS = 40
READ_KEY = "bench-read-" + "0" * 16
WRITE_KEY = "bench-write-" + "0" * 16


def auth(key: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {key}")]


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def png(width: int, height: int, mode: str = "1") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


async def outcome(call: Awaitable[Any]) -> tuple[str, str]:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        return exc.code().name, (exc.details() or "")[:110]
    return "OK", ""


class Bench:
    def __init__(self, address: str) -> None:
        self.channel = grpc.aio.insecure_channel(address, options=[("grpc.max_send_message_length", 80 << 20)])
        self.stub = search_pb2_grpc.SearchServiceStub(self.channel)

    async def listing(self) -> set[str]:
        response = await self.stub.ListModels(search_pb2.ListModelsRequest(page_size=1000), metadata=auth(READ_KEY))
        return {m.model_id for m in response.models}

    async def whole(self, model_id: str) -> str:
        """How a model stands: written whole, or absent, or torn (never seen)."""
        listed = model_id in await self.listing()
        found, _ = await outcome(self.stub.GetModel(search_pb2.GetModelRequest(model_id=model_id), metadata=auth(READ_KEY)))
        hits = (await self.stub.Search(
            search_pb2.SearchRequest(text="circle", top_k=1, include_model_ids=[model_id]), metadata=auth(READ_KEY)
        )).hits
        state = (listed, found == "OK", bool(hits))
        if all(state):
            return f"`{model_id[:24]}` whole (listed, GetModel, searchable)"
        if not any(state):
            return "nothing"
        return f"TORN {state}"

    async def case(self, call: Callable[[], Awaitable[Any]], model_id: str = "") -> tuple[str, str, str]:
        before = await self.listing()
        code, message = await outcome(call())
        await asyncio.sleep(0.3)  # a write that outlived its caller finishes meanwhile
        after = await self.listing()
        if model_id:
            written = await self.whole(model_id)
            if written != "nothing":
                await self.stub.DeleteModel(search_pb2.DeleteModelRequest(model_id=model_id), metadata=auth(WRITE_KEY))
        else:
            written = "nothing" if after == before else f"CHANGED {sorted(after ^ before)}"
        return code, message, written


async def bad_inputs(bench: Bench, hub: Path, model: str) -> list[str]:
    stub = bench.stub

    def index(**fields: Any) -> Callable[[], Awaitable[Any]]:
        return lambda: stub.IndexModel(search_pb2.IndexModelRequest(**fields), metadata=auth(WRITE_KEY))

    def search(key: str = READ_KEY, **fields: Any) -> Callable[[], Awaitable[Any]]:
        return lambda: stub.Search(search_pb2.SearchRequest(**fields), metadata=auth(key))

    store = descriptor_store_pb2_grpc.DescriptorStoreServiceStub(bench.channel)
    evil = types_pb2.ModelInfo(model_id="evil", probe_set_id="ps-0000000000000000", n_logits=1)
    cases: list[tuple[str, Callable[[], Awaitable[Any]], str]] = [
        ("Search without a key", lambda: stub.Search(search_pb2.SearchRequest(text="circle")), ""),
        ("Search with an unknown key", search("not-a-key-0123456789", text="circle"), ""),
        ("IndexModel with a read key", lambda: stub.IndexModel(
            search_pb2.IndexModelRequest(model_name=model, model_id="ro"), metadata=auth(READ_KEY)), "ro"),
        ("DeleteModel with a read key", lambda: stub.DeleteModel(
            search_pb2.DeleteModelRequest(model_id=model), metadata=auth(READ_KEY)), ""),
        ("PutModelDescriptors (internal) on the public port", lambda: store.PutModelDescriptors(
            descriptor_store_pb2.PutModelDescriptorsRequest(model=evil), metadata=auth(WRITE_KEY)), ""),
        ("PutProbeSet (internal) on the public port", lambda: store.PutProbeSet(
            iter([descriptor_store_pb2.PutProbeSetRequest(header=types_pb2.ProbeSetInfo(n_probes=1))]),
            metadata=auth(WRITE_KEY)), ""),
        ("IndexModel of an existing model directory by absolute path", index(model_name=str(hub / model)), ""),
        ("IndexModel of a missing absolute path", index(model_name="/nonexistent/model"), ""),
        ("IndexModel of an unknown model", index(model_name="no-such-model"), ""),
        ("a label of 257 characters", index(model_name=model, model_id="lbl", labels=["x" * 257]), "lbl"),
        ("seven labels of 9 MiB each", index(model_name=model, model_id="big", labels=["x" * (9 << 20)] * 7), "big"),
        ("65 metadata entries", index(model_name=model, model_id="md", metadata={f"k{i}": "v" for i in range(65)}), "md"),
        ("a metadata value of 1 MiB", index(model_name=model, model_id="mv", metadata={"k": "v" * (1 << 20)}), "mv"),
        ("a model id of 257 characters", index(model_name=model, model_id="i" * 257), ""),
        ("a model id of 256 characters", index(model_name=model, model_id="i" * 256), "i" * 256),
        ("a model id of 100 emoji", index(model_name=model, model_id="\U0001f600" * 100), "\U0001f600" * 100),
        ("a model id with a newline", index(model_name=model, model_id="a\nb"), ""),
        ("template \"{0}{}\"", search(text="circle", prompt_templates=["{0}{}"]), ""),
        ("template \"{.__class__}{}\"", search(text="circle", prompt_templates=["{.__class__}{}"]), ""),
        ("17 templates", search(text="circle", prompt_templates=["a {}"] * 17), ""),
        ("a template of 300 characters", search(text="circle", prompt_templates=["x" * 300 + "{}"]), ""),
        ("an empty query", search(text=" "), ""),
        ("a query of 5,000 characters", search(text="x" * 5000), ""),
        ("top_k 5,000", search(text="circle", top_k=5000), ""),
        ("ListModels page_size 5,000", lambda: stub.ListModels(
            search_pb2.ListModelsRequest(page_size=5000), metadata=auth(READ_KEY)), ""),
        ("bytes that are not an image", search(images=clip_encoder_pb2.ImageSet(images=[b"not an image"])), ""),
        ("a truncated PNG", search(images=clip_encoder_pb2.ImageSet(images=[png(64, 64, "RGB")[:60]])), ""),
        ("a PNG of 13000 x 13000 pixels", search(images=clip_encoder_pb2.ImageSet(images=[png(13000, 13000)])), ""),
        ("65 query images", search(images=clip_encoder_pb2.ImageSet(images=[png(8, 8, "RGB")] * 65)), ""),
        ("a malformed probe-set id", search(text="circle", probe_set_id="ps-xyz"), ""),
        ("an unknown probe-set id", search(text="circle", probe_set_id="ps-0123456789abcdef"), ""),
        ("IndexModel under a 1 ms deadline", lambda: stub.IndexModel(
            search_pb2.IndexModelRequest(model_name=model, model_id="d1"), metadata=auth(WRITE_KEY), timeout=0.001), "d1"),
        ("IndexModel under a 150 ms deadline", lambda: stub.IndexModel(
            search_pb2.IndexModelRequest(model_name=model, model_id="d150"), metadata=auth(WRITE_KEY), timeout=0.15),
         "d150"),
        ("DeleteModel of an unknown model", lambda: stub.DeleteModel(
            search_pb2.DeleteModelRequest(model_id="never-indexed"), metadata=auth(WRITE_KEY)), ""),
    ]
    rows = ["| input or fault | status | message (start) | what was written |", "|---|---|---|---|"]
    for label, call, model_id in cases:
        code, message, written = await bench.case(call, model_id)
        message = message.replace("|", "\\|").replace("\n", " ")
        rows.append(f"| {label} | {code} | {message} | {written} |")
        print(rows[-1], flush=True)
    return rows


async def cancellation_storm(bench: Bench, model: str, seconds: float) -> list[str]:
    """Four workers index and delete 20 ids under tight deadlines; then the invariant."""
    ids = [f"storm-{i:02d}" for i in range(20)]
    started = time.monotonic()
    await bench.stub.IndexModel(search_pb2.IndexModelRequest(model_name=model, model_id=ids[0]), metadata=auth(WRITE_KEY))
    index_s = time.monotonic() - started
    counts: Counter[str] = Counter()

    async def worker(seed: int) -> None:
        rng = random.Random(seed)
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            model_id = rng.choice(ids)
            if rng.random() < 0.6:
                call = bench.stub.IndexModel(search_pb2.IndexModelRequest(model_name=model, model_id=model_id),
                                             metadata=auth(WRITE_KEY), timeout=index_s * rng.uniform(0.5, 6.0))
                kind = "IndexModel"
            else:
                call = bench.stub.DeleteModel(search_pb2.DeleteModelRequest(model_id=model_id),
                                              metadata=auth(WRITE_KEY), timeout=rng.uniform(0.001, 0.01))
                kind = "DeleteModel"
            code, _ = await outcome(call)
            counts[f"{kind} {code}"] += 1

    await asyncio.gather(*(worker(seed) for seed in range(4)))
    await asyncio.sleep(2.0)
    states = Counter()
    for model_id in ids:
        state = await bench.whole(model_id)
        states["torn" if state.startswith("TORN") else "absent" if state == "nothing" else "whole"] += 1
        if state != "nothing":
            await bench.stub.DeleteModel(search_pb2.DeleteModelRequest(model_id=model_id), metadata=auth(WRITE_KEY))
    return [
        f"{seconds:.0f} s, 4 workers, 20 ids; one uncut IndexModel alone took {index_s * 1000:.0f} ms, deadlines "
        f"0.5-6x that (four at once on two cores); DeleteModel deadlines 1-10 ms.",
        "",
        "| calls | count |", "|---|---:|",
        *(f"| {k} | {v} |" for k, v in sorted(counts.items())),
        "",
        f"Afterwards: {states['whole']} ids whole (listed, GetModel, searchable), {states['absent']} absent, "
        f"**{states['torn']} torn**.",
    ]


async def image_bombs(bench: Bench, pid: int) -> list[str]:
    bomb = png(13000, 13000)
    request = search_pb2.SearchRequest(images=clip_encoder_pb2.ImageSet(images=[bomb] * 4))
    health = health_pb2_grpc.HealthStub(bench.channel)
    peak_before = rss_kb(pid, "VmHWM")
    latencies: list[float] = []
    refusals: list[float] = []
    codes: Counter[str] = Counter()
    attacking = True

    async def attack() -> None:
        for _ in range(ROUNDS):
            started = time.perf_counter()
            code, _ = await outcome(bench.stub.Search(request, metadata=auth(READ_KEY), timeout=60))
            refusals.append(time.perf_counter() - started)
            codes[code] += 1

    async def probe() -> None:
        while attacking:
            started = time.perf_counter()
            await health.Check(health_pb2.HealthCheckRequest(), timeout=5)
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.02)

    prober = asyncio.create_task(probe())
    await asyncio.gather(*(attack() for _ in range(4)))
    attacking = False
    await prober
    return [
        f"Each PNG is {len(bomb) / 1024:.0f} KiB and declares 13000 x 13000 pixels (169 M; 0.5 GB as RGB); "
        f"4 per search, 4 searches at once, {ROUNDS} rounds each, health checked every 20 ms meanwhile.",
        "",
        "| measure | value |", "|---|---:|",
        f"| statuses | {dict(codes)} |",
        f"| refusal latency p50 / max | {statistics.median(refusals) * 1000:.0f} / {max(refusals) * 1000:.0f} ms |",
        f"| health checks during the attack | {len(latencies)} |",
        f"| health latency p50 / max | {statistics.median(latencies) * 1000:.1f} / {max(latencies) * 1000:.1f} ms |",
        f"| server peak RSS before / after | {peak_before / 1024:.0f} / {rss_kb(pid, 'VmHWM') / 1024:.0f} MiB |",
    ]


async def load(address: str, pid: int, clients: int, seconds: float, concepts: list[str]) -> list[str]:
    channels = [grpc.aio.insecure_channel(address) for _ in range(clients)]
    rss_before = rss_kb(pid)
    load_before = os.getloadavg()
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    until = time.monotonic() + seconds

    async def client(i: int) -> None:
        stub = search_pb2_grpc.SearchServiceStub(channels[i])
        rng = random.Random(i)
        while time.monotonic() < until:
            request = search_pb2.SearchRequest(text=rng.choice(concepts), top_k=10)
            started = time.perf_counter()
            try:
                await stub.Search(request, metadata=auth(READ_KEY), timeout=30)
                latencies.append(time.perf_counter() - started)
            except grpc.aio.AioRpcError as exc:
                errors[exc.code().name] += 1

    started = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()
    for channel in channels:
        await channel.close()
    latencies.sort()
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    return [
        f"{clients} clients, each on its own connection, Search (text, top_k 10, a random concept of the "
        f"world) for {seconds:.0f} s on 127.0.0.1, with API keys on.",
        "",
        "| measure | value |", "|---|---:|",
        f"| queries | {len(latencies)} in {elapsed:.1f} s |",
        f"| queries/s | {len(latencies) / elapsed:.1f} |",
        f"| latency p50 / p99 | {p(0.50):.1f} / {p(0.99):.1f} ms |",
        f"| errors | {sum(errors.values())} {dict(errors) if errors else ''} |",
        f"| server RSS before / after | {rss_before / 1024:.0f} / {rss_kb(pid) / 1024:.0f} MiB |",
        f"| host load average (1 min) before / after | {load_before[0]:.2f} / {load_after[0]:.2f} |",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", required=True, help="a world built by `probelog world build`")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--storm-seconds", type=float, default=15.0)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "reliability.md"))
    args = parser.parse_args()
    world = Path(args.world).absolute()
    hub = world / "hub"
    model = sorted(p.name for p in hub.iterdir() if (p / "config.pbtxt").is_file())[0]
    concepts = [c["name"] for c in json.loads((world / "concepts.json").read_text()) if c.get("level") == "fine"]
    work = Path(tempfile.mkdtemp(prefix="probelog-reliability-"))
    server = ServiceProcess("embedded", [
        "--embedded", "--world", str(world), "--store-url", f"file://{work / 'store'}",
        "--api-keys", f"read:{READ_KEY},write:{WRITE_KEY}",
    ], free_port(), work)
    started = time.perf_counter()
    server.launch()
    try:
        server.wait_ready()
        assert server.proc is not None
        pid = server.proc.pid

        async def run() -> list[str]:
            bench = Bench(server.address)
            # The hub indexed, so searches rank real models.
            served = [p.name for p in hub.iterdir() if (p / "config.pbtxt").is_file()]
            for name in sorted(served):
                await bench.stub.IndexModel(search_pb2.IndexModelRequest(model_name=name), metadata=auth(WRITE_KEY))
            lines = ["## 1. Bad input and faults", "",
                     f"Against `probelog serve --embedded --world {world.name}` with a read and a write key; "
                     f"indexing uses hub model `{model}`. \"What was written\" compares the listing before and after; "
                     "a model id that was written is checked whole (listed, found by GetModel, returned by Search) "
                     "and deleted again.", ""]
            lines += await bad_inputs(bench, hub, model)
            lines += ["", "## 2. Cancellation storm", ""]
            lines += await cancellation_storm(bench, model, args.storm_seconds)
            lines += ["", "## 3. Image bombs", ""]
            lines += await image_bombs(bench, pid)
            await bench.channel.close()
            lines += ["", "## 4. Load", ""]
            lines += await load(server.address, pid, args.clients, args.seconds, concepts)
            return lines

        body = asyncio.run(run())
    finally:
        code = server.stop()
    command = ".venv/bin/python bench/reliability.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    logged = server.output()
    header = [
        "# Reliability: bad input, faults, image bombs and load, measured in one run",
        "",
        f"Command: `{command}`  ",
        f"Machine: {os.cpu_count()} cores ({cpu}), shared with other jobs (a training run among them); "
        f"Python {platform.python_version()}; {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; "
        f"{time.perf_counter() - started:.0f} s in all. Server exit status after SIGTERM: {code}; "
        f"API keys in its log: {'YES' if READ_KEY in logged or WRITE_KEY in logged else 'none'}; "
        f"tracebacks sent to clients: none (INTERNAL would show above).",
        "",
    ]
    text = "\n".join(header + body) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text, encoding="utf-8")
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
