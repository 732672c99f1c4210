"""Derived market data on worked examples: trade splits, bar boundaries, leverage brackets."""

from __future__ import annotations

import calendar
from decimal import Decimal

import pytest

from arbengine.sim.leverage_brackets import brackets, max_notional
from arbengine.sim.margin import Marked, Position
from arbengine.sim.market_summaries import INTERVALS, bar_open, next_open, split_qty
from arbengine.sim.symbols import KNOWN_SPECS

D = Decimal


def utc_ms(*parts: int) -> int:
    return calendar.timegm((*parts, 0, 0, 0)[:6]) * 1000


@pytest.mark.parametrize(
    ("qty", "n", "step", "shares"),
    [
        (10, 3, 1, [4, 3, 3]),
        (12, 4, 1, [3, 3, 3, 3]),
        (50, 3, 10, [20, 20, 10]),
        (7, 1, 1, [7]),
        (2, 3, 1, [1, 1, 0]),  # fewer steps than trades: the trailing one carries 0
    ],
)
def test_split_qty_is_even_in_whole_steps_remainder_first(
    qty: int, n: int, step: int, shares: list[int]
) -> None:
    assert split_qty(qty, n, step) == shares
    assert sum(shares) == qty


def test_weeks_open_on_monday_and_months_on_the_first() -> None:
    thursday_noon = utc_ms(2023, 11, 16, 12)
    assert bar_open(thursday_noon, "1w") == utc_ms(2023, 11, 13)  # a Monday
    assert next_open(utc_ms(2023, 11, 13), "1w") == utc_ms(2023, 11, 20)
    assert bar_open(thursday_noon, "1M") == utc_ms(2023, 11, 1)
    assert next_open(utc_ms(2023, 12, 1), "1M") == utc_ms(2024, 1, 1)
    assert next_open(utc_ms(2024, 2, 1), "1M") == utc_ms(2024, 3, 1)
    assert bar_open(thursday_noon + 59_999, "1m") == thursday_noon
    assert bar_open(thursday_noon, "4h") == utc_ms(2023, 11, 16, 12)
    assert bar_open(thursday_noon, "1d") == utc_ms(2023, 11, 16)
    assert len(INTERVALS) == 15


@pytest.mark.parametrize("symbol", sorted(KNOWN_SPECS))
def test_brackets_give_the_maintenance_margin_the_account_charges(symbol: str) -> None:
    spec = KNOWN_SPECS[symbol]
    rows = brackets(spec)["brackets"]
    for amt in (D("0.1"), D("40"), D("3000")):
        pos = Position(symbol, 20, amt=amt, entry=D("60000"))
        marked = Marked(pos, D("60000"), spec.maint_margin_rate)
        notional = amt * D("60000")
        row = next(r for r in rows if r["notionalFloor"] <= notional < r["notionalCap"])
        by_bracket = notional * D(str(row["maintMarginRatio"])) - D(str(row["cum"]))
        assert by_bracket.quantize(D("0.00000001")) == marked.maint_margin
    for row in rows:
        assert str(row["notionalCap"]) == max_notional(row["initialLeverage"])
