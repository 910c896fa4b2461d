"""The servicer edge: domain errors become gRPC statuses here and nowhere else."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc

from probelog.common.errors import DeadlineExceeded, ProbeLogError

logger = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


async def _abort(context: grpc.aio.ServicerContext, exc: BaseException, method: str) -> None:
    if isinstance(exc, ProbeLogError):
        logger.info("%s failed: %s: %s", method, exc.code.name, exc)
        await context.abort(exc.code, str(exc))
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
