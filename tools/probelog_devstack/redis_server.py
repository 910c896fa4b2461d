"""Starting a local ``redis-server`` process: the tests, the dev stack and the benchmarks.

Production runs Redis as its own workload (the Helm chart's StatefulSet, or a managed
service); this is for a machine with Debian's ``redis-server`` installed
(``apt-get install -y redis-server``, done by ``scripts/setup.sh``). The server binds loopback
only, on a free port, with its files in ``workdir``. By default it keeps nothing on disk
(``--save '' --appendonly no``); ``persistent=True`` turns on the append-only file, fsynced on
every write, so a server killed with SIGKILL and started again keeps every acknowledged write.
:func:`start_cluster` starts several in cluster mode and joins them into a Redis Cluster.
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


@dataclass
class RedisClusterServers:
    """A Redis Cluster of ``redis-server`` processes started by :func:`start_cluster`: masters
    only, the hash slots split evenly between them."""

    masters: list[RedisServer]

    @property
    def url(self) -> str:
        """A store URL naming the first master (the cluster client finds the others)."""
        return self.masters[0].url

    def stop(self) -> None:
        for server in self.masters:
            server.stop()


def _cluster_ok(port: int) -> bool:
    """Whether CLUSTER INFO on ``port`` says every slot is served (a plain socket, like _ping)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(b"CLUSTER INFO\r\n")
            return b"cluster_state:ok" in s.recv(4096)
    except OSError:
        return False


#: A cluster node also listens on its port + 10000 (the cluster bus), so its port is at most this.
_MAX_CLUSTER_PORT = 65535 - 10000


def _cluster_port() -> int:
    """A free port whose cluster-bus port (+10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port > _MAX_CLUSTER_PORT:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise Unavailable("no free port pair (port, port + 10000) for a redis cluster node")


def wait_cluster_ok(cluster: RedisClusterServers, timeout: float = 60.0) -> None:
    """Wait until every master reports ``cluster_state:ok`` (after a create or a restart)."""
    deadline = time.monotonic() + timeout
    while not all(_cluster_ok(m.port) for m in cluster.masters):
        if time.monotonic() > deadline:
            raise Unavailable(f"the redis cluster on ports {[m.port for m in cluster.masters]} did not reach state ok")
        time.sleep(0.1)


def start_cluster(
    workdir: str | Path,
    *,
    masters: int = 3,
    persistent: bool = False,
    node_timeout_ms: int = 2000,
    timeout: float = 60.0,
) -> RedisClusterServers:
    """Start ``masters`` redis-servers in cluster mode on 127.0.0.1 (each in ``workdir/node-<i>``
    with its own ``nodes.conf``), join them with ``redis-cli --cluster create`` (no replicas) and
    wait until the cluster serves every slot. A master restarted with :meth:`RedisServer.restart`
    rejoins with its slots (same port, same ``nodes.conf``); with ``persistent`` it keeps every
    acknowledged write.
    """
    cli = shutil.which("redis-cli")
    if cli is None:
        raise FailedPrecondition("redis-cli is not installed: apt-get install -y redis-server (./scripts/setup.sh does it)")
    workdir = Path(workdir)
    servers: list[RedisServer] = []
    try:
        for i in range(masters):
            servers.append(start(
                workdir / f"node-{i}",
                port=_cluster_port(),
                persistent=persistent,
                extra_args=(
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(node_timeout_ms),
                ),
                timeout=timeout,
            ))
        created = subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{s.port}" for s in servers),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if created.returncode != 0:
            raise Unavailable(f"redis-cli --cluster create failed:\n{(created.stdout + created.stderr)[-3000:]}")
        cluster = RedisClusterServers(servers)
        wait_cluster_ok(cluster, timeout)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    logger.info("redis cluster of %d masters on 127.0.0.1:%s", masters, ",".join(str(s.port) for s in servers))
    return cluster
