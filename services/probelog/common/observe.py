"""What every server reports about its calls: Prometheus metrics and one log line per RPC.

:class:`CallObserver` is a server interceptor that, for every call, takes the caller's
``x-request-id`` (or makes one), keeps it in :data:`REQUEST_ID` while the call runs (so every log
line of the call carries it, see :mod:`probelog.common.logs`), and when the call ends counts it
by service, method and status code, records its duration in a histogram, and logs ``rpc``,
``code``, ``duration_ms`` and ``request_id`` on the ``probelog.access`` logger (health checks
and reflection are counted, not logged). :func:`serve_metrics` exposes the process's metrics
over HTTP for Prometheus to scrape (``/metrics``).

The metrics (all prefixed ``probelog_``):

=================================== ==================================================
rpc_total{service,method,code}      calls ended, by status code
rpc_duration_seconds{service,method} a histogram of call durations
rpc_in_flight{service}              calls running now
health_serving{service}             1 while the server reports SERVING, else 0
stage_seconds{rpc,stage}            the orchestrator's stages: encode and rank of a
                                    search, probe, descriptors, store and searchable of
                                    an index
probe_images_per_second             probing throughput of each indexed model
store_read_seconds{backend,operation}  the descriptor store's reads (get_model,
                                    list_models, get_probe_set, list_probe_sets), as
                                    seen by the store: Redis round trips and retries,
                                    or file reads
store_write_seconds{backend,operation} its writes (put_model, delete_model,
                                    put_probe_set), committed or refused
=================================== ==================================================

The encoder adds its text cache and pass sizes (:mod:`probelog.clip_encoder.text_batches`),
the ranker its batch sizes and window waits (:mod:`probelog.ranker.batcher`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar, cast

import grpc
from prometheus_client import Counter, Gauge, Histogram, start_http_server

#: The id of the call being served ("" outside a call).
REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("probelog_request_id", default="")
REQUEST_ID_HEADER = "x-request-id"

_QUIET = ("/grpc.health.v1.Health/", "/grpc.reflection.")
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

RPCS = Counter("probelog_rpc_total", "gRPC calls ended, by status code", ["service", "method", "code"])
DURATION = Histogram(
    "probelog_rpc_duration_seconds", "Duration of gRPC calls", ["service", "method"], buckets=_BUCKETS
)
IN_FLIGHT = Gauge("probelog_rpc_in_flight", "gRPC calls running now", ["service"])
SERVING = Gauge("probelog_health_serving", "1 while the server reports SERVING", ["service"])
STAGES = Histogram("probelog_stage_seconds", "Duration of each stage of an orchestrator call", ["rpc", "stage"], buckets=_BUCKETS)
PROBE_RATE = Histogram(
    "probelog_probe_images_per_second", "Probe images per second while indexing a model",
    buckets=(10, 30, 100, 300, 1000, 3000, 10000, 30000),
)
STORE_READS = Histogram(
    "probelog_store_read_seconds", "Duration of descriptor-store reads", ["backend", "operation"], buckets=_BUCKETS
)
STORE_WRITES = Histogram(
    "probelog_store_write_seconds", "Duration of descriptor-store writes", ["backend", "operation"], buckets=_BUCKETS
)

_StoreMethod = TypeVar("_StoreMethod", bound=Callable[..., Awaitable[Any]])


def _timed_in(histogram: Histogram) -> Callable[[_StoreMethod], _StoreMethod]:
    def decorate(method: _StoreMethod) -> _StoreMethod:
        @functools.wraps(method)
        async def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return await method(self, *args, **kwargs)
            finally:
                # Failures too: a read that waited out Redis's retries is the slow one to see.
                histogram.labels(self.backend, method.__name__).observe(time.perf_counter() - started)

        return cast(_StoreMethod, timed)

    return decorate


#: Decorate a store method (of a class with a ``backend`` name) to time it as a read or a write.
store_read = _timed_in(STORE_READS)
store_write = _timed_in(STORE_WRITES)


def observe_stages(rpc: str, **microseconds: int) -> None:
    """Record the stages of one orchestrator call, given in microseconds by name."""
    for stage, us in microseconds.items():
        STAGES.labels(rpc, stage).observe(us / 1e6)

access = logging.getLogger("probelog.access")


def split_method(full: str) -> tuple[str, str]:
    """``/probelog.v1.SearchService/Search`` -> (``probelog.v1.SearchService``, ``Search``)."""
    service, _, method = full.lstrip("/").rpartition("/")
    return service, method


def _request_id(details: grpc.HandlerCallDetails) -> str:
    for key, value in details.invocation_metadata or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and 0 < len(value) <= 128:
            return value
    return uuid.uuid4().hex[:16]


class _Call:
    """One call's bookkeeping: opened when it starts, closed with its status code."""

    def __init__(self, full_method: str, request_id: str) -> None:
        self.full_method = full_method
        self.service, self.method = split_method(full_method)
        self.request_id = request_id
        self.started = time.perf_counter()
        self._token = REQUEST_ID.set(request_id)
        IN_FLIGHT.labels(self.service).inc()

    def close(self, code: grpc.StatusCode) -> None:
        elapsed = time.perf_counter() - self.started
        IN_FLIGHT.labels(self.service).dec()
        RPCS.labels(self.service, self.method, code.name).inc()
        DURATION.labels(self.service, self.method).observe(elapsed)
        if not self.full_method.startswith(_QUIET):
            level = logging.WARNING if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) else logging.INFO
            access.log(
                level,
                "%s %s %.1f ms",
                self.full_method,
                code.name,
                elapsed * 1000,
                extra={"rpc": self.full_method, "code": code.name, "duration_ms": round(elapsed * 1000, 3)},
            )
        with contextlib.suppress(ValueError):  # a stream may end in another context than it began
            REQUEST_ID.reset(self._token)


def _code_of(context: grpc.aio.ServicerContext, exc: BaseException | None) -> grpc.StatusCode:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if exc is None:
        return grpc.StatusCode.OK
    if isinstance(exc, asyncio.CancelledError):  # the caller went away
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.UNKNOWN


def _observed(handler: grpc.RpcMethodHandler, full_method: str, request_id: str) -> grpc.RpcMethodHandler:
    """``handler`` with each call observed; the same kind of handler."""
    if handler.response_streaming:
        inner_stream = handler.unary_stream or handler.stream_stream

        async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            call = _Call(full_method, request_id)
            failure: BaseException | None = None
            try:
                async for item in inner_stream(request, context):
                    yield item
            except BaseException as exc:
                failure = exc
                raise
            finally:
                call.close(_code_of(context, failure))

        behaviour: Callable[..., Any] = streaming
    else:
        inner_unary: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]] = (
            handler.unary_unary or handler.stream_unary
        )

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            call = _Call(full_method, request_id)
            failure: BaseException | None = None
            try:
                return await inner_unary(request, context)
            except BaseException as exc:
                failure = exc
                raise
            finally:
                call.close(_code_of(context, failure))

        behaviour = unary
    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return make(
        behaviour,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class CallObserver(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Metrics and an access log line for every call (see the module docstring). Put it first
    among the interceptors so that calls refused by the API-key check are counted too."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return None
        return _observed(handler, details.method, _request_id(details))


class MetricsEndpoint:
    """The process's Prometheus metrics over HTTP at ``/metrics`` (a thread of its own)."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        try:
            port_number = int(port)
        except ValueError:
            raise ValueError(f"metrics address must be host:port, got {address!r}") from None
        self.server, self._thread = start_http_server(port_number, addr=host.strip("[]") or "0.0.0.0")
        self.port = int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
