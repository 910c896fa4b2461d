"""The dev stack: Redis, Triton and the five services as local processes.

Development and test tooling beside the served package (never installed in an image):
:mod:`.redis_server` and :mod:`.triton_server` start the real backends on loopback,
:mod:`.stack` starts the five services against them (``deploy/dev-stack.sh``), and the
integration tests and ``bench/backends.py`` use the same classes.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess

logger = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], name: str, timeout: float) -> int:
    """SIGTERM (the process drains and exits), then SIGKILL after ``timeout`` seconds; returns
    the exit status."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("%s (pid %d) ignored SIGTERM for %.0f s; killing it", name, proc.pid, timeout)
            proc.kill()
            proc.wait()
    return int(proc.returncode)
