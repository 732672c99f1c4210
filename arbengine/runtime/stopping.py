"""Waiting on work that a shutdown must not wait for."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from arbengine.runtime.backoff import Stopped

T = TypeVar("T")


async def unless_stopped(work: Awaitable[T], stop: asyncio.Event | None, what: str) -> T:
    """``work``'s result, or ``Stopped`` as soon as ``stop`` is set (``work`` cancelled).

    For reads only: a request waiting for the next minute's weight, or held by a slow
    exchange, must not hold a shutdown up; cancelling one loses nothing, since it is
    asked again at the next start. Never for an order, whose answer must be recorded."""
    task = asyncio.ensure_future(work)
    if stop is None:
        return await task
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        raise Stopped(f"{what}: stopped while waiting")
    return task.result()
