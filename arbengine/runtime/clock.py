"""Clocks as constructor arguments: the one seam where tests and replays substitute time."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time_ms(self) -> int:
        """Wall-clock epoch milliseconds (UTC)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin, never going backwards."""
        ...


class SystemClock:
    def time_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to: deterministic tests and replays."""

    def __init__(self, start_ms: int = 0) -> None:
        self._now_ms = start_ms
        self._mono = 0.0

    def time_ms(self) -> int:
        return self._now_ms

    def monotonic(self) -> float:
        return self._mono

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("a clock does not go backwards")
        self._now_ms += ms
        self._mono += ms / 1000.0

    def set_ms(self, now_ms: int) -> None:
        self.advance(now_ms - self._now_ms)


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
