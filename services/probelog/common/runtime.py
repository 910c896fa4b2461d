"""Running a composed service: serve, report readiness, drain on SIGTERM, clean up."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from probelog.common.files import atomic_write_bytes
from probelog.common.server import GrpcServer, Servicer, create_server
from probelog.common.settings import Settings

logger = logging.getLogger(__name__)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


async def run(
    servicers: Sequence[Servicer],
    settings: Settings,
    default_port: int,
    *,
    cleanup: Callable[[], Awaitable[None]] | None = None,
    ready_file: str = "",
) -> None:
    """Serve ``servicers`` until SIGTERM/SIGINT, then drain and run ``cleanup``.

    ``ready_file``, when given, receives the bound port once the server reports SERVING; tests
    and scripts that start servers on port 0 read it.
    """
    server: GrpcServer | None = None
    try:
        server = await create_server(
            servicers,
            settings.address(default_port),
            tls=settings.server_tls,
            health_address=settings.health_listen_address,
        )
        await server.set_serving()
        if ready_file:
            atomic_write_bytes(Path(ready_file), f"{server.port}\n".encode())
        logger.info("serving on port %d (pid %d)", server.port, os.getpid())
        await server.serve_until_signal(settings.grace_s)
    finally:
        if cleanup is not None:
            await cleanup()
