"""Invariants: batching does not matter, and the engine agrees with the naive oracle."""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from arbengine.domain.market import TradeBatch
from arbengine.signals import FeatureSpec, SymbolFeatures
from tests.unit.signals.signals_helpers import HOUR, MIN, SEC, T0, columns
from tests.unit.signals.signals_reference import Trade, dedup, reference_trade_features

SPEC = FeatureSpec(
    fast_ms=5 * MIN,
    mid_ms=30 * MIN,
    day_ms=HOUR,
    max_staleness_ms=HOUR,
    atr_percentile_min_values=12,
)


def stream(seed: int, n: int, span_ms: int, start: int = T0) -> TradeBatch:
    """Trades in (T, agg_id) order with same-millisecond ties and repeated agg_ids."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(start, start + span_ms, n)) // 7 * 7  # force ties
    ids = np.arange(n, dtype=np.int64) + 10_000
    price = np.round(100 + np.cumsum(rng.standard_normal(n)) * 0.05, 2)
    qty = np.round(rng.lognormal(0, 1.5, n), 3) + 0.001
    maker = rng.random(n) < 0.5
    repeat = np.sort(rng.choice(n, n // 50, replace=False))
    # a repeated agg_id arrives again right after the original
    order = np.sort(np.concatenate((np.arange(n), repeat)), kind="stable")
    return columns(ids[order], t[order], price[order], qty[order], maker[order])


def run(
    cols: TradeBatch,
    cuts: list[int],
    ticks: list[int],
    spec: FeatureSpec,
    shuffle_seed: int | None = None,
) -> dict[int, dict[str, float]]:
    """Feed in batches cut at ``cuts``; evaluate each tick once a trade at or after it is in.

    With ``shuffle_seed`` the rows inside each batch arrive in random order.
    """
    s = SymbolFeatures("X")
    rng = np.random.default_rng(shuffle_seed)
    bounds = sorted({0, len(cols), *(c for c in cuts if 0 < c < len(cols))})
    out: dict[int, dict[str, float]] = {}
    pending = list(ticks)
    for lo, hi in itertools.pairwise(bounds):
        index = np.arange(lo, hi)
        if shuffle_seed is not None:
            rng.shuffle(index)
        s.add_trades(cols.take(index))
        newest = int(cols.ts[hi - 1])
        while pending and (pending[0] <= newest or hi == len(cols)):
            t = pending.pop(0)
            out[t] = dict(s.evaluate(t, spec))
    return out


N = 3000
SPAN = 3 * HOUR
COLS = stream(1, N, SPAN)
TICKS = list(range(T0 + 30 * MIN, T0 + SPAN, 45 * SEC))


@functools.cache
def baseline() -> dict[int, dict[str, float]]:
    """Every tick evaluated after one batch holding the whole stream."""
    return run(COLS, [], TICKS, SPEC)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cuts=st.lists(st.integers(1, len(COLS) - 1), max_size=40),
    keep=st.lists(st.booleans(), min_size=len(TICKS), max_size=len(TICKS)),
    shuffle_seed=st.none() | st.integers(0, 2**32 - 1),
)
def test_features_do_not_depend_on_batching_or_on_which_ticks_were_evaluated(
    cuts: list[int], keep: list[bool], shuffle_seed: int | None
) -> None:
    ticks = [t for t, k in zip(TICKS, keep, strict=True) if k]
    got = run(COLS, cuts, ticks, SPEC, shuffle_seed)
    assert got == {t: baseline()[t] for t in ticks}  # bit for bit


def test_baseline_covers_every_feature_family() -> None:
    last = baseline()[TICKS[-1]]
    for name in ("price", "cvd_day", "vwap_dev_fast", "atr", "atr_percentile", "large_threshold"):
        assert name in last


def test_long_windows_are_batch_independent_too() -> None:
    # Enough non-empty seconds that day and mid windows are summed through minute blocks.
    cols = stream(2, 60_000, 26 * HOUR)
    spec = FeatureSpec(mid_ms=4 * HOUR, atr_percentile_min_values=12)
    ticks = list(range(T0 + 25 * HOUR, T0 + 26 * HOUR, 7 * MIN + 30 * SEC))
    one = run(cols, [], ticks, spec)
    rng = np.random.default_rng(3)
    many = run(cols, sorted(rng.choice(len(cols), 300, replace=False).tolist()), ticks, spec)
    hourly = run(
        cols,
        np.searchsorted(cols.ts, np.arange(T0, T0 + 26 * HOUR, HOUR)).tolist(),
        ticks,
        spec,
    )
    assert one == many == hourly
    assert one[ticks[-1]]["trades_fast"] > 0


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


def compare_with_oracle(
    trades: list[Trade], arrival: list[Trade], ticks: list[int], spec: FeatureSpec, batches: int
) -> None:
    s = SymbolFeatures("X")
    rng = np.random.default_rng(len(arrival))
    cuts = sorted({0, len(arrival), *rng.choice(len(arrival), batches).tolist()})
    delivered: list[Trade] = []
    pending = list(ticks)
    for lo, hi in itertools.pairwise(cuts):
        chunk = arrival[lo:hi]
        s.add_trades(
            columns(
                [x.agg_id for x in chunk],
                [x.time_ms for x in chunk],
                [x.price for x in chunk],
                [x.qty for x in chunk],
                [x.is_buyer_maker for x in chunk],
            )
        )
        delivered += chunk
        newest = max(x.time_ms for x in delivered)
        while pending and (pending[0] <= newest or hi == len(arrival)):
            t = pending.pop(0)
            got = dict(s.evaluate(t, spec))
            got.pop("liq_imbalance_fast")
            expected = reference_trade_features(
                dedup(delivered),
                t,
                fast_ms=spec.fast_ms,
                mid_ms=spec.mid_ms,
                day_ms=spec.day_ms,
                max_staleness_ms=spec.max_staleness_ms,
                atr_percentile_min_values=spec.atr_percentile_min_values,
            )
            assert set(got) == set(expected), (t, set(got) ^ set(expected))
            for key, value in expected.items():
                assert close(got[key], value), (t, key, got[key], value)


def random_trades(seed: int, n: int, hours: int, gap: tuple[int, int] | None = None) -> list[Trade]:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(T0, T0 + hours * HOUR, n))
    if gap is not None:
        t = t[(t < T0 + gap[0] * HOUR) | (t >= T0 + gap[1] * HOUR)]
    price = np.round(100 + np.cumsum(rng.standard_normal(len(t))) * 0.1, 2)
    qty = np.round(rng.exponential(1, len(t)), 3)
    maker = rng.random(len(t)) < 0.5
    return [
        Trade(1000 + i, int(a), float(p), float(q), bool(m))
        for i, (a, p, q, m) in enumerate(zip(t, price, qty, maker, strict=True))
    ]


def test_engine_matches_the_oracle_in_order() -> None:
    trades = random_trades(11, 5000, 30)
    ticks = list(range(T0 + 15 * SEC, T0 + 30 * HOUR, 15 * SEC * 41))
    compare_with_oracle(trades, trades, ticks, FeatureSpec(atr_percentile_min_values=12), 9)


def test_engine_matches_the_oracle_across_a_long_silence() -> None:
    # Nothing between 3 h and 9 h: the first candles after the gap use the strict
    # 26 h horizon rule for the previous close.
    trades = random_trades(12, 5000, 34, gap=(3, 9))
    ticks = list(range(T0 + 15 * SEC, T0 + 34 * HOUR, 15 * SEC * 37))
    spec = FeatureSpec(max_staleness_ms=26 * HOUR, atr_percentile_min_values=12)
    compare_with_oracle(trades, trades, ticks, spec, 9)


def test_engine_matches_the_oracle_with_late_and_repeated_trades() -> None:
    trades = random_trades(13, 6000, 30)
    rng = np.random.default_rng(13)
    delay = rng.exponential(10 * MIN, len(trades)) * (rng.random(len(trades)) < 0.2)
    order = np.argsort([tr.time_ms + d for tr, d in zip(trades, delay, strict=True)], kind="stable")
    arrival = [trades[i] for i in order] + [trades[i] for i in rng.choice(len(trades), 100)]
    ticks = list(range(T0 + 15 * SEC, T0 + 30 * HOUR, 15 * SEC * 23))
    spec = FeatureSpec(
        fast_ms=10 * MIN,
        mid_ms=HOUR,
        day_ms=2 * HOUR,
        max_staleness_ms=HOUR,
        atr_percentile_min_values=12,
    )
    compare_with_oracle(trades, arrival, ticks, spec, 40)
