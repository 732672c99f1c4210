"""The simulated clock: real time scaled by a speed factor, as fast as possible, or by hand.

Simulated time is the exchange's market time (trade ``T``, mark ``E``, funding
times). It is distinct from the *server time* used for request signing, which
always runs at wall-clock pace (shifted to equal simulated time at start):
a client that syncs its offset once with ``GET /fapi/v1/time`` keeps signing
valid timestamps whatever the speed, exactly as against Binance.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class ClockMode(StrEnum):
    REALTIME = "realtime"
    """Simulated time = start + speed × elapsed wall time (pausable)."""
    MAX = "max"
    """As fast as the clients drain: the driver advances by steps."""
    MANUAL = "manual"
    """Only an explicit advance moves time (tests)."""


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class SimClock:
    def __init__(
        self,
        start_ms: int,
        mode: ClockMode,
        speed: float = 1.0,
        wall: Callable[[], float] = time.monotonic,
    ) -> None:
        self.mode = mode
        self.speed = speed if mode is ClockMode.REALTIME else 0.0
        self._wall = wall
        self._base_sim = float(start_ms)
        self._base_wall = wall()
        self.paused = mode is ClockMode.MANUAL

    def target_ms(self) -> int:
        """Where the market should be now (realtime); the last set point otherwise."""
        if self.paused or self.mode is not ClockMode.REALTIME:
            return int(self._base_sim)
        return int(self._base_sim + (self._wall() - self._base_wall) * 1000.0 * self.speed)

    def pause(self) -> None:
        if self.mode is not ClockMode.MANUAL and not self.paused:
            self._base_sim = float(self.target_ms())
            self.paused = True

    def resume(self) -> None:
        if self.mode is not ClockMode.MANUAL and self.paused:
            self._base_wall = self._wall()
            self.paused = False

    def set_speed(self, speed: float) -> None:
        if self.mode is not ClockMode.REALTIME or speed <= 0:
            raise ValueError("speed can only change in realtime mode, to a positive factor")
        if not self.paused:
            self._base_sim = float(self.target_ms())
            self._base_wall = self._wall()
        self.speed = speed

    def set_ms(self, t_ms: int) -> None:
        """Move the set point (manual/max modes, or a paused realtime clock)."""
        self._base_sim = float(max(t_ms, int(self._base_sim)))
        self._base_wall = self._wall()
