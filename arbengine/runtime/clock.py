"""Clocks as constructor arguments: the one seam where tests and replays substitute time.

A clock also owns waiting (``sleep``): a component that waits for a deadline on its clock
(a backoff, a flush interval, a connection's age or silence) is driven by a ``ManualClock``
in tests, which then advance time instead of sleeping through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Protocol


class Clock(Protocol):
    def time_ms(self) -> int:
        """Wall-clock epoch milliseconds (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going backwards."""
        ...

    async def sleep(self, seconds: float, stop: asyncio.Event | None = None) -> bool:
        """Wait ``seconds`` on this clock; False (at once) when ``stop`` is set first."""
        ...


async def _sleep_unless(seconds: float, stop: asyncio.Event | None) -> bool:
    if stop is None:
        await asyncio.sleep(seconds)
        return True
    if stop.is_set():
        return False
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))
    return not stop.is_set()


class SystemClock:
    def time_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float, stop: asyncio.Event | None = None) -> bool:
        return await _sleep_unless(seconds, stop)


class ManualClock:
    """A clock that moves only when told to: deterministic tests and replays.

    ``sleep`` returns once ``advance`` has moved the clock past its deadline; ``sleeps``
    lists every wait asked for (seconds), so a test can tell what a component waits for
    and ``until_sleeping`` to know it waits.
    """

    def __init__(self, start_ms: int = 0) -> None:
        self._now_ms = start_ms
        self._mono = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self.sleeps: list[float] = []
        """The duration of every ``sleep`` asked for, in order."""
        self._watchers: list[asyncio.Future[None]] = []

    def time_ms(self) -> int:
        return self._now_ms

    def monotonic(self) -> float:
        return self._mono

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("a clock does not go backwards")
        self._now_ms += ms
        self._mono += ms / 1000.0
        due = [(at, f) for at, f in self._sleepers if at <= self._mono]
        self._sleepers = [(at, f) for at, f in self._sleepers if at > self._mono]
        for _, future in due:
            if not future.done():
                future.set_result(None)

    def set_ms(self, now_ms: int) -> None:
        self.advance(now_ms - self._now_ms)

    @property
    def sleeping(self) -> int:
        """How many waits are pending (not yet due, not abandoned)."""
        return sum(1 for _, f in self._sleepers if not f.done())

    async def until_sleeping(self, count: int = 1) -> None:
        """Return once ``count`` waits are pending: what a test awaits before it advances."""
        while self.sleeping < count:
            watcher: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._watchers.append(watcher)
            await watcher

    async def sleep(self, seconds: float, stop: asyncio.Event | None = None) -> bool:
        self.sleeps.append(seconds)
        if stop is not None and stop.is_set():
            return False
        if seconds <= 0:
            await asyncio.sleep(0)
            return True
        loop = asyncio.get_running_loop()
        due: asyncio.Future[None] = loop.create_future()
        entry = (self._mono + seconds, due)
        self._sleepers.append(entry)
        watchers, self._watchers = self._watchers, []
        for watcher in watchers:
            if not watcher.done():
                watcher.set_result(None)
        waiting: set[asyncio.Future[Any]] = {due}
        stopped = None if stop is None else asyncio.ensure_future(stop.wait())
        if stopped is not None:
            waiting.add(stopped)
        try:
            await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if stopped is not None:
                stopped.cancel()
            if entry in self._sleepers:
                self._sleepers.remove(entry)
        return due.done()


class RemoteClock:
    """Another party's clock seen from here: ours plus a measured offset, and never behind
    the newest time that party has stamped on a message we received.

    The stamps keep it right where an offset cannot: a clock that runs at another pace
    (a simulated market at 60x, or paused) is followed as its messages arrive. So "when
    did this value arrive" and "which ticks are due" are answered on the clock that event
    times are written in, the exchange's.
    """

    def __init__(self, base: Clock, offset_ms: int = 0) -> None:
        self._base = base
        self.offset_ms = offset_ms
        self._seen_ms = 0

    def set_offset(self, offset_ms: int) -> None:
        """A new measurement of the other clock minus ours."""
        self.offset_ms = offset_ms

    def observe(self, remote_ms: int) -> None:
        """A message stamped ``remote_ms`` by the other party has arrived."""
        if remote_ms > self._seen_ms:
            self._seen_ms = remote_ms

    def time_ms(self) -> int:
        now = self._base.time_ms() + self.offset_ms
        return now if now > self._seen_ms else self._seen_ms

    def monotonic(self) -> float:
        return self._base.monotonic()

    async def sleep(self, seconds: float, stop: asyncio.Event | None = None) -> bool:
        return await self._base.sleep(seconds, stop)
