"""The market forgets what its retention windows no longer cover, and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

from arbengine.sim.market_model import DAY_MS, FIVE_MIN_MS, HOUR_MS, SyntheticMarket
from arbengine.sim.retention import Retention
from arbengine.sim.symbols import spec_for

START = 1_700_006_400_000  # 2023-11-15T00:00:00Z, a funding time
MINUTE = 60_000


def market(retention: Retention, rate: float = 20.0, history_days: int = 1) -> SyntheticMarket:
    specs = [spec_for("BTCUSDT")]
    return SyntheticMarket(
        specs, START, 1, {"BTCUSDT": rate}, history_days=history_days, retention=retention
    )


def test_a_long_run_keeps_its_history_and_memory_bounded() -> None:
    retention = Retention(trades_ms=10 * MINUTE, series_ms=2 * HOUR_MS)
    m = market(retention)
    m.force_regime("BTCUSDT", "calm")  # a steady rate, so the window holds a steady count
    book = m.books["BTCUSDT"]
    t = START
    held = {}
    for hour in range(1, 4):
        for _ in range(3600):
            t += 1000
            m.advance(t)
        held[hour] = (book.nbytes, len(book.liquidations), len(book.funding))
    tape = book.tape
    assert tape.forgotten > 180_000  # three hours at 20 trades/s went through
    oldest = int(tape.cols(0, 1).t[0])
    assert t - 10 * MINUTE <= oldest < t - 10 * MINUTE + 1000  # the window, all of it
    assert book.marks.n <= 10 * 60 + 2
    hist_t = book.hist.col("t")
    assert hist_t[0] >= t - 2 * HOUR_MS
    assert len(hist_t) <= 2 * HOUR_MS // FIVE_MIN_MS + 1
    assert all(f.t >= t - 2 * HOUR_MS for f in book.funding)
    assert book.liquidations_published > 0
    # Once the windows are full nothing grows: hours 2 and 3 add 144 000 trades (7 MB).
    assert held[3][0] == held[1][0] <= 2_000_000, held
    assert max(h[1] for h in held.values()) < 300, held
    assert held[3][2] <= held[1][2], held


def test_the_rows_a_step_releases_are_the_rows_it_publishes_across_compactions() -> None:
    m = market(Retention(max_trades=1000), rate=50.0, history_days=0)
    published: list[int] = []
    t = START
    for _ in range(300):  # 15 000 trades through a 1 000-row ceiling: many compactions
        t += 1000
        for sr in m.advance(t).symbols:
            published += m.books[sr.symbol].tape.cols(sr.lo, sr.hi).a.tolist()
    tape = m.books["BTCUSDT"].tape
    assert tape.forgotten > 10_000
    assert published == list(range(published[0], published[0] + len(published)))
    assert published[-1] == tape.last_id
    # The ceiling applies as a step starts; the step's own trades come on top of it.
    assert tape.released - (sr.hi - sr.lo) == 1000


def test_the_series_keep_thirty_days_for_the_futures_data_endpoints() -> None:
    m = market(Retention(), history_days=40)
    m.advance(START + 1000)
    book = m.books["BTCUSDT"]
    hist_t = book.hist.col("t")
    assert m.now_ms - 31 * DAY_MS <= hist_t[0] < m.now_ms - 31 * DAY_MS + FIVE_MIN_MS
    rows = book.hist_rows("takerlongshortRatio", "1d", None, None, 500, m.now_ms)
    assert len(rows) == 30
    oldest = rows[0]
    i = int(np.searchsorted(hist_t, oldest["timestamp"]))
    whole_day = float(book.hist.col("buy_vol")[i - 287 : i + 1].sum())
    assert float(oldest["buyVol"]) == pytest.approx(whole_day, rel=1e-3)


def test_retention_windows_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Retention(trades_ms=0)
