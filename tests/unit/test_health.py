"""The health board: reports keep the time they began; watched components are read on demand."""

from __future__ import annotations

from arbengine.runtime.health import HealthBoard


def test_a_repeated_report_keeps_its_start_and_clear_takes_it_back() -> None:
    now = [100.0]
    board = HealthBoard(wall=lambda: now[0])
    board.report("stream", "disconnected", subject="market-0")
    now[0] = 130.0
    board.report("stream", "still   disconnected\n(retrying)", subject="market-0")
    (entry,) = board.current()
    assert (entry.reason, entry.since) == ("still disconnected (retrying)", 100.0)
    assert board.clear("stream", subject="market-0")
    assert not board
    assert board.current() == []


def test_a_watched_component_is_whatever_its_probe_says_now() -> None:
    state: list[tuple[str, float] | None] = [None]
    board = HealthBoard(wall=lambda: 500.0)
    board.watch("writer", lambda: state[0])
    board.report("rest", "firewall block", since=50.0)
    assert [d.component for d in board.current()] == ["rest"]

    state[0] = ("database writes failing: WriteTimeout", 40.0)
    assert [(d.component, d.since) for d in board.current()] == [("writer", 40.0), ("rest", 50.0)]

    state[0] = None
    assert [d.component for d in board.current()] == ["rest"]
