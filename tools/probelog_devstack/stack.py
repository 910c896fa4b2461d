"""The dev stack: Redis, Triton and the five services as separate processes on loopback.

What a deployment runs, on one machine: ``redis-server`` (the descriptor store's backend),
``tritonserver`` serving the hub (written as a Python-backend repository, the only backend the
CPU wheel has), and ``probelog serve <service>`` for the store, probe runner, CLIP encoder,
ranker and orchestrator, wired by flags. Then the same demo as the embedded mode
(``scripts/demo.sh``): index the hub, list the models, search a few concepts. Everything is
stopped on exit, Ctrl-C or SIGTERM.

    deploy/dev-stack.sh [WORLD_DIR]                         # builds the tiny world when missing
    python -m probelog_devstack --world .data/world-tiny-seed0 --keep-running

The same :class:`DevStack` starts the stack for the integration tests and the benchmarks.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from probelog.common.errors import FailedPrecondition, Unavailable
from probelog.common.world_layout import WorldLayout
from probelog.probe_runner import triton_repo
from probelog_devstack import free_port, redis_server, stop_process, triton_server
from probelog_devstack.redis_server import RedisServer
from probelog_devstack.triton_server import TritonServer

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
#: The served package's source, first on the services' PYTHONPATH.
SERVICES_ROOT = REPO / "services"
#: Start order; the store first (every other service reads probe sets from it).
SERVICES = ("descriptor-store", "probe-runner", "clip-encoder", "ranker", "orchestrator")


def service_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SERVICES_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@dataclass
class ServiceProcess:
    """One ``probelog serve <service>`` process on a fixed loopback port."""

    name: str
    args: list[str]
    port: int
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def _ready_file(self) -> Path:
        return self.workdir / f"{self.name}.port"

    def launch(self) -> None:
        self._ready_file.unlink(missing_ok=True)
        command = [
            sys.executable, "-m", "probelog.cli", "serve", *self.args,
            "--host", "127.0.0.1", "--port", str(self.port), "--ready-file", str(self._ready_file),
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=service_env(), cwd=self.workdir,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._ready_file.exists() and self._ready_file.read_text().strip():
                return
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise Unavailable(f"{self.name} exited with status {code}; its log:\n{self.output()[-4000:]}")
            time.sleep(0.05)
        self.stop()
        raise Unavailable(f"{self.name} did not serve within {timeout:.0f} s; its log:\n{self.output()[-4000:]}")

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        return stop_process(self.proc, self.name, timeout)

    def restart(self, timeout: float = 180.0) -> None:
        self.stop()
        self.launch()
        self.wait_ready(timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class StackSpec:
    """What the stack serves and how.

    ``encoder_flags`` and ``orchestrator_flags`` are ``probelog serve`` flags for the CLIP
    encoder (model, checkpoint, templates) and the orchestrator (probe-set file, background).
    """

    hub: Path
    workdir: Path
    encoder_flags: list[str]
    orchestrator_flags: list[str]
    triton_backend: str = "python"
    #: Redis with an fsynced append-only file: a restarted server keeps every model.
    persistent_redis: bool = False
    auto_index: bool = False
    auto_index_interval_s: float = 5.0
    #: 0: free ports; else orchestrator, runner, encoder, store, ranker on base..base+4 and
    #: Redis, Triton gRPC, Triton HTTP on base+10..base+12.
    base_port: int = 0
    store_flags: list[str] = field(default_factory=list)
    runner_flags: list[str] = field(default_factory=list)
    #: Bulk indexing on a work queue in the stack's Redis; the orchestrator runs this many workers.
    index_queue: bool = False
    index_workers: int = 0

    @classmethod
    def from_world(cls, world: str | Path, workdir: str | Path, **options: Any) -> StackSpec:
        """The stack for a world built by ``probelog world build`` (as embedded mode reads it)."""
        from probelog.embedded import world_defaults

        values = world_defaults(world)
        return cls(
            hub=Path(values["runner_url"].removeprefix("onnx://")),
            workdir=Path(workdir),
            encoder_flags=[
                "--clip-model", values["clip_model"],
                "--clip-pretrained", values["clip_pretrained"],
                "--clip-config", values["clip_config"],
                *(["--prompt-templates", "|".join(values["prompt_templates"])] if "prompt_templates" in values else []),
            ],
            orchestrator_flags=["--probe-set-file", values["probe_set_file"], "--background", values["background"]],
            **options,
        )


class DevStack:
    """Starts and stops the processes of a :class:`StackSpec`."""

    def __init__(self, spec: StackSpec) -> None:
        self.spec = spec
        self.redis: RedisServer | None = None
        self.triton: TritonServer | None = None
        self.services: dict[str, ServiceProcess] = {}
        self.repository = spec.workdir / "triton-repository"

    def _port(self, offset: int) -> int:
        return self.spec.base_port + offset if self.spec.base_port else free_port()

    @property
    def address(self) -> str:
        """The SearchService (orchestrator) address."""
        return self.services["orchestrator"].address

    def start(self) -> DevStack:
        spec = self.spec
        spec.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self.redis = redis_server.start(
                spec.workdir / "redis", port=self._port(10), persistent=spec.persistent_redis
            )
            names = triton_repo.write_repository(spec.hub, self.repository, backend=spec.triton_backend)
            logger.info("triton repository %s: %d models (%s backend)", self.repository, len(names), spec.triton_backend)
            self.triton = triton_server.start(
                self.repository, spec.workdir / "triton", grpc_port=self._port(11), http_port=self._port(12)
            )
            ports = {name: self._port(offset) for name, offset in
                     (("orchestrator", 0), ("probe-runner", 1), ("clip-encoder", 2), ("descriptor-store", 3), ("ranker", 4))}
            store = f"127.0.0.1:{ports['descriptor-store']}"
            auto = ["--auto-index", "--auto-index-interval-s", str(spec.auto_index_interval_s)] if spec.auto_index else []
            if spec.index_queue:
                auto += ["--index-queue-url", self.redis.url, "--index-workers", str(spec.index_workers)]
            args = {
                "descriptor-store": ["descriptor-store", "--store", self.redis.url, *spec.store_flags],
                "probe-runner": ["probe-runner", "--runner", self.triton.url, "--store-address", store, *spec.runner_flags],
                "clip-encoder": ["clip-encoder", *spec.encoder_flags, "--store-address", store],
                "ranker": ["ranker", "--store-address", store],
                "orchestrator": [
                    "orchestrator", *spec.orchestrator_flags, "--store-address", store,
                    "--runner-address", f"127.0.0.1:{ports['probe-runner']}",
                    "--encoder-address", f"127.0.0.1:{ports['clip-encoder']}",
                    "--ranker-addresses", f"127.0.0.1:{ports['ranker']}",
                    *auto,
                ],
            }
            for name in SERVICES:
                self.services[name] = ServiceProcess(name, args[name], ports[name], spec.workdir)
            # The store first; the other four start side by side once it serves.
            self.services["descriptor-store"].launch()
            self.services["descriptor-store"].wait_ready()
            for name in SERVICES[1:]:
                self.services[name].launch()
            for name in SERVICES[1:]:
                self.services[name].wait_ready()
        except BaseException:
            self.stop()
            raise
        logger.info(
            "dev stack up: SearchService on %s, redis %s, triton %s (logs in %s)",
            self.address, self.redis.url, self.triton.address, spec.workdir,
        )
        return self

    def stop(self) -> dict[str, int | None]:
        """Stop everything, the orchestrator first; returns each service's exit status."""
        codes: dict[str, int | None] = {}
        for name in reversed(list(self.services)):
            codes[name] = self.services[name].stop()
        if self.triton is not None:
            self.triton.stop()
        if self.redis is not None:
            self.redis.stop()
        return codes

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def probelog_cli(args: Sequence[str], *, check: bool = False, capture: bool = False) -> subprocess.CompletedProcess[str]:
    """Run ``probelog ARGS`` (this interpreter, this package)."""
    return subprocess.run(
        [sys.executable, "-m", "probelog.cli", *args],
        env=service_env(), text=True, check=check, capture_output=capture,
    )


