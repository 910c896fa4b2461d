"""One way to build, run and stop a gRPC server, shared by every service.

``create_server`` registers health checking and reflection next to the service(s), binds the
address (port 0 picks a free port, as tests do) and returns the bound port. Everything starts
NOT_SERVING; :func:`probelog.common.runtime.run` then sets the server as a whole ("", liveness)
SERVING and each service's name (readiness) as its backends answer
(:mod:`probelog.common.health`). On SIGTERM the server reports NOT_SERVING
(``enter_graceful_shutdown``) and then stops with a grace period, so load balancers drain it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from probelog.common.observe import SERVING

logger = logging.getLogger(__name__)

#: Large enough for a 4,000-probe x 1,000-logit chunk or a 500-concept background matrix.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024

CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    # A name is resolved again at most this often (gRPC's default, 30 s, would keep a restarted
    # ranker shard's new address unknown for that long).
    ("grpc.dns_min_time_between_resolutions_ms", 1000),
]


class Servicer(Protocol):
    """A servicer that knows its full service name and how to register itself."""

    SERVICE_NAME: str

    def add_to_server(self, server: grpc.aio.Server) -> None: ...


@dataclass(frozen=True)
class TlsFiles:
    """PEM files for TLS.

    A server uses ``cert_file`` + ``key_file``, and with ``client_ca_file`` requires every client
    to present a certificate signed by that CA (mTLS). A client verifies the server against
    ``ca_file`` and, with ``cert_file`` + ``key_file``, presents that certificate.
    """

    cert_file: str = ""
    key_file: str = ""
    ca_file: str = ""
    client_ca_file: str = ""

    def server_credentials(self) -> grpc.ServerCredentials:
        key = Path(self.key_file).read_bytes()
        cert = Path(self.cert_file).read_bytes()
        if self.client_ca_file:
            return grpc.ssl_server_credentials(
                [(key, cert)], root_certificates=Path(self.client_ca_file).read_bytes(), require_client_auth=True
            )
        return grpc.ssl_server_credentials([(key, cert)])

    def channel_credentials(self) -> grpc.ChannelCredentials:
        ca = Path(self.ca_file).read_bytes() if self.ca_file else None
        if self.cert_file and self.key_file:
            return grpc.ssl_channel_credentials(
                root_certificates=ca,
                private_key=Path(self.key_file).read_bytes(),
                certificate_chain=Path(self.cert_file).read_bytes(),
            )
        return grpc.ssl_channel_credentials(root_certificates=ca)


@dataclass
class GrpcServer:
    """A started gRPC server with its health servicer.

    ``health_server`` is a second, plaintext server that answers only grpc.health.v1 (sharing
    the same statuses): the kubelet's gRPC probes cannot speak TLS.
    """

    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: list[str] = field(default_factory=list)
    health_server: grpc.aio.Server | None = None

    async def set_serving(self, serving: bool = True, *, services_only: bool = False) -> None:
        """Set the status of every service name, and of the server as a whole ("") unless
        ``services_only``: "" tells liveness (the process answers), a service's name tells
        readiness (the backends it needs answer too)."""
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in [*([] if services_only else [""]), *self.service_names]:
            await self.health.set(name, status)
        for name in self.service_names:
            SERVING.labels(name).set(1 if serving else 0)

    async def set_live(self) -> None:
        """The server as a whole ("") SERVING: the process answers (liveness)."""
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace_s: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        if self.health_server is not None:
            await self.health_server.stop(0)

    async def serve_until_signal(self, grace_s: float = 5.0) -> None:
        """Serve until SIGTERM or SIGINT, then shut down gracefully."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        waiter = asyncio.create_task(self.server.wait_for_termination())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if stop.is_set():
            logger.info("signal received: draining for up to %.1f s", grace_s)
            await self.stop(grace_s)
        for task in (waiter, stopper):
            task.cancel()


async def create_server(
    servicers: Sequence[Servicer],
    address: str,
    *,
    tls: TlsFiles | None = None,
    health_address: str = "",
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
) -> GrpcServer:
    """Build and start a grpc.aio server for ``servicers`` on ``address``.

    Registers grpc.health.v1 (overall and per service, NOT_SERVING until
    :meth:`GrpcServer.set_serving`) and server reflection. With ``health_address``, health is
    also served in plaintext there, alone. ``interceptors`` see every call of the main server
    (API keys: :mod:`probelog.common.auth`).

    Returns
    -------
    GrpcServer
        ``port`` is the bound port (useful with ``127.0.0.1:0``).
    """
    server = grpc.aio.server(options=CHANNEL_OPTIONS, interceptors=list(interceptors))
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = []
    for servicer in servicers:
        servicer.add_to_server(server)
        names.append(servicer.SERVICE_NAME)
    reflection.enable_server_reflection(
        [*names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME],
        server,
    )
    if tls and tls.cert_file:
        port = server.add_secure_port(address, tls.server_credentials())
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}")
    await server.start()
    health_server = None
    if health_address:
        health_server = grpc.aio.server()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        if health_server.add_insecure_port(health_address) == 0:
            raise OSError(f"could not bind the health address {health_address}")
        await health_server.start()
    running = GrpcServer(
        server=server, port=port, health=health_servicer, service_names=names, health_server=health_server
    )
    await running.set_serving(False)
    logger.info("listening on %s (port %d): %s", address, port, ", ".join(names))
    return running


#: What the public client retries: UNAVAILABLE (a server restarting, a connection lost), up to 4
#: attempts with exponential backoff, within the call's own deadline. Every SearchService method is
#: safe to retry: reads, and writes that are idempotent (IndexModel replaces the model's version).
RETRY_SERVICE_CONFIG = json.dumps({
    "methodConfig": [{
        "name": [{"service": "probelog.v1.SearchService"}],
        "retryPolicy": {
            "maxAttempts": 4,
            "initialBackoff": "0.2s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        },
    }]
})


def create_channel(
    address: str, tls: TlsFiles | None = None, token: str = "", *, per_call: bool = False, retry: bool = False
) -> grpc.aio.Channel:
    """A client channel with the project's message limits and keepalive; with ``token``, every
    call carries ``authorization: Bearer <token>``; with ``per_call``, the metadata of
    :data:`probelog.common.auth.CALL_METADATA` too; with ``retry``, gRPC retries UNAVAILABLE
    (:data:`RETRY_SERVICE_CONFIG`)."""
    from probelog.common.auth import bearer_interceptors

    interceptors = bearer_interceptors(token, per_call=per_call)
    options = list(CHANNEL_OPTIONS)
    if retry:
        options += [("grpc.enable_retries", 1), ("grpc.service_config", RETRY_SERVICE_CONFIG)]
    if tls and (tls.ca_file or tls.cert_file):
        return grpc.aio.secure_channel(address, tls.channel_credentials(), options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
