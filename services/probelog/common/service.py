"""What a service's ``build(settings, peers)`` takes and gives.

Every service module has ``async def build(settings, peers) -> Built``: it opens the service's
own backends, wires its domain object to the peers it talks to, and returns the servicers to
serve. ``main.py`` passes gRPC clients as peers (one process per service); ``embedded.py``
passes the other services' own objects (one process for all five). Either way the same code
builds the service.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from probelog.common.errors import FailedPrecondition
from probelog.common.health import HealthCheck
from probelog.common.ports import DescriptorStore, EncoderPort, ProbeRunnerPort, RankerPort
from probelog.common.server import Servicer

T = TypeVar("T")
P = TypeVar("P")


@dataclass
class Peers:
    """The other services one service talks to, through their ports; None where it needs none."""

    store: DescriptorStore | None = None
    runner: ProbeRunnerPort | None = None
    encoder: EncoderPort | None = None
    ranker: RankerPort | None = None
    #: Called, last first, when the service closes (clients the composition root opened).
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    #: The health of the peers this service cannot work without (their grpc.health.v1 status
    #: when they are remote; in one process, their own checks).
    checks: list[HealthCheck] = field(default_factory=list)


def need(peer: P | None, role: str) -> P:
    """``peer``, or FailedPrecondition naming the missing role (a wiring error at start-up)."""
    if peer is None:
        raise FailedPrecondition(f"this service needs a {role} peer")
    return peer


@dataclass
class Built(Generic[T]):
    """A built service: its servicers, its domain object (what an in-process peer uses), what to
    close (last opened first) and what must answer for it to report SERVING."""

    servicers: list[Servicer]
    core: T
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    checks: list[HealthCheck] = field(default_factory=list)

    async def close(self) -> None:
        for close in reversed(self.closers):
            await close()
