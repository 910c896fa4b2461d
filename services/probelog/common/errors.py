"""Domain exceptions: what went wrong, in the terms of the service, without any transport.

Library code raises these (``core/`` raises plain ValueError/TypeError). The servicer edge
(:mod:`probelog.common.edge`) holds the one table that maps them to gRPC status codes, and gRPC
clients turn a status back into the same exception, so an error keeps its kind across every hop.
"""

from __future__ import annotations


class ProbeLogError(Exception):
    """Base of all ProbeLog errors; carries a message fit for the client."""


class InvalidArgument(ProbeLogError):
    """The request is malformed: a bad value, shape or combination of fields.

    Parameters
    ----------
    message : str
    field : str
        The request field at fault (``"top_k"``, ``"query.text"``), "" when no single field is.
    """

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class NotFound(ProbeLogError):
    """A named model or probe set does not exist."""


class AlreadyExists(ProbeLogError):
    """The thing to create exists already and must not be replaced."""


class FailedPrecondition(ProbeLogError):
    """The system is not in a state the request needs (e.g. a probe-set mismatch, or a model
    whose outputs do not fit)."""


class Unavailable(ProbeLogError):
    """A backend (Redis, Triton, another service) cannot be reached; retrying may help."""


class ResourceExhausted(ProbeLogError):
    """A queue or limit is full."""


class DeadlineExceeded(ProbeLogError):
    """The request's deadline passed before the work finished."""


class Cancelled(ProbeLogError):
    """The caller cancelled the request."""


class RemoteError(ProbeLogError):
    """Another service failed with a status no domain error stands for.

    Parameters
    ----------
    message : str
    status : str
        The status code's name, e.g. ``"UNIMPLEMENTED"``.
    """

    def __init__(self, message: str, *, status: str) -> None:
        super().__init__(message)
        self.status = status
