"""SignalCore: strategies with different ticks and windows, cooldown, reloads, due ticks."""

from __future__ import annotations

from typing import Any

import pytest

from arbengine.domain.market import Indicator, TradeBatch
from arbengine.signals import (
    NoFire,
    SignalCore,
    StrategySet,
    due_ticks,
    parse_strategy,
    tick_at_or_after,
)
from tests.unit.signals.signals_helpers import HOUR, MIN, SEC, T0, batch, buy, sell


def strategy(name: str, **overrides: Any) -> Any:
    doc: dict[str, Any] = {
        "name": name,
        "symbols": ["BTCUSDT"],
        "windows": {"fast": "1m", "mid": "5m", "day": "1h"},
        "max_staleness": "26h",
        "direction": {"feature": "flow_fast", "min": 0.1},
        "factors": [{"feature": "flow_mid", "weight": 1, "full": 0.5}],
        "entry": {"threshold": 50, "cooldown": "2m"},
        "exit": {"sl_atr": 1.0},
    }
    doc.update(overrides)
    return parse_strategy(doc)


def candles_and_flow(core: SignalCore, symbol: str, start: int, n: int, taker_sells: bool) -> None:
    """n minutes of trades: 15 candles of history first so ATR exists, then flow one way."""
    rows = []
    next_id = 1
    for i in range(16 * 5 * 60):  # 80 minutes of 1 s trades, both sides
        t = start + i * SEC
        rows.append((buy if i % 2 else sell)(next_id, t, 100.0 + (i % 7) * 0.1, 1.0))
        next_id += 1
    for i in range(n * 60):
        t = start + 80 * MIN + i * SEC
        rows.append((sell if taker_sells else buy)(next_id, t, 100.0, 1.0))
        next_id += 1
    core.add_trades(batch(rows, symbol))


START = T0 + 2 * HOUR


def test_strategies_are_evaluated_on_their_own_tick_grid_and_windows() -> None:
    fast = strategy("fast", tick="15s")
    slow = strategy("slow", tick="1m", windows={"fast": "2m", "mid": "5m", "day": "1h"})
    core = SignalCore(StrategySet((fast, slow)))
    assert core.tick_ms == 15_000
    candles_and_flow(core, "BTCUSDT", START, 10, taker_sells=False)
    t = START + 81 * MIN  # one minute of pure buying: on both grids
    both = core.evaluate(t)
    assert [e.strategy for e in both] == ["fast", "slow"]
    assert both[0].features["trades_fast"] == 60  # 1 min window
    assert both[1].features["trades_fast"] == 120  # 2 min window
    only_fast = core.evaluate(t + 15 * SEC)
    assert [e.strategy for e in only_fast] == ["fast"]


def test_cooldown_is_per_strategy_and_symbol_and_survives_reload() -> None:
    core = SignalCore(StrategySet((strategy("s", tick="15s"),)))
    candles_and_flow(core, "BTCUSDT", START, 10, taker_sells=False)
    t = START + 82 * MIN
    first = core.evaluate(t)[0]
    assert first.fired, first.reason
    assert core.last_fired("s", "BTCUSDT") == t
    assert core.evaluate(t + 1 * MIN)[0].reason is NoFire.COOLDOWN
    # a changed strategy with the same name keeps the cooldown
    core.replace_strategies(StrategySet((strategy("s", tick="15s", enabled=True),)))
    assert core.evaluate(t + 1 * MIN + 15 * SEC)[0].reason is NoFire.COOLDOWN
    assert core.evaluate(t + 2 * MIN)[0].fired


def test_cooldown_blocks_the_opposite_direction_too() -> None:
    core = SignalCore(StrategySet((strategy("s", tick="15s"),)))
    rows = []
    for i in range(80 * 60):
        side = buy if i % 2 else sell
        rows.append(side(i + 1, START + i * SEC, 100.0 + (i % 5) * 0.1, 1.0))
    # three minutes of buying, then heavy selling
    rows += [buy(10_000 + i, START + 80 * MIN + i * SEC, 100.0, 1.0) for i in range(180)]
    rows += [sell(20_000 + i, START + 83 * MIN + i * SEC, 100.0, 20.0) for i in range(120)]
    core.add_trades(batch(rows, "BTCUSDT"))
    long = core.evaluate(START + 83 * MIN)[0]
    assert (long.fired, long.direction) == (True, 1)
    # flow_mid = (180 − 1200) / 1440 over 79..84 min: a full-score short, within cooldown
    short = core.evaluate(START + 84 * MIN)[0]
    assert short.direction == -1
    assert short.score == 100.0
    assert short.reason is NoFire.COOLDOWN


