"""Writes that finish whatever happens to the caller.

A caller's deadline or cancellation may land in the middle of a store write. Cut there, a write
could leave a model file without its change-feed entry (stored but never searchable, or deleted
but still searchable) or a change line without its sequence counted (a duplicate sequence next
time). :func:`run_to_completion` runs the write as a task of its own and shields it: the caller
may stop waiting, the write still completes whole (or fails whole, as an error it raises).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Writes still running after their caller left: kept here so they are not garbage-collected.
_running: set[asyncio.Task[Any]] = set()


def _finished(task: asyncio.Task[Any]) -> None:
    _running.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.debug("a write whose caller had left failed: %s", task.exception())


async def run_to_completion(write: Coroutine[Any, Any, T]) -> T:
    """Await ``write``, which runs to its end even if this call is cancelled."""
    task = asyncio.ensure_future(write)
    _running.add(task)
    task.add_done_callback(_finished)
    return await asyncio.shield(task)
