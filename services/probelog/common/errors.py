"""Domain exceptions, and their one translation to and from gRPC status codes.

Library code raises these (``core/`` raises plain ValueError/TypeError); only the servicer edge
turns them into a gRPC status (:func:`grpc_code`), and gRPC clients turn a status back into
the same exception (:func:`from_rpc_error`), so an error keeps its code across every hop.
"""

from __future__ import annotations

import grpc


class ProbeLogError(Exception):
    """Base of all ProbeLog errors; carries a message fit for the client."""

    code: grpc.StatusCode = grpc.StatusCode.INTERNAL


class InvalidArgument(ProbeLogError):
    """The request is malformed: a bad value, shape or combination of fields."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ProbeLogError):
    """A named model or probe set does not exist."""

    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ProbeLogError):
    """The thing to create exists already and must not be replaced."""

    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ProbeLogError):
    """The system is not in a state the request needs (e.g. a probe-set mismatch, or a model
    whose outputs do not fit)."""

    code = grpc.StatusCode.FAILED_PRECONDITION


class Unavailable(ProbeLogError):
    """A backend (Redis, Triton, another service) cannot be reached; retrying may help."""

    code = grpc.StatusCode.UNAVAILABLE


class ResourceExhausted(ProbeLogError):
    """A queue or limit is full."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class DeadlineExceeded(ProbeLogError):
    """The request's deadline passed before the work finished."""

    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(ProbeLogError):
    """The caller cancelled the request."""

    code = grpc.StatusCode.CANCELLED


_BY_CODE: dict[grpc.StatusCode, type[ProbeLogError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        FailedPrecondition,
        Unavailable,
        ResourceExhausted,
        DeadlineExceeded,
        Cancelled,
    )
}


def from_rpc_error(exc: grpc.RpcError, *, peer: str = "") -> ProbeLogError:
    """The domain exception for a failed call to another service.

    UNAVAILABLE names the peer, so the client learns which endpoint is down.
    """
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = (exc.details() if hasattr(exc, "details") else None) or str(code)
    cls = _BY_CODE.get(code, ProbeLogError)
    if cls is Unavailable and peer and peer not in details:
        details = f"{peer} is unavailable: {details}"
    err = cls(details)
    if cls is ProbeLogError:
        err.code = code if code is not None else grpc.StatusCode.UNKNOWN
    return err
