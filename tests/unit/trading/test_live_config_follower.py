"""The settings the executor trades by: the file's [live] overridden by the latest
live_config row, applied once per new row, kept while the database is away."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from arbengine.domain.live_rows import LiveConfigRow
from arbengine.settings import LiveSettings
from arbengine.store.database import DatabaseUnavailable
from arbengine.trading.live_executor import ExecutorSettings
from arbengine.trading.live_service import LiveConfigFollower, executor_settings

FILE = LiveSettings(strategies=["a"], risk_per_trade_usd=10.0, max_positions=2, leverage=3)


@dataclass
class Executor:
    settings: ExecutorSettings


def row(*, paused: bool = False) -> LiveConfigRow:
    return LiveConfigRow(
        strategies=["b"], risk_per_trade_usd=25.0, max_positions=1, paused=paused,
        changed_by="alice",
    )  # fmt: skip


def test_the_row_overrides_the_file_and_a_pause_keeps_the_strategies() -> None:
    assert executor_settings(FILE, None) == ExecutorSettings(
        frozenset({"a"}), Decimal("10.0"), 2, 3, paused=False
    )
    paused = executor_settings(FILE, row(paused=True))
    assert (paused.strategies, paused.paused) == (frozenset({"b"}), True)
    assert (paused.risk_per_trade_usd, paused.max_positions, paused.leverage) == (
        Decimal("25.0"), 1, 3,
    )  # fmt: skip


async def test_a_new_row_is_applied_and_the_file_reloaded_under_it() -> None:
    rows: list[LiveConfigRow | None] = [None]
    changes: list[ExecutorSettings] = []

    async def latest() -> LiveConfigRow | None:
        return rows[-1]

    executor = Executor(executor_settings(FILE, None))
    follower = LiveConfigFollower(
        executor, FILE, latest, None, on_change=lambda _live, applied: changes.append(applied)
    )
    await follower.refresh()
    assert changes == []  # nothing new
    rows.append(row(paused=True))
    await follower.refresh()
    await follower.refresh()  # the same row: applied once
    assert len(changes) == 1
    assert executor.settings.paused is True
    assert executor.settings.strategies == frozenset({"b"})

    follower.reload_file(LiveSettings(strategies=["a"], risk_per_trade_usd=99.0, leverage=7))
    assert executor.settings.leverage == 7  # the file's own key
    assert executor.settings.risk_per_trade_usd == Decimal("25.0")  # still the row's


async def test_the_database_away_keeps_the_settings_in_force() -> None:
    async def latest() -> LiveConfigRow | None:
        raise DatabaseUnavailable("connection refused")

    before = executor_settings(FILE, row(paused=True))
    executor = Executor(before)
    follower = LiveConfigFollower(executor, FILE, latest, row(paused=True))
    await follower.refresh()  # no exception: a retryable outage never stops the executor
    assert executor.settings == before
