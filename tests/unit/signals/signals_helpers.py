"""Small builders shared by the signal tests."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from arbengine.domain.market import TradeBatch
from arbengine.signals import FeatureSpec

# 2023-11-14T00:00:00Z: aligned to days, hours, 5-minute candles and 15 s ticks.
T0 = 1_699_920_000_000
SEC = 1_000
MIN = 60_000
HOUR = 3_600_000

SMALL_SPEC = FeatureSpec(
    fast_ms=1 * MIN,
    mid_ms=5 * MIN,
    day_ms=1 * HOUR,
    max_staleness_ms=2 * MIN,
    atr_percentile_min_values=12,
)

Row = tuple[int, int, float, float, bool]
"""(agg_id, T ms, price, qty, is_buyer_maker)"""


def batch(rows: Iterable[Row], symbol: str = "X") -> TradeBatch:
    """A batch of ``rows`` (trade ids not loaded: the feature state does not read them)."""
    items = list(rows)
    return columns(
        [r[0] for r in items],
        [r[1] for r in items],
        [r[2] for r in items],
        [r[3] for r in items],
        [r[4] for r in items],
        symbol,
    )


def columns(
    agg_id: Any, t_ms: Any, price: Any, qty: Any, maker: Any, symbol: str = "X"
) -> TradeBatch:
    """A batch from parallel columns (sequences or arrays), trade ids not loaded."""
    return TradeBatch.of(symbol, agg_id, t_ms, price, qty, [], [], maker)


def buy(agg_id: int, t_ms: int, price: float, qty: float) -> Row:
    """A taker buy (buyer is not the maker)."""
    return (agg_id, t_ms, price, qty, False)


def sell(agg_id: int, t_ms: int, price: float, qty: float) -> Row:
    """A taker sell (buyer is the maker)."""
    return (agg_id, t_ms, price, qty, True)
