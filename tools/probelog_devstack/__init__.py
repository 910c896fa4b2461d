"""The dev stack: Redis, Triton and the five services as local processes.

Development and test tooling beside the served package (never installed in an image):
:mod:`.redis_server` and :mod:`.triton_server` start the real backends on loopback,
:mod:`.stack` starts the five services against them (``deploy/dev-stack.sh``), and the
integration tests and ``bench/backends.py`` use the same classes.
"""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
