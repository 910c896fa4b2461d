"""OpenTelemetry traces of gRPC calls, off unless the standard OTEL_* variables ask for them.

:func:`configure_tracing` turns tracing on when ``OTEL_TRACES_EXPORTER`` names an exporter
(``otlp`` or ``console``) or an OTLP endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, then ``otlp`` is the exporter). It instruments every
grpc.aio server and channel made afterwards, so a Search is one trace: the orchestrator's server
span, its client spans to the encoder, the ranker (each shard) and the store, and their server
spans, joined by the W3C ``traceparent`` metadata. The OTLP exporter reads its endpoint,
headers, certificate and timeout from the standard variables; ``OTEL_SERVICE_NAME`` names the
process (default ``probelog-<role>``). The packages come with the ``tracing`` extra.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping

from probelog.common.errors import FailedPrecondition

logger = logging.getLogger(__name__)

EXPORTERS = ("otlp", "console")


def exporter_name(environ: Mapping[str, str]) -> str:
    """The exporter the environment asks for, or "" (tracing off)."""
    name = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if name in ("", "none"):
        endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        return "otlp" if endpoint and name != "none" else ""
    if name not in EXPORTERS:
        raise FailedPrecondition(f"OTEL_TRACES_EXPORTER must be one of {', '.join(EXPORTERS)} or none, got {name!r}")
    return name


def configure_tracing(role: str, environ: Mapping[str, str] | None = None) -> Callable[[], None] | None:
    """Instrument gRPC and export spans as the environment says; returns the function that
    flushes and stops the exporter, or None when tracing is off."""
    env = os.environ if environ is None else environ
    name = exporter_name(env)
    if not name:
        return None
    try:
        from opentelemetry import trace
        from opentelemetry.instrumentation.grpc import GrpcAioInstrumentorClient, GrpcAioInstrumentorServer
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )
    except ImportError as exc:
        raise FailedPrecondition(f"tracing needs the tracing extra (pip install 'probelog[tracing]'): {exc}") from None
    service = env.get("OTEL_SERVICE_NAME") or f"probelog-{role}"
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    if name == "console":
        # Each span as it ends, one JSON object a line: for development and tests.
        console = ConsoleSpanExporter(formatter=lambda span: span.to_json(indent=None) + os.linesep)
        provider.add_span_processor(SimpleSpanProcessor(console))
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    GrpcAioInstrumentorServer().instrument()  # type: ignore[no-untyped-call]
    GrpcAioInstrumentorClient().instrument()  # type: ignore[no-untyped-call]
    logger.info("tracing on: %s exporter, service %s", name, service)
    return provider.shutdown
