"""Trade storage: id intervals, the ring, per-second rows and their memory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbengine.signals import SymbolFeatures
from arbengine.signals.trade_window import IdSet, Ring, TradeWindow
from tests.unit.signals.signals_helpers import HOUR, SEC, T0, columns


def ids(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_id_set_merges_consecutive_ids_into_one_interval() -> None:
    seen = IdSet()
    seen.add(ids(1, 2, 3), ids(10, 11, 12))
    seen.add(ids(4, 5), ids(13, 14))
    assert len(seen) == 1
    seen.add(ids(10, 11), ids(20, 21))  # a gap: a second interval
    assert len(seen) == 2
    seen.add(ids(6, 7, 8, 9), ids(15, 16, 17, 18))  # gap repaired: one again
    assert len(seen) == 1
    assert seen.unseen(ids(0, 1, 11, 12)).tolist() == [True, False, False, True]


def test_id_set_forgets_intervals_older_than_the_horizon() -> None:
    seen = IdSet()
    seen.add(ids(1, 2), ids(100, 200))
    seen.add(ids(10, 11), ids(5000, 6000))
    seen.prune(before_ms=1000)
    assert seen.unseen(ids(1, 10)).tolist() == [True, False]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(0, 60), max_size=12), max_size=12))
def test_id_set_answers_like_a_python_set(batches: list[list[int]]) -> None:
    seen = IdSet()
    model: set[int] = set()
    for raw in batches:
        batch = ids(*raw)
        assert seen.unseen(batch).tolist() == [v not in model for v in raw]
        new = np.unique(batch[seen.unseen(batch)])
        seen.add(new, new * 10)
        model |= set(raw)


def test_ring_keeps_logical_positions_across_wraps_pops_and_inserts() -> None:
    ring = Ring(capacity=16)
    ring.append(np.arange(10, dtype=np.float64))
    ring.pop_to(6)
    ring.append(np.arange(10, 20, dtype=np.float64))  # wraps around the 16 slots
    assert (ring.base, ring.end) == (6, 20)
    assert ring.get(6, 20).tolist() == list(range(6, 20))
    ring.insert(np.array([8, 8, 19], dtype=np.int64), np.array([-1.0, -2.0, -3.0]))
    assert ring.get(6, 23).tolist() == [
        6,
        7,
        -1,
        -2,
        8,
        9,
        10,
        11,
        12,
        13,
        14,
        15,
        16,
        17,
        18,
        -3,
        19,
    ]
    ring.append(np.arange(100, dtype=np.float64))  # grows
    assert ring.get(120, 123).tolist() == [97.0, 98.0, 99.0]
    with pytest.raises(IndexError):
        ring.get(5, 7)


def test_rows_hold_one_row_per_non_empty_second() -> None:
    tape = TradeWindow()
    t = np.array([T0, T0 + 10, T0 + 999, T0 + 5000], dtype=np.int64)
    tape.store(
        t,
        ids(1, 2, 3, 4),
        np.array([1.0, 2.0, 3.0, 4.0]),
        np.array([1.0, 1.0, 1.0, 1.0]),
        np.array([1.0, -1.0, 1.0, 1.0]),
        np.array([1.0, -2.0, 3.0, 4.0]),
    )
    assert len(tape.rows) == 2
    assert tape.window(T0 // 1000, T0 // 1000 + 1) == (3, 3.0, 1.0, 6.0)
    last = tape.last_before(T0 // 1000 + 1)
    assert last is not None
    assert (last.agg_id, last.price) == (3, 3.0)
    # an out-of-order trade into the first second lands in the right row and ring place
    tape.store(
        ids(T0 + 500), ids(9), np.array([7.0]), np.array([2.0]), np.array([-2.0]), np.array([-14.0])
    )
    assert tape.window(T0 // 1000, T0 // 1000 + 1) == (4, 5.0, -1.0, 20.0)
    assert tape.ring.get(0, 5).tolist() == [1.0, -2.0, 3.0, -14.0, 4.0]


def test_memory_per_trade_is_bounded_and_old_trades_are_forgotten() -> None:
    rng = np.random.default_rng(0)
    n = 400_000
    t = np.sort(rng.integers(T0, T0 + 30 * HOUR, n))
    cols = columns(np.arange(n), t, 100 + rng.random(n), rng.random(n) + 0.01, rng.random(n) < 0.5)
    s = SymbolFeatures("X")
    s.add_trades(cols)
    end = T0 + 30 * HOUR
    s.evaluate(end)
    s.evaluate(end + 5 * 60 * SEC)  # after a housekeeping period, whatever the symbol's phase
    kept = int(np.count_nonzero(t >= end + 5 * 60 * SEC - 24 * HOUR))
    assert kept <= s.trade_count <= kept + n // 100
    # ring: 8 B per trade (+25 % growth slack); rows: 64 B per non-empty second (+100 %
    # growth slack, sized by the 30 h fed before the first tick); candles and the
    # large-order tail: under 2 MB here.
    seconds = len(np.unique(t // 1000))
    assert s.nbytes < 1.25 * 8 * s.trade_count + 2 * 64 * seconds + 2_000_000


def test_a_busy_day_held_costs_under_32_mb_per_3_million_trades() -> None:
    # The bench's BTC-like symbol: 26 h at 3 M trades a day fed an hour at a time, then a
    # few ticks. Held: a day of trades. Each costs its 8-byte notional plus its share of
    # the per-second rows (86,400 of them), the index and the large-order tail: the ring
    # in blocks and buffers cut back to what they hold, not to their peak.
    rng = np.random.default_rng(3)
    s = SymbolFeatures("X")
    per_hour = 125_000
    for h in range(26):
        t = np.sort(rng.integers(T0 + h * HOUR, T0 + (h + 1) * HOUR, per_hour))
        ids = np.arange(h * per_hour, (h + 1) * per_hour)
        qty = np.round(rng.lognormal(-3.0, 1.6, per_hour), 3)
        s.add_trades(
            columns(ids, t, 30_000 + rng.random(per_hour), qty, rng.random(per_hour) < 0.5)
        )
    for k in range(9):
        s.evaluate(T0 + 26 * HOUR + k * 15 * SEC)
    assert 2_900_000 < s.trade_count < 3_100_000
    assert s.nbytes / s.trade_count <= 32e6 / 3e6
