from __future__ import annotations

from arbengine.collect.indicators import known_time


def test_a_live_value_counts_from_its_arrival() -> None:
    assert known_time(own=1_000, received=1_250, live_within_ms=60_000) == 1_250


def test_a_value_that_arrived_before_its_own_time_keeps_its_own_time() -> None:
    assert known_time(own=1_000, received=990, live_within_ms=60_000) == 1_000


def test_history_fetched_long_after_keeps_its_own_time() -> None:
    assert known_time(own=1_000, received=1_000 + 86_400_000, live_within_ms=60_000) == 1_000
