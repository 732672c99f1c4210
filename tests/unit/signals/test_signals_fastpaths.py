"""The per-tick shortcuts give exactly what the plain computations give.

Ticks reuse work (a second → row index, block sums and the right-edge partial
minute kept across ticks, tail candidates scanned ahead, fast-window members kept
sorted, a scoring plan per strategy). Each test here drives one of them through
the changes that must invalidate it and compares, bit for bit, with the plain
computation.
"""

from __future__ import annotations

import math

import numpy as np

from arbengine.signals import FeatureSpec, SymbolFeatures, parse_strategy
from arbengine.signals.features import Features
from arbengine.signals.scoring import Evaluation, evaluate_strategy
from arbengine.signals.trade_window import TradeWindow
from tests.unit.signals.signals_helpers import HOUR, MIN, SEC, T0, columns

_VOL_PQ = slice(0, 3)


def _store(tape: TradeWindow, t: np.ndarray, ids: np.ndarray, rng: np.random.Generator) -> None:
    n = len(t)
    p = np.round(100 + rng.random(n), 2)
    q = np.round(rng.exponential(1.0, n), 3)
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    tape.store(t, ids, p, q, sign * q, sign * p * q)


def _plain_window(tape: TradeWindow, hi: int, w: int) -> tuple[int, float, float, float]:
    """The window sum as first written: direct, or left + minute blocks + right."""
    rows = tape.rows
    secs = rows.secs
    raw = rows.raw_float
    start = rows.physical(0)
    i, j = secs.searchsorted([hi - w, hi]).tolist()
    if j <= i:
        return (0, 0.0, 0.0, 0.0)
    n = tape.end_before(j) - tape.end_before(i)
    m_lo, m_hi = -(-(hi - w) // 60), hi // 60
    if j - i <= 12_000 or m_lo >= m_hi:
        vol, cvd, pq = raw[_VOL_PQ, start + i : start + j].sum(axis=1).tolist()
        return (n, vol, cvd, pq)
    i2, j2 = secs.searchsorted((m_lo * 60, m_hi * 60)).tolist()
    left = raw[_VOL_PQ, start + i : start + i2].sum(axis=1)
    right = raw[_VOL_PQ, start + j2 : start + j].sum(axis=1)
    minutes = secs[i2:j2] // 60
    cut = np.flatnonzero(np.diff(minutes)) + 1
    starts = np.concatenate((np.zeros(1, np.int64), cut))
    blocks = np.add.reduceat(raw[_VOL_PQ, start + i2 : start + j2], starts, axis=1)
    vol, cvd, pq = ((left + blocks.sum(axis=1)) + right).tolist()
    return (n, vol, cvd, pq)


def test_row_index_and_window_memos_follow_appends_late_trades_and_forgetting() -> None:
    rng = np.random.default_rng(21)
    tape = TradeWindow()
    base_s = T0 // SEC
    next_id = 1
    lengths = [90, 600, 4 * 3600, 13_000, 86_400]
    # 30 h of one trade every ~0.9 s (dense enough for minute blocks), delivered an hour
    # at a time with ticks in between; now and then a late batch into the past.
    for hour in range(30):
        t = np.sort(rng.integers(base_s + hour * 3600, base_s + (hour + 1) * 3600, 4000)) * SEC
        t += rng.integers(0, SEC, len(t))
        t.sort()
        ids = np.arange(next_id, next_id + len(t), dtype=np.int64)
        next_id += len(t)
        _store(tape, t, ids, rng)
        if hour % 7 == 6:
            late = np.sort(rng.integers(base_s + hour * 3600 - 1800, base_s + hour * 3600, 50))
            _store(tape, late * SEC, np.arange(next_id, next_id + 50, dtype=np.int64), rng)
            next_id += 50
            # the tick before the late trades again: every memo of it must be dropped
            last_hi = base_s + hour * 3600
            assert tape.windows(last_hi, lengths) == [
                _plain_window(tape, last_hi, w) for w in lengths
            ]
        hi0 = base_s + (hour + 1) * 3600
        if hour >= 24:
            tape.set_floor(hi0 - 86_400 - 1800)
        for hi in range(hi0 - 3600, hi0 + 1, 15):
            if rng.random() < 0.9 and hi < hi0:
                continue  # a sample of ticks, plus the last one of the hour
            got = tape.windows(hi, lengths)
            assert got == [_plain_window(tape, hi, w) for w in lengths], hi
            probes = [hi - w for w in lengths] + [hi, hi - 7, base_s - 5, hi + 10**6]
            assert tape.rows_at(probes) == tape.rows.secs.searchsorted(probes).tolist()


def _brute_imbalance(
    notional: np.ndarray, maker: np.ndarray, fast: np.ndarray, thr: float
) -> float:
    big = fast & (notional >= thr)
    b = math.fsum(notional[big & ~maker].tolist())
    s = math.fsum(notional[big & maker].tolist())
    return 0.0 if b + s == 0 else (b - s) / (b + s)


def test_tail_scanned_ahead_matches_brute_force_when_a_day_is_stored_at_once() -> None:
    # As a backtest: all trades stored first, then every tick evaluated; the size regime
    # changes so the floor moves (the candidates scanned ahead must be rescanned).
    rng = np.random.default_rng(8)
    n = 30_000
    t = np.sort(rng.integers(T0, T0 + 3 * HOUR, n))
    scale = np.where(t < T0 + HOUR, 1.0, np.where(t < T0 + 2 * HOUR, 40.0, 0.2))
    qty = np.round(rng.lognormal(0.0, 1.2, n) * scale, 3) + 0.001
    price = np.full(n, 3.0)
    maker = rng.random(n) < 0.5
    s = SymbolFeatures("X")
    s.add_trades(columns(np.arange(n), t, price, qty, maker))
    short = FeatureSpec(fast_ms=3 * MIN, mid_ms=30 * MIN, day_ms=HOUR)
    longer = FeatureSpec(fast_ms=20 * MIN, mid_ms=30 * MIN, day_ms=HOUR)
    notional = price * qty
    for tick in range(T0 + HOUR, T0 + 3 * HOUR, 45 * SEC):
        in_day = (t >= tick - HOUR) & (t < tick)
        values = np.sort(notional[in_day])
        k = (99 * len(values) + 99) // 100
        expected = float(values[k - 1])
        for spec in (short, longer):
            f = s.evaluate(tick, spec)
            assert f["large_threshold"] == expected
            fast = (t >= tick - spec.fast_ms) & (t < tick)
            assert f["large_imbalance_fast"] == _brute_imbalance(notional, maker, fast, expected)


def test_fast_evaluation_object_equals_the_dataclass() -> None:
    strategy = parse_strategy(
        {
            "name": "s",
            "symbols": ["XXUSDT"],
            "direction": {"feature": "flow_fast", "min": 0.1},
            "factors": [
                {"feature": "flow_mid", "weight": 2, "full": 0.5},
                {"feature": "funding_rate", "weight": 1, "full": 0.001, "contrarian": True},
                {"feature": "oi_change_1h", "weight": 3, "full": 0.02, "unsigned": True},
            ],
            "gates": {"trades_fast": [1, None]},
            "entry": {"threshold": 10},
            "exit": {"sl_atr": 1.0},
        }
    )
    values = {
        "price": 10.0,
        "atr": 0.1,
        "flow_fast": 0.3,
        "flow_mid": 0.2,
        "funding_rate": -0.002,
        "oi_change_1h": -0.01,
        "trades_fast": 3.0,
    }
    ev = evaluate_strategy(strategy, Features("X", T0, values))
    plain = Evaluation(
        tick_ms=T0,
        symbol="X",
        definition=strategy,
        direction=1,
        score=100.0 * (2 * 0.4 + 1 * 1.0 + 3 * 0.0) / 6,
        coverage=100.0,
        factor_scores=(0.4, 1.0, 0.0),
        features=ev.features,
        fired=True,
        reason=None,
    )
    assert ev == plain
    assert repr(ev) == repr(plain)
    assert hash(ev.factor_scores) == hash(plain.factor_scores)
