"""The feature core against the one it replaced, feature by feature, bit for bit.

``legacy_core`` is the per-trade Python implementation the vectorised core replaced
(sorted-list large-order tail, ``np.add.at`` per-second sums), kept here only as an
oracle. On generated days shaped like a busy symbol, fed as a backtest feeds them (a
day at a time) and as the live engine does (small batches running a little ahead of
the tick, with late and repeated trades), every feature of every tick must be the
very same float.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

import numpy as np

from arbengine.domain.market import Indicator, Liquidation, TradeBatch
from arbengine.signals import FeatureSpec, SymbolFeatures
from tests.unit.signals.legacy_core.features import SymbolFeatures as LegacyFeatures
from tests.unit.signals.signals_helpers import HOUR, MIN, SEC, T0

DAY = 24 * HOUR
TICK = 15 * SEC
SPECS = (
    FeatureSpec(fast_ms=30 * MIN, mid_ms=4 * HOUR, day_ms=DAY),  # v52's windows
    FeatureSpec(fast_ms=15 * MIN, mid_ms=4 * HOUR, day_ms=DAY, max_staleness_ms=10 * MIN),
    FeatureSpec(fast_ms=5 * MIN, mid_ms=30 * MIN, day_ms=HOUR, atr_percentile_min_values=12),
)


def _day_of_trades(rng: np.random.Generator, start_ms: int, n: int, first_id: int) -> TradeBatch:
    """A BTC-like day: a random walk on a 0.1 grid, heavy-tailed sizes whose regime
    changes (the large-order tail's floor must be raised and lowered), a few zero sizes."""
    t = start_ms + np.sort(rng.integers(0, DAY, n))
    price = np.round(30_000 + np.cumsum(rng.choice([-1.0, 0.0, 0.0, 1.0], n)) * 0.1, 1)
    hours = (t - start_ms) // HOUR
    scale = np.where(hours % 7 == 3, 25.0, np.where(hours % 5 == 1, 0.05, 1.0))
    qty = np.round(rng.lognormal(-3.0, 1.6, n) * scale, 3)
    qty[rng.random(n) < 0.001] = 0.0
    maker = rng.random(n) < 0.5
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    return TradeBatch.of("BTCUSDT", ids, t, price, qty, [], [], maker)


def _indicators(rng: np.random.Generator, start_ms: int, end_ms: int) -> Iterator[Any]:
    for ms in range(start_ms, end_ms, 5 * MIN):
        for kind, value in (
            ("open_interest", rng.uniform(1e5, 1.1e5)),
            ("coinbase_price", rng.normal(30_000, 5)),
            ("index_price", rng.normal(30_000, 5)),
            ("funding_rate", rng.normal(1e-4, 2e-4)),
            ("ls_global", rng.uniform(0.8, 1.3)),
            ("taker_ratio", rng.uniform(0.8, 1.2)),
        ):
            yield Indicator("BTCUSDT", kind, ms, ms + 1_000, float(value))
        if rng.random() < 0.3:
            side: Literal["BUY", "SELL"] = "BUY" if rng.random() < 0.5 else "SELL"
            price = float(rng.normal(30_000, 5))
            yield Liquidation(
                "BTCUSDT", ms + 7, ms + 9, side, "LIMIT", "IOC", 0.5, price, price, "FILLED",
                0.5, 0.5,
            )  # fmt: skip


def _feed_event(state: Any, event: Any) -> None:
    if isinstance(event, Indicator):
        state.add_indicator(event)
    else:
        state.add_liquidation(event)


def _same(new: Any, old: Any, where: str) -> None:
    got = {k: float(v).hex() for k, v in new.as_dict().items()}
    want = {k: float(v).hex() for k, v in old.as_dict().items()}
    assert got == want, where


def _run(
    feed: Callable[[Any, Any, int], None],
    days: int,
    trades_per_day: int,
    seed: int,
    *,
    sweep: bool = True,
) -> int:
    """Both cores through ``days`` generated days; with ``sweep`` every tick from the second
    day on is compared once the day is fed (otherwise ``feed`` compares as it goes)."""
    rng = np.random.default_rng(seed)
    new, old = SymbolFeatures("BTCUSDT"), LegacyFeatures("BTCUSDT")
    events = list(_indicators(rng, T0 - HOUR, T0 + days * DAY))
    for event in events:
        _feed_event(new, event)
        _feed_event(old, event)
    compared = 0
    for day in range(days):
        trades = _day_of_trades(rng, T0 + day * DAY, trades_per_day, 1 + day * trades_per_day)
        feed((new, old), trades, day)
        if day == 0 or not sweep:
            continue
        for t in range(T0 + day * DAY, T0 + (day + 1) * DAY, TICK):
            for spec in SPECS:
                _same(new.evaluate(t, spec), old.evaluate(t, spec), f"tick {t}, {spec}")
                compared += 1
    assert new.late_trades == old.late_trades
    return compared


def _whole_days(states: Any, trades: TradeBatch, _day: int) -> None:
    for state in states:
        state.add_trades(trades)


def test_a_backtest_fed_a_day_at_a_time_gives_the_same_floats() -> None:
    assert _run(_whole_days, days=3, trades_per_day=100_000, seed=17) == 2 * 5_760 * len(SPECS)


def test_live_batches_with_late_and_repeated_trades_give_the_same_floats() -> None:
    rng = np.random.default_rng(23)
    pending: list[TradeBatch] = []

    def live(states: Any, trades: TradeBatch, day: int) -> None:
        # Cut the day into batches of a few seconds. Half of them in order, starting with
        # a few trades sent before (a reconnect's overlap); the others shuffled a little,
        # with some trades repeated. Some trades are held back to arrive one batch late.
        n = len(trades)
        cuts = np.sort(rng.choice(np.arange(1, n), n // 40, replace=False))
        for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), n], strict=True):
            idx = np.arange(lo, hi)
            held = rng.random(len(idx)) < 0.01
            if rng.random() < 0.5:
                sent = np.concatenate((np.arange(max(0, lo - 3), lo), idx[~held]))
            else:
                rng.shuffle(idx)
                held = rng.random(len(idx)) < 0.01
                sent = np.concatenate((idx[~held], idx[rng.random(len(idx)) < 0.02]))
            batch = trades.take(sent)
            for state in states:
                state.add_trades(batch)
            for late in pending:
                for state in states:
                    state.add_trades(late)
            pending[:] = [trades.take(idx[held])]
            if day >= 1:
                # Every tick as it comes due: once a trade at or after it has arrived.
                due = int(trades.ts[hi - 1]) // TICK * TICK
                while next_tick[0] <= due:
                    t = next_tick[0]
                    for spec in SPECS:
                        _same(states[0].evaluate(t, spec), states[1].evaluate(t, spec), f"t {t}")
                    next_tick[0] += TICK
                    compared[0] += 1

    next_tick, compared = [T0 + DAY], [0]
    _run(live, days=2, trades_per_day=40_000, seed=29, sweep=False)
    assert compared[0] > 5_700


def test_sparse_symbols_give_the_same_floats() -> None:
    # A quiet symbol: under 1000 trades in some day windows (no threshold), long gaps.
    _run(_whole_days, days=2, trades_per_day=1_500, seed=1)