def test_open_positions_callback_gets_strategy_symbol_and_tick() -> None:
    core = SignalCore(
        StrategySet((strategy("s", entry={"threshold": 50, "max_open_per_symbol": 1}),))
    )
    candles_and_flow(core, "BTCUSDT", START, 10, taker_sells=True)
    seen: list[tuple[str, str, int]] = []

    def open_positions(name: str, symbol: str, t: int) -> int:
        seen.append((name, symbol, t))
        return 1

    t = START + 82 * MIN
    ev = core.evaluate(t, open_positions=open_positions)[0]
    assert ev.direction == -1
    assert ev.reason is NoFire.MAX_OPEN
    assert seen == [("s", "BTCUSDT", t)]
    assert core.last_fired("s", "BTCUSDT") is None


def test_reload_reports_new_symbols_and_drops_unused_ones() -> None:
    core = SignalCore(StrategySet((strategy("a"),)))
    assert core.symbols == {"BTCUSDT"}
    added = core.replace_strategies(
        StrategySet((strategy("a", symbols=["ETHUSDT"]), strategy("b", enabled=False)))
    )
    assert added == {"ETHUSDT"}
    assert core.symbols == {"ETHUSDT"}
    assert core.add_trades(batch([buy(1, START, 1.0, 1.0)], "BTCUSDT")) is None


def test_market_events_are_routed_by_symbol() -> None:
    core = SignalCore(StrategySet((strategy("a"),)))
    trades = TradeBatch.of(
        "BTCUSDT",
        agg_id=[1, 2],
        ts=[START, START + SEC],
        price=[100.0, 101.0],
        qty=[1.0, 2.0],
        first_trade_id=[1, 2],
        last_trade_id=[1, 2],
        is_buyer_maker=[False, True],
    )
    result = core.add_market_event(trades)
    assert result is not None
    assert result.accepted == 2
    core.add_market_event(
        Indicator(symbol="BTCUSDT", kind="ls_global", ts=START, known_at=START, value=2.0)
    )
    core.add_market_event(
        Indicator(symbol="ETHUSDT", kind="ls_global", ts=START, known_at=START, value=2.0)
    )
    f = core.evaluate(START + 15 * SEC)[0].features
    assert f["cvd_fast"] == -1.0
    assert f["ls_global"] == pytest.approx(0.6931471805599453)


# ---- the live tick rule -----------------------------------------------------------------------


def test_tick_is_due_once_a_trade_at_or_after_it_arrived() -> None:
    t = T0 + 15 * SEC
    assert due_ticks(t, 15_000, latest_trade_ms=t - 1, wall_ms=t + 1999) == []
    assert due_ticks(t, 15_000, latest_trade_ms=t, wall_ms=t) == [t]


def test_tick_is_due_once_the_wall_clock_passed_the_grace() -> None:
    t = T0 + 15 * SEC
    assert due_ticks(t, 15_000, latest_trade_ms=None, wall_ms=t + 1999) == []
    assert due_ticks(t, 15_000, latest_trade_ms=None, wall_ms=t + 2000) == [t]
    assert due_ticks(t, 15_000, latest_trade_ms=None, wall_ms=t + 500, grace_ms=500) == [t]


def test_due_ticks_are_a_run_from_the_next_one() -> None:
    t = T0
    got = due_ticks(t, 15_000, latest_trade_ms=t + 46 * SEC, wall_ms=t + 10 * SEC)
    assert got == [t, t + 15_000, t + 30_000, t + 45_000]
    with pytest.raises(ValueError, match="grid"):
        due_ticks(t + 1, 15_000, latest_trade_ms=None, wall_ms=t)


def test_tick_at_or_after() -> None:
    assert tick_at_or_after(T0, 15_000) == T0
    assert tick_at_or_after(T0 + 1, 15_000) == T0 + 15_000
