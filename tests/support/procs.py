"""Starting real service processes for tests: ``probelog serve ... --port 0 --ready-file``."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from probelog_devstack import stop_process

REPO = Path(__file__).resolve().parents[2]


def test_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "services") + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    host: str = "127.0.0.1"

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self, timeout: float = 15.0) -> int:
        return stop_process(self.proc, self.name, timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def start(
    name: str, args: list[str], workdir: Path, timeout: float = 120.0, env: dict[str, str] | None = None,
    *, host: str = "127.0.0.1", port: int = 0,
) -> Service:
    """Start ``probelog serve <args>`` on ``host``:``port`` (a free port by default) and wait
    until it serves."""
    workdir.mkdir(parents=True, exist_ok=True)
    ready = workdir / f"{name}.port"
    ready.unlink(missing_ok=True)
    log = workdir / f"{name}.log"
    cmd = [sys.executable, "-m", "probelog.cli", "serve", *args, "--host", host, "--port", str(port),
           "--ready-file", str(ready)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env or test_env(), cwd=workdir)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready.exists() and ready.read_text().strip():
            return Service(name, proc, int(ready.read_text()), log, host)
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{name} did not become ready in {timeout} s:\n{log.read_text(errors='replace')}")


def cli(args: list[str], env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "probelog.cli", *args],
        capture_output=True, text=True, env=env or test_env(), timeout=timeout,
    )
