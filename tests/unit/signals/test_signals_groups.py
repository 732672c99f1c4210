"""A symbol's strategies evaluated together: each spec gets the very floats it gets alone.

The engine evaluates every strategy of a symbol in one pass (``evaluate_each``), sharing
window sums, the last price, the ATR state, indicator values and the large-order tail
between specs. Sharing must never change a value: on generated days, every feature under
every spec is compared, bit for bit, with the replaced core evaluating that spec alone.
"""

from __future__ import annotations

import numpy as np

from arbengine.signals import SymbolFeatures, parse_strategy
from arbengine.signals.signal_core import SignalCore
from arbengine.signals.strategy import StrategySet
from tests.unit.signals.legacy_core.features import SymbolFeatures as LegacyFeatures
from tests.unit.signals.signals_helpers import HOUR, MIN, T0
from tests.unit.signals.test_signals_core_oracle import (
    DAY,
    SPECS,
    TICK,
    _day_of_trades,
    _feed_event,
    _indicators,
    _same,
)


def _fed(seed: int, days: int, trades_per_day: int) -> tuple[SymbolFeatures, LegacyFeatures]:
    rng = np.random.default_rng(seed)
    new, old = SymbolFeatures("BTCUSDT"), LegacyFeatures("BTCUSDT")
    for event in _indicators(rng, T0 - HOUR, T0 + days * DAY):
        _feed_event(new, event)
        _feed_event(old, event)
    for day in range(days):
        trades = _day_of_trades(rng, T0 + day * DAY, trades_per_day, 1 + day * trades_per_day)
        new.add_trades(trades)
        old.add_trades(trades)
    return new, old


def test_specs_evaluated_together_get_the_floats_of_each_alone() -> None:
    new, old = _fed(seed=41, days=2, trades_per_day=60_000)
    compared = 0
    for k, t in enumerate(range(T0 + DAY, T0 + 2 * DAY, TICK)):
        if k % 7 == 3:
            # A spec already evaluated alone at this tick: the group reuses its features.
            _same(new.evaluate(t, SPECS[1]), old.evaluate(t, SPECS[1]), f"tick {t} alone")
        got = new.evaluate_each(t, SPECS)
        assert len(got) == len(SPECS)
        for spec, features in zip(SPECS, got, strict=True):
            _same(features, old.evaluate(t, spec), f"tick {t}, {spec}")
            compared += 1
    assert compared == 5_760 * len(SPECS)


def test_the_engine_scores_each_strategy_on_the_features_of_its_own_spec() -> None:
    windows = [("5m", "30m", "1h", "2m"), ("30m", "4h", "24h", "5m"), ("15m", "4h", "24h", "10m")]
    strategies = StrategySet(
        tuple(
            parse_strategy(
                {
                    "name": f"s{i}",
                    "symbols": ["BTCUSDT"],
                    "windows": {"fast": fast, "mid": mid, "day": day},
                    "max_staleness": stale,
                    "atr_percentile_min_values": 12,
                    "direction": {"feature": "flow_fast", "min": 0.0},
                    "factors": [{"feature": "flow_mid", "weight": 1, "full": 0.1}],
                    "entry": {"threshold": 90},
                    "exit": {"sl_atr": 1.0},
                }
            )
            for i, (fast, mid, day, stale) in enumerate(windows)
        )
    )
    core = SignalCore(strategies)
    rng = np.random.default_rng(43)
    old = LegacyFeatures("BTCUSDT")
    for event in _indicators(rng, T0 - HOUR, T0 + 2 * DAY):
        core.add_market_event(event)
        _feed_event(old, event)
    for day in range(2):
        trades = _day_of_trades(rng, T0 + day * DAY, 40_000, 1 + day * 40_000)
        core.add_trades(trades)
        old.add_trades(trades)
    specs = {s.name: s.feature_spec for s in strategies}
    for t in range(T0 + DAY + 10 * MIN, T0 + 2 * DAY, 37 * TICK):
        evaluations = core.evaluate(t)
        assert [e.strategy for e in evaluations] == ["s0", "s1", "s2"]
        for e in evaluations:
            _same(e.features, old.evaluate(t, specs[e.strategy]), f"tick {t}, {e.strategy}")
