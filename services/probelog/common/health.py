"""Health that tells the truth: a service is SERVING only while the backends it needs answer.

Each composition root lists its :class:`HealthCheck` s (the store: Redis or its directory; the
runner: Triton or its model repository and the store; the orchestrator: the peers a search
needs). A :class:`HealthWatcher` runs them every ``interval_s`` and sets the grpc.health.v1
status of each service the server serves (``probelog.v1.DescriptorStoreService``...) to SERVING
when all pass and NOT_SERVING as soon as one fails, logging each change with the failing
backend's message. Readiness probes ask for the service's name, so a pod whose Redis is gone
leaves its Service until Redis returns; liveness asks for the server as a whole (""), which
stays SERVING while the process answers, so a lost backend does not restart the pod.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import ModuleType

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from probelog.common.errors import Unavailable
from probelog.common.server import GrpcServer

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HealthCheck:
    """A backend a service cannot work without: ``check(timeout_s)`` returns when it answers and
    raises (any exception, its message saying what is wrong) when it does not."""

    what: str
    check: Callable[[float], Awaitable[None]]


def service_name(module: ModuleType, service: str) -> str:
    """The full name (``probelog.v1.RankerService``) of a service declared in a ``*_pb2`` module."""
    return str(module.DESCRIPTOR.services_by_name[service].full_name)


def peer_check(channel: grpc.aio.Channel, service: str, what: str) -> HealthCheck:
    """The grpc.health.v1 status of ``service`` on a peer's channel, as a check."""
    stub = health_pb2_grpc.HealthStub(channel)

    async def check(timeout_s: float) -> None:
        try:
            reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise Unavailable(f"{exc.code().name}: {exc.details()}") from None
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            raise Unavailable(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))

    return HealthCheck(what, check)


async def failures(checks: Sequence[HealthCheck], timeout_s: float) -> list[str]:
    """Run every check at once; one line per failing backend ("redis at ...: <why>")."""

    async def one(check: HealthCheck) -> str | None:
        try:
            async with asyncio.timeout(timeout_s):
                await check.check(timeout_s)
        except TimeoutError:
            return f"{check.what}: no answer within {timeout_s:g} s"
        except Exception as exc:  # a check's failure is data here, whatever its type
            return f"{check.what}: {exc}"
        return None

    return [line for line in await asyncio.gather(*(one(c) for c in checks)) if line]


class HealthWatcher:
    """Keeps a server's health statuses equal to the result of its checks.

    Parameters
    ----------
    server : GrpcServer
        Whose statuses to set.
    checks : sequence of HealthCheck
        All must pass for SERVING.
    interval_s : float
        Time between two rounds of checks.
    """

    def __init__(self, server: GrpcServer, checks: Sequence[HealthCheck], interval_s: float = 5.0) -> None:
        if interval_s <= 0:
            raise ValueError(f"the health interval must be positive, got {interval_s}")
        self.server = server
        self.checks = list(checks)
        self.interval_s = interval_s
        self.timeout_s = min(2.0, interval_s)
        self.serving: bool | None = None
        self._task: asyncio.Task[None] | None = None

    async def check_once(self) -> bool:
        """One round: set the statuses, log a change; whether all checks passed."""
        failed = await failures(self.checks, self.timeout_s)
        serving = not failed
        if serving != self.serving:
            if serving:
                if self.serving is not None:
                    logger.warning("health: SERVING again (%s answer)", ", ".join(c.what for c in self.checks))
            else:
                logger.error("health: NOT_SERVING: %s", "; ".join(failed))
            self.serving = serving
            await self.server.set_serving(serving, services_only=True)
        return serving

    def start(self) -> None:
        if self._task is None and self.checks:
            self._task = asyncio.create_task(self._loop(), name="health-watcher")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.check_once()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
