"""Paper results do not depend on how the trade stream is cut into batches."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from arbengine.trading.paper import ExitRule, FundingSettlement, PaperBook, open_position

T0 = 1_700_002_800_000
RULE = ExitRule(
    sl_atr=1.0,
    tp1_atr=1.0,
    tp1_fraction=0.5,
    tp2_atr=2.0,
    breakeven_after_tp1=True,
    max_hold_ms=3_600_000,
    fee_bps=4,
    slippage_bps=1,
)


def run(prices: list[float], cuts: list[int], direction: int) -> list[tuple]:
    book = PaperBook()
    book.on_funding(FundingSettlement("X", T0 + 1_800_000, 0.0001, None))
    position = open_position(strategy="s", strategy_hash="h", symbol="X", direction=direction,
                             tick=T0, price=100.0, atr=1.0, rule=RULE)  # fmt: skip
    book.add(position)
    ids = list(range(1, len(prices) + 1))
    times = [T0 + i * 40_000 for i in range(len(prices))]
    bounds = sorted({0, len(prices), *[c % (len(prices) + 1) for c in cuts]})
    for lo, hi in itertools.pairwise(bounds):
        book.on_trades("X", ids[lo:hi], times[lo:hi], prices[lo:hi])
    return [
        *[(f.ts, f.price, f.fraction, f.reason) for f in position.fills],
        *[(c.time, c.fraction, c.mark) for c in position.funding],
        position.remaining,
    ]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(97.0, 103.0, allow_nan=False), min_size=1, max_size=120),
    st.lists(st.integers(0, 200), max_size=8),
    st.sampled_from([1, -1]),
)
def test_batching_does_not_change_fills_or_funding(
    prices: list[float], cuts: list[int], direction: int
) -> None:
    assert run(prices, cuts, direction) == run(prices, [], direction)