def run_demo(address: str, *, world: Path | None = None, queries: Sequence[str] = (), workdir: Path) -> int:
    """The embedded demo's steps against ``address``: index all, list, search (text, image)."""
    status = probelog_cli(["index", "--all", "--address", address]).returncode
    models = probelog_cli(["models", "--address", address], capture=True)
    sys.stdout.write("\n".join(models.stdout.splitlines()[:5]) + "\n")
    layout = None if world is None else WorldLayout.at(world)
    truth = ["--truth", str(layout.ground_truth)] if layout is not None and layout.ground_truth.is_file() else []
    example = workdir / "example.png"
    queries = list(queries)
    picker = REPO / "scripts" / "demo_queries.py"
    if not queries and layout is not None and picker.is_file():
        found = subprocess.run(
            [sys.executable, str(picker), str(layout.root), "--count", "3", "--image", str(example)],
            env=service_env(), text=True, capture_output=True, check=False,
        )
        queries = [q for q in found.stdout.splitlines() if q.strip()]
    for query in queries:
        sys.stdout.write("\n")
        sys.stdout.flush()
        status |= probelog_cli(["search", query, "--top-k", "5", "--address", address, *truth]).returncode
    if queries and example.is_file():
        sys.stdout.write(f"\nsearch by an example image of {queries[0]!r}:\n")
        sys.stdout.flush()
        status |= probelog_cli(["search", "--image", str(example), "--top-k", "5", "--address", address, *truth]).returncode
    return status


@contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m probelog_devstack", description=__doc__.split("\n\n")[0])
    parser.add_argument("--world", default=".data/world-tiny-seed0", help="a world built by `probelog world build`")
    parser.add_argument("--workdir", default=".data/dev-stack", help="logs, Redis files, the Triton repository")
    parser.add_argument("--base-port", type=int, default=50051, help="orchestrator port; 0 for free ports")
    parser.add_argument("--query", action="append", default=[], help="a concept to search (default: the world's demo queries)")
    parser.add_argument("--persistent-redis", action="store_true", help="Redis with an fsynced append-only file")
    parser.add_argument("--auto-index", action="store_true", help="index every model that appears in the repository")
    parser.add_argument("--keep-running", action="store_true", help="after the demo, serve until Ctrl-C")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="[dev-stack] %(message)s", stream=sys.stderr)
    try:
        spec = StackSpec.from_world(
            args.world, Path(args.workdir).resolve(), base_port=args.base_port,
            persistent_redis=args.persistent_redis, auto_index=args.auto_index,
        )
    except FailedPrecondition as exc:
        logger.error("%s", exc)
        return 1
    stack = DevStack(spec)
    with _stop_on_sigterm():
        try:
            stack.start()
            status = run_demo(stack.address, world=Path(args.world).resolve(), queries=args.query, workdir=spec.workdir)
            if args.keep_running:
                logger.info("serving on %s until Ctrl-C (PROBELOG_ADDRESS=%s probelog search ...)", stack.address, stack.address)
                while True:
                    time.sleep(3600)
            return status
        except (FailedPrecondition, Unavailable) as exc:
            logger.error("%s", exc)
            return 1
        except KeyboardInterrupt:
            return 130
        finally:
            logger.info("stopping the dev stack")
            stack.stop()


if __name__ == "__main__":
    sys.exit(main())
