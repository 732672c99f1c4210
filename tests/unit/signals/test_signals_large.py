"""The large-order threshold (nearest rank), large imbalance and the tail structure."""

from __future__ import annotations

import math
from array import array

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbengine.signals import FeatureSpec, SymbolFeatures
from arbengine.signals.large import (
    _Band,
    _Members,
    exact_scale,
    exact_units,
    nearest_rank_from_top,
    rounded,
)
from tests.unit.signals.signals_helpers import HOUR, MIN, SEC, T0, Row, batch, buy, columns, sell

SPEC = FeatureSpec(fast_ms=10 * MIN, mid_ms=30 * MIN, day_ms=HOUR)
T = T0 + 5 * HOUR


def notional_trades(
    values: list[float], start_ms: int, step_ms: int, first_id: int = 1
) -> list[Row]:
    """Taker buys of price 1 and quantity v, one every step_ms."""
    return [buy(first_id + i, start_ms + i * step_ms, 1.0, v) for i, v in enumerate(values)]


@pytest.mark.parametrize(
    ("n", "expected"),
    [
        (1000, 990.0),  # ⌈0.99·1000⌉ = 990
        (1001, 991.0),  # ⌈990.99⌉ = 991
        (1100, 1089.0),  # ⌈1089⌉ = 1089
        (1500, 1485.0),
    ],
)
def test_threshold_is_the_nearest_rank_99th_percentile(n: int, expected: float) -> None:
    values = [float(v) for v in np.random.default_rng(n).permutation(np.arange(1, n + 1))]
    s = SymbolFeatures("X")
    s.add_trades(batch(notional_trades(values, T - 50 * MIN, 1000)))
    assert s.evaluate(T, SPEC)["large_threshold"] == expected


def test_threshold_is_absent_below_1000_trades() -> None:
    s = SymbolFeatures("X")
    s.add_trades(batch(notional_trades([float(v) for v in range(1, 1000)], T - 50 * MIN, 1000)))
    f = s.evaluate(T, SPEC)
    assert "large_threshold" not in f
    assert "large_imbalance_fast" not in f


def test_threshold_counts_only_the_day_window() -> None:
    s = SymbolFeatures("X")
    s.add_trades(batch(notional_trades([1e9] * 50, T - 2 * HOUR, 1000, first_id=100_000)))
    s.add_trades(batch(notional_trades([float(v) for v in range(1, 1001)], T - 50 * MIN, 1000)))
    assert s.evaluate(T, SPEC)["large_threshold"] == 990.0


def test_large_imbalance_over_the_fast_window() -> None:
    # 1000 background trades 1..1000 before the fast window, then in it a buy of 2000,
    # a sell of 1500 and a small buy of 10: N = 1003, ⌈0.99·1003⌉ = 993, and the 993rd
    # smallest of {1..1000, 10, 1500, 2000} is 992 (10 appears twice).
    s = SymbolFeatures("X")
    background = [float(v) for v in range(1, 1001)]
    s.add_trades(batch(notional_trades(background, T - 55 * MIN, 1000)))
    s.add_trades(
        batch(
            [
                buy(5001, T - 5 * MIN, 1.0, 2000.0),
                sell(5002, T - 4 * MIN, 1.0, 1500.0),
                buy(5003, T - 3 * MIN, 1.0, 10.0),
            ]
        )
    )
    f = s.evaluate(T, SPEC)
    assert f["large_threshold"] == 992.0
    assert f["large_imbalance_fast"] == pytest.approx((2000 - 1500) / 3500)


def test_large_imbalance_is_zero_without_large_trades_in_the_fast_window() -> None:
    s = SymbolFeatures("X")
    s.add_trades(batch(notional_trades([float(v) for v in range(1, 1001)], T - 55 * MIN, 1000)))
    s.add_trades(batch([buy(5001, T - 2 * MIN, 1.0, 5.0)]))
    f = s.evaluate(T, SPEC)
    # N = 1001: ⌈990.99⌉ = 991st smallest of {1..1000, 5} (5 twice) is 990
    assert f["large_threshold"] == 990.0
    assert f["large_imbalance_fast"] == 0.0


