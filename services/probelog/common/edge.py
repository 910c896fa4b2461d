"""The gRPC edge: the one table between domain errors and status codes, both ways.

Servicers raise domain errors (:mod:`probelog.common.errors`); :func:`rpc` turns them into a
status here and nowhere else. INVALID_ARGUMENT carries a ``google.rpc.BadRequest`` with the field
at fault (grpcio-status rich details), so a client can tell which field to fix. gRPC clients turn
a status back into the same domain error with :func:`from_rpc_error`.

=================== ===================
domain error        status code
=================== ===================
InvalidArgument     INVALID_ARGUMENT (+ BadRequest.FieldViolation)
NotFound            NOT_FOUND
AlreadyExists       ALREADY_EXISTS
FailedPrecondition  FAILED_PRECONDITION
Unavailable         UNAVAILABLE (names the peer)
ResourceExhausted   RESOURCE_EXHAUSTED
DeadlineExceeded    DEADLINE_EXCEEDED
Cancelled           CANCELLED
anything else       INTERNAL (an incident id; the traceback stays in the server log)
=================== ===================
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from probelog.common.errors import (
    AlreadyExists,
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ProbeLogError,
    RemoteError,
    ResourceExhausted,
    Unavailable,
)

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

#: The one mapping of domain errors to status codes.
STATUS_CODES: dict[type[ProbeLogError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    Cancelled: grpc.StatusCode.CANCELLED,
}
_ERRORS: dict[grpc.StatusCode, type[ProbeLogError]] = {code: cls for cls, code in STATUS_CODES.items()}


def status_code(exc: ProbeLogError) -> grpc.StatusCode:
    """The status code of a domain error (INTERNAL for one the table does not name)."""
    if isinstance(exc, RemoteError):
        return grpc.StatusCode[exc.status] if exc.status in grpc.StatusCode.__members__ else grpc.StatusCode.UNKNOWN
    for cls in type(exc).__mro__:
        if cls in STATUS_CODES:
            return STATUS_CODES[cls]
    return grpc.StatusCode.INTERNAL


def to_status(exc: ProbeLogError) -> grpc.Status:
    """The status (code, message and, for a bad field, BadRequest details) of a domain error."""
    code = status_code(exc)
    status = status_pb2.Status(code=code.value[0], message=str(exc))
    if isinstance(exc, InvalidArgument) and exc.field:
        violation = error_details_pb2.BadRequest.FieldViolation(field=exc.field, description=str(exc))
        detail = any_pb2.Any()
        detail.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        status.details.append(detail)
    return rpc_status.to_status(status)


def from_rpc_error(exc: grpc.RpcError, *, peer: str = "") -> ProbeLogError:
    """The domain error for a failed call to another service.

    UNAVAILABLE names the peer, so the client learns which endpoint is down; a BadRequest's
    field survives the hop.
    """
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    code = code if code is not None else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or str(code)
    cls = _ERRORS.get(code)
    if cls is None:
        return RemoteError(details, status=code.name)
    if cls is Unavailable and peer and peer not in details:
        details = f"{peer} is unavailable: {details}"
    if cls is InvalidArgument:
        return InvalidArgument(details, field=_bad_field(exc))
    return cls(details)


def _bad_field(exc: grpc.RpcError) -> str:
    """The first field violation of a BadRequest in the call's trailing metadata, or ""."""
    metadata = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    for key, value in metadata or ():
        if key != rpc_status.GRPC_DETAILS_METADATA_KEY:
            continue
        status = status_pb2.Status.FromString(value)
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                if bad.field_violations:
                    return str(bad.field_violations[0].field)
    return ""


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    if isinstance(exc, ProbeLogError):
        status = to_status(exc)
        logger.info("%s failed: %s: %s", method, status.code.name, exc)
        await context.abort(status.code, status.details, status.trailing_metadata)
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"{method}: deadline exceeded")
    incident = uuid.uuid4().hex[:12]
    logger.error("%s failed (incident %s)", method, incident, exc_info=exc)
    await context.abort(
        grpc.StatusCode.INTERNAL, f"internal error in {method} (incident {incident}; see server log)"
    )


def rpc(method: F) -> F:
    """Translate exceptions of a unary or server-streaming servicer method into statuses.

    Domain errors keep their code and message; anything else becomes INTERNAL with an incident
    id that is logged with the traceback (never sent to the client).
    """
    name = method.__name__
    if inspect.isasyncgenfunction(method):

        @functools.wraps(method)
        async def stream_wrapper(self: Any, request: Any, context: Any) -> AsyncIterator[Any]:
            try:
                async for item in method(self, request, context):
                    yield item
            except (asyncio.CancelledError, GeneratorExit):
                raise
            except grpc.aio.AbortError:
                raise
            except BaseException as exc:
                await _abort(context, exc, name)

        return stream_wrapper  # type: ignore[return-value]

    @functools.wraps(method)
    async def unary_wrapper(self: Any, request: Any, context: Any) -> Any:
        try:
            return await method(self, request, context)
        except asyncio.CancelledError:
            raise
        except grpc.aio.AbortError:
            raise
        except Exception as exc:
            await _abort(context, exc, name)

    return unary_wrapper  # type: ignore[return-value]


def time_remaining(context: grpc.aio.ServicerContext, default_s: float | None = None) -> float | None:
    """Seconds left before the caller's deadline (``default_s`` when it set none).

    Raises DeadlineExceeded when the deadline has already passed.
    """
    remaining = context.time_remaining()
    if remaining is None:
        return default_s
    if remaining <= 0:
        raise DeadlineExceeded("deadline exceeded before the work started")
    return float(remaining)
