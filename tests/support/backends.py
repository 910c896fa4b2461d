"""The real backends for integration tests: Redis and tritonserver.

Redis runs in a container through testcontainers when a Docker engine answers; otherwise the
fixture starts Debian's ``redis-server`` itself on a free loopback port (``scripts/setup.sh``
installs it). Triton is the real ``tritonserver`` binary from the nvidia-pytriton wheel. A
missing binary fails the test with the install command: these tests never skip.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probelog_devstack import redis_server

logger = logging.getLogger(__name__)


def docker_answers() -> bool:
    """Whether testcontainers can run a container here (its package and a Docker engine)."""
    try:
        import docker  # type: ignore[import-not-found]
        import testcontainers.redis  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    try:
        return bool(docker.from_env().ping())
    except Exception:
        return False


@dataclass
class RedisHandle:
    """A Redis the tests can reach at ``url``; ``local`` is set when it is our own process
    (kill/restart tests need one)."""

    url: str
    local: redis_server.RedisServer | None = None
    container: Any = None


@contextmanager
def redis_for_tests(workdir: Path, *, persistent: bool = False, need_process: bool = False) -> Iterator[RedisHandle]:
    """A Redis for a test module or session: testcontainers when Docker answers (unless the
    test must kill the process itself), else a local redis-server."""
    if not need_process and docker_answers():
        from testcontainers.redis import RedisContainer

        with RedisContainer("redis:7.0") as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(6379)
            logger.info("redis in a container at %s:%s", host, port)
            yield RedisHandle(url=f"redis://{host}:{port}/0", container=container)
        return
    server = redis_server.start(workdir, persistent=persistent)
    try:
        yield RedisHandle(url=server.url, local=server)
    finally:
        server.stop()
