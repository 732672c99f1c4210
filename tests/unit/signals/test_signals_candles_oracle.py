"""The candle core against the one it replaced, bit for bit.

``legacy_core.candles`` is the candle core before the engine tick was made cheaper (a
candle close now reads its 288 ATR values as one slice and sums the 14-candle ATR with
one reduction): on generated days with quiet stretches, long silences and wrapping
candle slots, the ATR, every ATR value and the percentile counts must be the very same.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from arbengine.signals.candles import CANDLE_MS, Candles
from tests.unit.signals.legacy_core.candles import Candles as LegacyCandles
from tests.unit.signals.signals_helpers import HOUR, SEC, T0

TICK = 15 * SEC
SLOTS = 1024
HOURS = 100
"""More than 1024 candles: the candle slots wrap round."""


def _hour(
    rng: np.random.Generator, start: int, n: int, first_id: int
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    t = start + np.sort(rng.integers(0, HOUR, n))
    # A wild walk over orders of magnitude: true ranges of different binary exponents,
    # whose sums round (near one price level every sum of ranges is exact).
    p = 100 * np.exp(np.cumsum(rng.standard_normal(n)) * rng.choice([0.001, 0.3]))
    return t, np.arange(first_id, first_id + n, dtype=np.int64), p


def test_atr_states_are_the_same_floats_as_the_replaced_core() -> None:
    rng = np.random.default_rng(5)
    new, old = Candles(), LegacyCandles()
    first_id = 1
    compared = wrapped = full = 0
    for h in range(HOURS):
        start = T0 + h * HOUR
        silent = 30 <= h < 33 or 50 <= h < 78  # 3 h, then 28 h (past the horizon) silent
        n = 0 if silent else int(rng.choice([3, 40, 400]))
        if n:
            t, ids, p = _hour(rng, start, n, first_id)
            first_id += n
            new.add(t, ids, p)
            old.add(t, ids, p)
        for tick in range(start + TICK, start + HOUR + 1, TICK):
            a, b = new.state(tick), old.state(tick)
            assert repr(a.atr) == repr(b.atr), tick  # a float's repr is exact
            assert a.values.tobytes() == b.values.tobytes(), tick
            assert (a.at_or_below, a.count) == (b.at_or_below, b.count), tick
            compared += 1
            wrapped += (tick // CANDLE_MS - 288) % SLOTS + 288 > SLOTS
            full += a.count == 288
    assert compared == HOURS * HOUR // TICK
    assert wrapped  # the 288 closes read round the end of the candle slots too
    assert 0 < full < compared  # full and partial ATR histories (the start, after a silence)
