"""Starting a real ``tritonserver`` on this machine: tests, the dev stack and the benchmarks.

The ``nvidia-pytriton`` wheel carries a ``tritonserver`` 2.51 binary and its Python backend (no
other backend). Running the bare binary needs this set-up:

- a backend directory holding ``python/libtriton_python.so``, ``triton_python_backend_utils.py``
  and the ``triton_python_backend_stub`` built for this interpreter's Python version;
- ``LD_LIBRARY_PATH`` with the interpreter's own LIBDIR (else the stub loads the system
  libpython against this interpreter's stdlib) and the wheel's ``nvidia_pytriton.libs``;
- this interpreter's ``bin`` first on ``PATH``, so Python-backend models import from this
  environment (onnxruntime, numpy).

The server listens on loopback only, in explicit model-control mode, without metrics. Run
``python -m probelog_devstack.triton_server --model-repository REPO --grpc-port 8001`` to
serve a repository in the foreground with the same set-up.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from probelog.common.errors import FailedPrecondition, Unavailable
from probelog_devstack import free_port, stop_process

logger = logging.getLogger(__name__)


def wheel_root() -> Path:
    """``site-packages/pytriton/tritonserver`` of the installed nvidia-pytriton wheel."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise FailedPrecondition(
            "tritonserver comes from the nvidia-pytriton wheel, which is not installed "
            "(pip install 'nvidia-pytriton==0.7.0', or ./scripts/setup.sh)"
        )
    root = Path(next(iter(spec.submodule_search_locations))) / "tritonserver"
    if not (root / "bin" / "tritonserver").is_file():
        raise FailedPrecondition(f"{root}/bin/tritonserver is missing from the nvidia-pytriton wheel")
    return root


def prepare_backends(directory: Path) -> Path:
    """A ``--backend-directory`` with the wheel's Python backend for this interpreter."""
    root = wheel_root()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.is_file():
        raise FailedPrecondition(f"the nvidia-pytriton wheel has no Python backend stub for Python {version}")
    python = directory / "python"
    python.mkdir(parents=True, exist_ok=True)
    for source in (
        root / "backends" / "python" / "libtriton_python.so",
        root / "backends" / "python" / "triton_python_backend_utils.py",
        stub,
    ):
        target = python / source.name
        if not target.exists() or target.stat().st_size != source.stat().st_size:
            shutil.copy2(source, target)
    return directory


def server_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment tritonserver and its Python-backend stubs need (see the module doc)."""
    env = dict(os.environ if base is None else base)
    libdirs = [str(sysconfig.get_config_var("LIBDIR") or ""), str(wheel_root().parent.parent / "nvidia_pytriton.libs")]
    if env.get("LD_LIBRARY_PATH"):
        libdirs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(d for d in libdirs if d)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def server_command(
    repository: Path,
    backends: Path,
    *,
    grpc_port: int,
    http_port: int,
    host: str = "127.0.0.1",
    load_models: Sequence[str] = (),
    extra_args: Sequence[str] = (),
) -> list[str]:
    command = [
        str(wheel_root() / "bin" / "tritonserver"),
        f"--model-repository={repository}",
        f"--backend-directory={backends}",
        f"--http-address={host}",
        f"--http-port={http_port}",
        f"--grpc-address={host}",
        f"--grpc-port={grpc_port}",
        "--allow-metrics=false",
        "--model-control-mode=explicit",
        "--log-verbose=0",
    ]
    command += [f"--load-model={name}" for name in load_models]
    return command + list(extra_args)


@dataclass
class TritonServer:
    """A tritonserver process started by :func:`start`."""

    proc: subprocess.Popen[bytes]
    grpc_port: int
    http_port: int
    repository: Path
    log: Path
    command: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        """host:port of the KServe v2 gRPC endpoint."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def url(self) -> str:
        """The probe runner's ``--runner-url`` for this server."""
        return f"triton://{self.address}"

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM (Triton unloads its models and exits), then SIGKILL after ``timeout``."""
        return stop_process(self.proc, "tritonserver", timeout)

    def restart(self, timeout: float = 60.0) -> None:
        """Start the same server again (same ports, repository, models) after :meth:`stop`."""
        self.stop()
        self.proc = _spawn(self.command, self.env, self.log)
        _wait_ready(self, timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        # A session of its own: a terminal's Ctrl-C goes to whoever started us, who stops us.
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _ready(port: int) -> bool:
    """Whether the server answers ServerReady (tritonclient's blocking client: no event loop)."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException

    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    try:
        return bool(client.is_server_ready(client_timeout=1.0))
    except InferenceServerException:
        return False
    finally:
        client.close()


def _wait_ready(server: TritonServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise Unavailable(
                f"tritonserver exited with status {server.proc.returncode}; its log ({server.log}):\n"
                + server.output()[-4000:]
            )
        if _ready(server.grpc_port):
            return
        time.sleep(0.1)
    server.stop()
    raise Unavailable(f"tritonserver was not ready after {timeout:.0f} s; its log ({server.log}):\n" + server.output()[-4000:])


def start(
    repository: str | Path,
    workdir: str | Path,
    *,
    grpc_port: int = 0,
    http_port: int = 0,
    load_models: Sequence[str] = (),
    timeout: float = 120.0,
    extra_args: Sequence[str] = (),
) -> TritonServer:
    """Start tritonserver on 127.0.0.1 and wait until it is ready (and ``load_models`` loaded).

    Parameters
    ----------
    repository : path
        A Triton model repository (see :mod:`probelog.probe_runner.triton_repo`).
    workdir : path
        Receives the backend directory and ``tritonserver.log``.
    grpc_port, http_port : int
        0 picks free ports.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    backends = prepare_backends(workdir / "backends")
    grpc_port = grpc_port or free_port()
    http_port = http_port or free_port()
    command = server_command(
        Path(repository).resolve(), backends.resolve(), grpc_port=grpc_port, http_port=http_port,
        load_models=load_models, extra_args=extra_args,
    )
    env = server_env()
    log = workdir / "tritonserver.log"
    server = TritonServer(_spawn(command, env, log), grpc_port, http_port, Path(repository), log, command, env)
    _wait_ready(server, timeout)
    logger.info("tritonserver pid %d serving %s on %s", server.proc.pid, repository, server.address)
    return server


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a repository in the foreground (exec: signals go straight to tritonserver)."""
    parser = argparse.ArgumentParser(prog="python -m probelog_devstack.triton_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-repository", required=True)
    parser.add_argument("--workdir", default=".data/triton", help="where the backend directory is prepared")
    parser.add_argument("--grpc-port", type=int, default=8001)
    parser.add_argument("--http-port", type=int, default=8000)
    parser.add_argument("--load-model", action="append", default=[], help="load at start (repeatable; '*' for all)")
    args = parser.parse_args(argv)
    try:
        backends = prepare_backends(Path(args.workdir) / "backends")
        command = server_command(
            Path(args.model_repository).resolve(), backends.resolve(),
            grpc_port=args.grpc_port, http_port=args.http_port, load_models=args.load_model,
        )
        env = server_env()
    except FailedPrecondition as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    os.execve(command[0], command, env)
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
