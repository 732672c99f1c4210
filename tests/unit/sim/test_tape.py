"""The columnar tape: release watermark, REST selections, bounded history."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from arbengine.sim.trade_history import TradeHistory


def _tape(n: int = 10) -> TradeHistory:
    tape = TradeHistory(2, 3, capacity=2)
    a = np.arange(100, 100 + n, dtype=np.int64)
    t = 1000 + 10 * np.arange(n, dtype=np.int64)
    tape.append(
        a,
        t,
        6_000_000 + a,
        a % 7 + 1,
        500 + 2 * (a - 100),
        501 + 2 * (a - 100),
        (a % 2).astype(np.uint8),
    )
    return tape


def test_rows_are_invisible_until_released() -> None:
    tape = _tape()
    assert tape.n == 10
    assert tape.released == 0
    assert tape.select(limit=5) == (0, 0)
    assert tape.release_until(1035) == (0, 4)
    assert tape.last_id == 103
    assert tape.release_until(1035) == (4, 4)
    assert tape.release_until(10_000) == (4, 10)


def test_select_by_id_time_and_latest() -> None:
    tape = _tape()
    tape.release_until(10_000)
    assert tape.select(from_id=103, limit=3) == (3, 6)
    assert tape.select(from_id=50, limit=2) == (0, 2)
    assert tape.select(from_id=500, limit=2) == (10, 10)
    assert tape.select(start_ms=1020, end_ms=1050, limit=100) == (2, 6)
    assert tape.select(start_ms=1020, end_ms=1050, limit=2) == (2, 4)
    assert tape.select(limit=3) == (7, 10)


def test_rest_rows_have_binance_shape_and_strings() -> None:
    tape = _tape()
    tape.release_until(10_000)
    row = tape.rows(0, 1)[0]
    assert row == {
        "a": 100,
        "p": "60001.00",
        "q": "0.003",
        "f": 500,
        "l": 501,
        "T": 1000,
        "m": False,
    }


def test_forgetting_keeps_the_window_and_moves_the_rest_boundary() -> None:
    tape = _tape()
    tape.release_until(10_000)
    assert tape.forget_before(1040) == 4  # T 1000..1030 are older than the window
    assert (tape.first_id, tape.last_id, tape.released, tape.forgotten) == (104, 109, 6, 4)
    assert tape.rows(0, 1)[0]["T"] == 1040
    # A fromId before the window starts at the oldest trade kept, as past Binance's history.
    assert tape.select(from_id=100, limit=3) == (0, 3)
    assert tape.rows(0, 1)[0]["a"] == 104
    # A time range wholly before the window is empty; one reaching into it starts there.
    assert tape.select(start_ms=1000, end_ms=1039, limit=100) == (0, 0)
    assert tape.select(start_ms=1000, end_ms=1050, limit=100) == (0, 2)


def test_forgetting_caps_the_rows_and_always_keeps_the_newest() -> None:
    tape = _tape()
    tape.release_until(1045)
    assert tape.forget_before(0, max_released=2) == 3  # a ceiling on rows, whatever the time
    assert (tape.first_id, tape.last_id) == (103, 104)
    assert tape.forget_before(10**12) == 1  # the newest released row stays
    assert (tape.first_id, tape.last_id, tape.released, tape.n) == (104, 104, 1, 6)
    assert tape.release_until(10_000) == (1, 6)  # unreleased rows are never forgotten
    assert tape.last_id == 109


def test_a_tape_sliding_over_a_long_run_keeps_its_memory() -> None:
    tape = TradeHistory(2, 3, capacity=1024)
    window, step = 5_000, 50  # 5 s of a 1 trade/ms tape
    capacities = []
    for k in range(2_000):  # 100 s: 20 windows
        a = np.arange(k * step, (k + 1) * step, dtype=np.int64)
        tape.append(a, a, a, a, a, a, (a % 2).astype(np.uint8))
        tape.forget_before(int(a[-1]) - window)
        tape.release_until(int(a[-1]))
        capacities.append(tape.capacity)
        c = tape.released_cols()
        assert c.a[0] == max(0, int(a[-1]) - window)
        assert np.array_equal(c.a, c.t)
    assert tape.forgotten == 100_000 - window - 1
    assert capacities[-1] == capacities[len(capacities) // 4] <= 4 * window


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),  # trades appended, 0..9 ms apart
            st.integers(0, 300),  # how far the clock moves
            st.integers(0, 400),  # the window
            st.one_of(st.none(), st.integers(1, 60)),  # the row ceiling
        ),
        max_size=60,
    )
)
def test_forgetting_never_changes_what_is_kept(
    ops: list[tuple[int, int, int, int | None]],
) -> None:
    """Against a plain list: compaction moves rows, never alters, loses or invents them."""
    tape = TradeHistory(2, 3, capacity=4)
    model: list[tuple[int, int]] = []  # (id, T) of every row kept, released or not
    released = 0
    next_id, t, now = 1, 0, 0
    for count, advance, window, ceiling in ops:
        ids = np.arange(next_id, next_id + count, dtype=np.int64)
        times = t + np.cumsum(ids % 10)
        tape.append(ids, times, ids * 3, ids % 7, ids, ids, (ids % 2).astype(np.uint8))
        model += list(zip(ids.tolist(), times.tolist(), strict=True))
        next_id += count
        t = int(times[-1]) if count else t
        now += advance
        drop = sum(1 for _, ts in model[:released] if ts < now - window)
        if ceiling is not None:
            drop = max(drop, released - ceiling)
        drop = max(0, min(drop, released - 1))
        assert tape.forget_before(now - window, ceiling) == drop
        del model[:drop]
        released -= drop
        lo, hi = tape.release_until(now)
        assert lo == released
        released = sum(1 for _, ts in model if ts <= now)
        assert hi == released
        c = tape.cols(0, tape.n)
        assert list(zip(c.a.tolist(), c.t.tolist(), strict=True)) == model
        assert np.array_equal(c.price, c.a * 3)
