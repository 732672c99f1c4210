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


class OffsetClock:
    """Another clock shifted by a fixed offset: the exchange's time, seen from here."""

    def __init__(self, base: Clock, offset_ms: int) -> None:
        self._base = base
        self.offset_ms = offset_ms

    def time_ms(self) -> int:
        return self._base.time_ms() + self.offset_ms

    def monotonic(self) -> float:
        return self._base.monotonic()
