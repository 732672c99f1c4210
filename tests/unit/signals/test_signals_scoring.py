"""Direction, factor scores, score, coverage, gates and firing, on worked examples.

The strategy is the SIGNALS.md example (v52); expected numbers are computed by
hand in the comments.
"""

from __future__ import annotations

from typing import Any

import pytest

from arbengine.signals import (
    Features,
    NoFire,
    Strategy,
    evaluate_strategy,
    factor_score,
    parse_strategy,
)
from arbengine.signals.strategy import Factor
from tests.unit.signals.signals_helpers import T0

V52: dict[str, Any] = {
    "name": "v52",
    "symbols": ["BTCUSDT"],
    "direction": {"feature": "flow_fast", "min": 0.05, "confirm": ["flow_mid"]},
    "factors": [
        {"feature": "flow_mid", "weight": 20, "full": 0.15},
        {"feature": "vwap_dev_fast", "weight": 15, "full": 0.002},
        {"feature": "large_imbalance_fast", "weight": 20, "full": 0.5},
        {"feature": "oi_change_1h", "weight": 10, "full": 0.02, "unsigned": True},
        {"feature": "ls_global", "weight": 10, "full": 0.3, "contrarian": True},
        {"feature": "funding_rate", "weight": 10, "full": 0.0005, "contrarian": True},
        {"feature": "coinbase_premium_bps", "weight": 10, "full": 5},
        {"feature": "liq_imbalance_fast", "weight": 5, "full": 0.5},
    ],
    "gates": {"atr_percentile": [20, 95], "trades_fast": [50, None]},
    "entry": {"threshold": 70, "min_coverage": 60, "cooldown": "30m", "max_open_per_symbol": 1},
    "exit": {"sl_atr": 1.5},
}
STRATEGY: Strategy = parse_strategy(V52)
T = T0 + 3_600_000

# A long setup: every factor but funding present, mixed strength.
LONG = {
    "price": 100.0,
    "atr": 0.5,
    "atr_percentile": 50.0,
    "trades_fast": 120.0,
    "flow_fast": 0.08,  # ≥ 0.05 → d = +1
    "flow_mid": 0.075,  # confirms (> 0); factor: 0.075 / 0.15 = 0.5 → 20 · 0.5 = 10
    "vwap_dev_fast": 0.003,  # 1.5 → clamped to 1 → 15
    "large_imbalance_fast": -0.25,  # against the long → 0
    "oi_change_1h": 0.01,  # unsigned: 0.5 → 5
    "ls_global": -0.15,  # contrarian: −(+1)(−0.15) / 0.3 = 0.5 → 5
    "coinbase_premium_bps": 2.0,  # 0.4 → 4
    "liq_imbalance_fast": 0.5,  # 1 → 5
}
# present weight 20+15+20+10+10+10+5 = 90 of 100; Σ wᵢsᵢ = 10+15+0+5+5+4+5 = 44


def feats(values: dict[str, float], t: int = T) -> Features:
    return Features("BTCUSDT", t, values)


def test_worked_long_example_below_threshold() -> None:
    ev = evaluate_strategy(STRATEGY, feats(dict(LONG, cvd_day=12.0)))
    assert ev.features_used == LONG  # cvd_day is not read by the strategy
    assert ev.direction == 1
    assert ev.coverage == pytest.approx(90.0)
    assert ev.score == pytest.approx(100 * 44 / 90)  # 48.89
    assert ev.contributions == pytest.approx(
        {
            "flow_mid": 10.0,
            "vwap_dev_fast": 15.0,
            "large_imbalance_fast": 0.0,
            "oi_change_1h": 5.0,
            "ls_global": 5.0,
            "coinbase_premium_bps": 4.0,
            "liq_imbalance_fast": 5.0,
        }
    )
    funding = next(f for f in ev.factors if f.feature == "funding_rate")
    assert (funding.value, funding.score, funding.contribution) == (None, None, None)
    assert not ev.fired
    assert ev.reason is NoFire.BELOW_THRESHOLD


def test_worked_short_example_mirrors_signs() -> None:
    # Every signed input flipped: d = −1, same scores, except the unsigned OI factor:
    # −0.01 / 0.02 < 0 → 0 (falling open interest scores nothing in either direction).
    short = {
        k: (-v if k not in {"price", "atr", "atr_percentile", "trades_fast"} else v)
        for k, v in LONG.items()
    }
    ev = evaluate_strategy(STRATEGY, feats(short))
    assert ev.direction == -1
    assert ev.contributions["oi_change_1h"] == 0.0
    assert ev.contributions["ls_global"] == pytest.approx(5.0)  # −(−1)(+0.15)/0.3 = 0.5
    assert ev.score == pytest.approx(100 * 39 / 90)


def test_strong_setup_fires_and_carries_a_signal() -> None:
    strong = dict(LONG, large_imbalance_fast=0.5, funding_rate=-0.0005, coinbase_premium_bps=5.0)
    # now all eight present and full except flow_mid (0.5 → 10) and oi (0.5 → 5):
    # Σ = 10 + 15 + 20 + 5 + 5 + 10 + 10 + 5 = 80 of 100
    ev = evaluate_strategy(STRATEGY, feats(strong))
    assert ev.coverage == 100.0
    assert ev.score == pytest.approx(80.0)
    assert ev.fired
    assert ev.reason is None
    signal = ev.to_signal()
    assert (signal.direction, signal.price, signal.atr) == (1, 100.0, 0.5)
    assert signal.strategy_hash == STRATEGY.hash
    assert signal.contributions["large_imbalance_fast"] == pytest.approx(20.0)
    assert signal.features["flow_fast"] == 0.08


