"""Running a composed service: serve, report health as its backends are, drain on SIGTERM,
clean up; metrics and an access log for every call."""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from probelog.common.auth import ApiKeyInterceptor, ApiKeys, is_loopback
from probelog.common.errors import FailedPrecondition
from probelog.common.files import atomic_write_bytes
from probelog.common.health import HealthCheck, HealthWatcher
from probelog.common.observe import CallObserver, MetricsEndpoint
from probelog.common.server import GrpcServer, Servicer, create_server
from probelog.common.settings import Settings

logger = logging.getLogger(__name__)


def auth_interceptors(settings: Settings, address: str) -> list[ApiKeyInterceptor]:
    """The API-key check for a server with keys; none (and a warning when the address is not
    loopback) without."""
    try:
        keys = ApiKeys.load(settings.api_keys, settings.api_keys_file)
    except (OSError, ValueError) as exc:
        raise FailedPrecondition(f"cannot read the API keys: {exc}") from None
    if keys:
        logger.info("API keys required (%d keys)", len(keys.digests))
        return [ApiKeyInterceptor(keys, open_reflection=settings.auth_open_reflection)]
    if not is_loopback(address):
        logger.warning(
            "serving on %s without API keys: anyone who reaches it may call every method "
            "(set PROBELOG_API_KEYS or PROBELOG_API_KEYS_FILE)", address,
        )
    return []


async def run(
    servicers: Sequence[Servicer],
    settings: Settings,
    default_port: int,
    *,
    cleanup: Callable[[], Awaitable[None]] | None = None,
    ready_file: str = "",
    checks: Sequence[HealthCheck] = (),
    on_serving: Callable[[int], Awaitable[Callable[[], Awaitable[None]]]] | None = None,
) -> None:
    """Serve ``servicers`` until SIGTERM/SIGINT, then drain and run ``cleanup``.

    The server reports SERVING while every one of ``checks`` passes (checked every
    ``settings.health_interval_s``), NOT_SERVING otherwise. ``ready_file``, when given, receives
    the bound port once the first round of checks has set the health; tests and scripts that
    start servers on port 0 read it. ``on_serving``, when given, is called with the bound port
    before that (to start what talks to this server, e.g. the web page) and returns what stops
    it, called first at shutdown. With ``settings.metrics_listen_address``, Prometheus metrics
    are served there.
    """
    server: GrpcServer | None = None
    watcher: HealthWatcher | None = None
    metrics: MetricsEndpoint | None = None
    stop_companion: Callable[[], Awaitable[None]] | None = None
    try:
        address = settings.address(default_port)
        if settings.metrics_listen_address:
            try:
                metrics = MetricsEndpoint(settings.metrics_listen_address)
            except (OSError, ValueError) as exc:
                raise FailedPrecondition(f"cannot serve metrics on {settings.metrics_listen_address}: {exc}") from None
            logger.info("metrics on http://%s/metrics", settings.metrics_listen_address)
        server = await create_server(
            servicers,
            address,
            tls=settings.server_tls,
            health_address=settings.health_listen_address,
            interceptors=[CallObserver(), *auth_interceptors(settings, address)],
        )
        watcher = HealthWatcher(server, checks, settings.health_interval_s)
        await watcher.check_once()  # each service's readiness
        await server.set_live()
        watcher.start()
        if on_serving is not None:
            stop_companion = await on_serving(server.port)
        if ready_file:
            atomic_write_bytes(Path(ready_file), f"{server.port}\n".encode())
        logger.info("serving on port %d (pid %d)", server.port, os.getpid())
        await server.serve_until_signal(settings.grace_s)
    finally:
        if stop_companion is not None:
            await stop_companion()
        if watcher is not None:
            await watcher.stop()
        if metrics is not None:
            metrics.close()
        if cleanup is not None:
            await cleanup()
