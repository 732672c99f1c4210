"""The simulated clock on an injected wall clock."""

from __future__ import annotations

import pytest

from arbengine.sim.sim_clock import ClockMode, SimClock


class Wall:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_realtime_scales_wall_time_and_pauses_without_jumping() -> None:
    wall = Wall()
    clock = SimClock(1_000_000, ClockMode.REALTIME, speed=10, wall=wall)
    wall.now += 1.5
    assert clock.target_ms() == 1_015_000
    clock.pause()
    wall.now += 100
    assert clock.target_ms() == 1_015_000
    clock.resume()
    wall.now += 0.1
    assert clock.target_ms() == 1_016_000
    clock.set_speed(1)
    wall.now += 1
    assert clock.target_ms() == 1_017_000


def test_manual_moves_only_when_set() -> None:
    wall = Wall()
    clock = SimClock(5_000, ClockMode.MANUAL, wall=wall)
    wall.now += 50
    assert clock.target_ms() == 5_000
    clock.set_ms(9_000)
    assert clock.target_ms() == 9_000
    clock.set_ms(1_000)  # never backwards
    assert clock.target_ms() == 9_000
    with pytest.raises(ValueError, match="realtime"):
        clock.set_speed(3)


def test_as_fast_as_possible_follows_its_driver_and_can_pause() -> None:
    wall = Wall()
    clock = SimClock(5_000, ClockMode.MAX, wall=wall)
    assert not clock.paused
    wall.now += 50
    assert clock.target_ms() == 5_000  # wall time means nothing here
    clock.set_ms(7_000)
    assert clock.target_ms() == 7_000
    clock.pause()
    assert clock.paused
    clock.resume()
    assert not clock.paused
