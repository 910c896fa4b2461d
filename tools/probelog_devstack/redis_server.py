"""Starting a local ``redis-server`` process: the tests, the dev stack and the benchmarks.

Production runs Redis as its own workload (the Helm chart's StatefulSet, or a managed
service); this is for a machine with Debian's ``redis-server`` installed
(``apt-get install -y redis-server``, done by ``scripts/setup.sh``). The server binds loopback
only, on a free port, with its files in ``workdir``. By default it keeps nothing on disk
(``--save '' --appendonly no``); ``persistent=True`` turns on the append-only file, fsynced on
every write, so a server killed with SIGKILL and started again keeps every acknowledged write.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from probelog.common.errors import FailedPrecondition, Unavailable
from probelog_devstack import free_port, stop_process

logger = logging.getLogger(__name__)


def _ping(port: int, password: str = "") -> bool:
    """A RESP PING over a plain socket (no client library, no event loop)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            if password:
                s.sendall(f"AUTH {password}\r\n".encode())
                s.recv(64)
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """A redis-server process started by :func:`start`."""

    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    command: list[str] = field(default_factory=list)
    password: str = ""

    @property
    def url(self) -> str:
        """The store URL (without credentials: pass those as settings)."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.workdir / "redis.log"

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        return stop_process(self.proc, "redis-server", timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, with no chance to save anything."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def restart(self, timeout: float = 30.0) -> None:
        """Start the same server again (same port and files) after :meth:`stop` or :meth:`kill`."""
        self.stop()
        self.proc = _spawn(self.command, self.log)
        _wait_ready(self, timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _spawn(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _wait_ready(server: RedisServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise Unavailable(f"redis-server exited with status {server.proc.returncode}:\n{server.output()[-3000:]}")
        if _ping(server.port, server.password):
            return
        time.sleep(0.05)
    server.stop()
    raise Unavailable(f"redis-server did not answer PING within {timeout:.0f} s:\n{server.output()[-3000:]}")


def start(
    workdir: str | Path,
    *,
    port: int = 0,
    persistent: bool = False,
    password: str = "",
    extra_args: tuple[str, ...] = (),
    timeout: float = 30.0,
) -> RedisServer:
    """Start ``redis-server`` on 127.0.0.1 and wait until it answers PING.

    Raises FailedPrecondition with the install command when the binary is missing.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        raise FailedPrecondition(
            "redis-server is not installed: apt-get install -y redis-server (./scripts/setup.sh does it)"
        )
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    command = [
        binary, "--bind", "127.0.0.1", "--port", str(port), "--dir", str(workdir.resolve()),
        "--save", "", "--protected-mode", "yes", "--daemonize", "no",
    ]
    if persistent:
        command += ["--appendonly", "yes", "--appendfsync", "always"]
    else:
        command += ["--appendonly", "no"]
    if password:
        command += ["--requirepass", password]
    command += list(extra_args)
    server = RedisServer(_spawn(command, workdir / "redis.log"), port, workdir, command, password)
    _wait_ready(server, timeout)
    logger.info("redis-server pid %d on 127.0.0.1:%d (%s)", server.proc.pid, port, "AOF" if persistent else "in memory")
    return server