def test_nearest_rank_from_top() -> None:
    assert nearest_rank_from_top(1000) == 11  # 990th smallest = 11th largest
    assert nearest_rank_from_top(100) == 2
    assert nearest_rank_from_top(101) == 2  # ⌈99.99⌉ = 100th smallest of 101


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=-1e290, max_value=1e290, allow_subnormal=True), max_size=40))
def test_exact_integer_sums_round_like_fsum(values: list[float]) -> None:
    # The fast windows sum |notional| as integers on the grid of the smallest value and
    # round once: that must be fsum's float, bit for bit, subnormals and huge values too.
    positives = [abs(v) for v in values]
    k = exact_scale(min(positives, default=0.0))
    assert rounded(sum(exact_units(v, k) for v in values), k) == math.fsum(positives)
    assert exact_units(-0.0, 1074) == 0


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["add", "pop", "kth"]), st.integers(0, 40), st.integers(1, 9)),
        max_size=200,
    )
)
def test_band_gives_the_rank_of_a_sorted_list(ops: list[tuple[str, int, int]]) -> None:
    # Few distinct values (many ties), members entering at the back and leaving at the
    # front, the band cut narrow so the rank often leaves it and it is cut again.
    members, band = _Members(), _Band(ranks=2)
    model: list[float] = []
    for op, n, k in ops:
        if op == "add":
            xs = array("d", [float((n + i) % 13) * (-1) ** i for i in range(k)])
            members.append(array("I", [0] * k), xs)
            band.add(xs)
            model += [abs(x) for x in xs]
        elif op == "pop" and len(members):
            k = min(k, len(members))
            band.remove(members.x[members.lo : members.lo + k])
            members.pop_front(k)
            del model[:k]
        elif op == "kth" and model:
            r = 1 + n % len(model)
            assert band.kth_largest(r, members) == sorted(model)[-r]
        assert len(members) == len(model)


def brute_threshold(notionals: np.ndarray) -> float | None:
    n = len(notionals)
    if n < 1000:
        return None
    k = -((-99 * n) // 100)
    return float(np.sort(notionals)[k - 1])


def test_incremental_tail_matches_a_full_sort_through_regime_changes() -> None:
    # Two hours of trades whose size regime jumps (×30, then ÷100): the tail floor must
    # be raised and lowered, and every tick must still equal the exact order statistic.
    rng = np.random.default_rng(5)
    n = 24_000
    t = np.sort(rng.integers(T - 2 * HOUR, T + HOUR, n))
    scale = np.where(t < T - HOUR, 1.0, np.where(t < T, 30.0, 0.3))
    qty = np.round(rng.lognormal(0.0, 1.2, n) * scale, 3) + 0.001
    price = np.full(n, 2.0)
    maker = rng.random(n) < 0.5
    ids = np.arange(n, dtype=np.int64)
    cols = columns(ids, t, price, qty, maker)
    s = SymbolFeatures("X")
    spec = FeatureSpec(fast_ms=5 * MIN, mid_ms=30 * MIN, day_ms=HOUR)
    wide = FeatureSpec(fast_ms=HOUR, mid_ms=HOUR, day_ms=HOUR)
    notional = price * qty
    cursor = 0
    floors = []
    for tick in range(T - HOUR, T + HOUR, 30 * SEC):
        upto = int(np.searchsorted(t, tick + 2 * SEC))  # a little ahead, as live
        if upto > cursor:
            s.add_trades(cols.take(np.arange(cursor, upto)))
            cursor = upto
        f = s.evaluate(tick, spec)
        tail = s.large_tail(HOUR)
        assert tail is not None
        floors.append(tail[0])
        in_day = (t >= tick - HOUR) & (t < tick)
        expected = brute_threshold(notional[in_day])
        assert f.get("large_threshold") == expected, tick
        # a fast window as long as the day: every tail member counts (the vectorised path)
        g = s.evaluate(tick, wide)
        assert g.get("large_threshold") == expected
        if expected is not None:
            for features, fast_ms in ((f, 5 * MIN), (g, HOUR)):
                fast = (t >= tick - fast_ms) & (t < tick) & (notional >= expected)
                b = math.fsum(notional[fast & ~maker].tolist())
                sl = math.fsum(notional[fast & maker].tolist())
                imbalance = 0.0 if b + sl == 0 else (b - sl) / (b + sl)
                assert features["large_imbalance_fast"] == imbalance
    steps = np.diff(floors)
    assert (steps > 0).any()  # the floor was raised…
    assert (steps < 0).any()  # …and lowered by a rescan


def test_late_trades_enter_the_tail_from_the_next_tick() -> None:
    s = SymbolFeatures("X")
    values = [float(v) for v in range(1, 1201)]
    s.add_trades(batch(notional_trades(values, T - 50 * MIN, 2000)))
    first = s.evaluate(T, SPEC)
    assert first["large_threshold"] == 1188.0  # ⌈0.99·1200⌉ = 1188
    # 30 late whales inside the already-evaluated window: N = 1230, ⌈1217.7⌉ = 1218th
    # smallest = 1218 − 1200 = 18th whale of 5001..5030 → 5018.
    late = [buy(90_000 + i, T - 20 * MIN + i * SEC, 1.0, 5001.0 + i) for i in range(30)]
    assert s.add_trades(batch(late)).late == 30
    f = s.evaluate(T + 15 * SEC, SPEC)
    assert f["large_threshold"] == 5018.0
