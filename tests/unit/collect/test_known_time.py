from __future__ import annotations

from arbengine.collect.indicators import known_time


def test_a_live_value_counts_from_its_arrival() -> None:
    assert known_time(own=1_000, received=1_250, live=True) == 1_250


def test_a_value_that_arrived_before_its_own_time_keeps_its_own_time() -> None:
    assert known_time(own=1_000, received=990, live=True) == 1_000


def test_history_keeps_its_own_time_however_late_it_was_fetched() -> None:
    assert known_time(own=1_000, received=1_000 + 86_400_000, live=False) == 1_000
    assert known_time(own=1_000, received=1_250, live=False) == 1_000


def test_a_live_value_fetched_long_after_its_time_still_counts_from_its_arrival() -> None:
    assert known_time(own=1_000, received=1_000 + 3_600_000, live=True) == 1_000 + 3_600_000