STRONG = dict(LONG, large_imbalance_fast=0.5, funding_rate=-0.0005, coinbase_premium_bps=5.0)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"flow_fast": 0.0499}, NoFire.NO_DIRECTION),  # |x| < min
        ({"flow_mid": None}, NoFire.NO_DIRECTION),  # confirm absent
        ({"flow_mid": 0.0}, NoFire.NO_DIRECTION),  # confirm zero
        ({"flow_mid": -0.1}, NoFire.NO_DIRECTION),  # confirm against
        ({"flow_fast": None}, NoFire.NO_DIRECTION),
        ({"price": None}, NoFire.NO_PRICE),
        ({"atr": None}, NoFire.NO_ATR),
        ({"atr_percentile": None}, NoFire.GATE_FAILED),  # absent fails its gate
        ({"atr_percentile": 95.0001}, NoFire.GATE_FAILED),
        ({"trades_fast": 49.0}, NoFire.GATE_FAILED),
        ({"atr_percentile": 95.0, "trades_fast": 1e9}, None),  # inclusive, unbounded high
        ({"atr_percentile": 20.0, "trades_fast": 50.0}, None),
        ({"flow_fast": 0.05}, None),  # |x| = min is enough
    ],
)
def test_firing_conditions(change: dict[str, float | None], reason: NoFire | None) -> None:
    values = dict(STRONG)
    for key, value in change.items():
        if value is None:
            values.pop(key)
        else:
            values[key] = value
    ev = evaluate_strategy(STRATEGY, feats(values))
    assert ev.reason is reason
    assert ev.fired is (reason is None)


def test_no_direction_means_no_score_but_coverage() -> None:
    ev = evaluate_strategy(STRATEGY, feats(dict(STRONG, flow_fast=0.01)))
    assert ev.direction == 0
    assert ev.score is None
    assert ev.coverage == 100.0
    assert ev.contributions == {}
    with pytest.raises(ValueError, match="fired"):
        ev.to_signal()


def test_low_coverage_blocks_firing() -> None:
    # Only flow_mid (20), vwap_dev_fast (15) and liq (5) present: coverage 40 < 60,
    # score = 100 · (10 + 15 + 5) / 40 = 75 ≥ 70.
    values = {
        k: STRONG[k]
        for k in (
            "price",
            "atr",
            "atr_percentile",
            "trades_fast",
            "flow_fast",
            "flow_mid",
            "vwap_dev_fast",
            "liq_imbalance_fast",
        )
    }
    ev = evaluate_strategy(STRATEGY, feats(values))
    assert ev.coverage == pytest.approx(40.0)
    assert ev.score == pytest.approx(75.0)
    assert ev.reason is NoFire.LOW_COVERAGE


def test_no_present_factor_means_no_score() -> None:
    values = {
        "price": 1.0,
        "atr": 1.0,
        "atr_percentile": 50.0,
        "trades_fast": 100.0,
        "flow_fast": 0.1,
    }
    strategy = parse_strategy(
        dict(V52, direction={"feature": "flow_fast", "min": 0.05}, entry={"threshold": 0})
    )
    ev = evaluate_strategy(strategy, feats(values))
    assert ev.direction == 1
    assert ev.coverage == 0.0
    assert ev.score is None
    assert ev.reason is NoFire.NO_FACTORS


def test_cooldown_is_shared_by_both_directions() -> None:
    fired_at = T - 29 * 60_000
    ev = evaluate_strategy(STRATEGY, feats(STRONG), last_fired_ms=fired_at)
    assert ev.reason is NoFire.COOLDOWN
    ev = evaluate_strategy(STRATEGY, feats(STRONG), last_fired_ms=T - 30 * 60_000)
    assert ev.fired  # t − last ≥ cooldown


def test_max_open_per_symbol_is_asked_only_when_everything_else_passes() -> None:
    asked: list[int] = []

    def open_count() -> int:
        asked.append(1)
        return 1

    blocked = evaluate_strategy(STRATEGY, feats(STRONG), open_count=open_count)
    assert blocked.reason is NoFire.MAX_OPEN
    assert len(asked) == 1
    evaluate_strategy(STRATEGY, feats(dict(STRONG, flow_fast=0.0)), open_count=open_count)
    assert len(asked) == 1
    assert evaluate_strategy(STRATEGY, feats(STRONG), open_count=0).fired


@pytest.mark.parametrize(
    ("unsigned", "contrarian", "x", "d", "expected"),
    [
        (False, False, 0.05, 1, 0.5),
        (False, False, 0.05, -1, 0.0),
        (False, False, 0.2, 1, 1.0),
        (False, True, 0.05, -1, 0.5),
        (False, True, 0.05, 1, 0.0),
        (True, False, 0.05, -1, 0.5),
        (True, False, -0.05, 1, 0.0),
        (True, False, -0.05, -1, 0.0),
    ],
)
def test_factor_score_modes(
    unsigned: bool, contrarian: bool, x: float, d: int, expected: float
) -> None:
    factor = Factor("f", 1.0, 0.1, unsigned, contrarian)
    assert factor_score(factor, x, d) == pytest.approx(expected)
