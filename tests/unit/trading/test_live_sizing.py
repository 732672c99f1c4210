"""Sizing a live entry: risk / R floored to the market step, or skipped with a reason.

Expected numbers are worked out by hand from SIGNALS.md's paper plan: for BTCUSDT at
60 000 with ATR 200 and v52's exit (sl 1.5 ATR, 1 bp slippage), e = 60 006, R = 300,
stop = 59 706.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbengine.trading.live_rules import to_decimal
from arbengine.trading.live_sizing import Sized, Skipped, size_entry
from tests.support.live_examples import RISK, V52_EXIT, rules_for, signal

BTC = rules_for("BTCUSDT")
XRP = rules_for("XRPUSDT")
PLENTY = Decimal(1_000_000)


def test_quantity_is_risk_over_r_floored_to_the_market_step() -> None:
    sized = size_entry(
        signal(1), V52_EXIT, BTC, risk_usd=RISK, leverage=10, available_margin=PLENTY
    )
    assert isinstance(sized, Sized)
    assert sized.entry == Decimal("60006.0")
    assert sized.stop == Decimal("59706.0")
    assert sized.r_distance == Decimal("300.0")
    assert sized.qty == Decimal("0.333")  # 100 / 300 = 0.3333…, floored
    assert sized.notional == Decimal("0.333") * Decimal("60006.0")
    assert sized.margin == Decimal("0.333") * Decimal("60006.0") / 10
    assert sized.risk_usd == Decimal("99.9")  # never above the 100 asked for
    assert sized.unrounded_qty == Decimal(100) / Decimal(300)


def test_a_short_uses_the_same_distance() -> None:
    sized = size_entry(
        signal(-1), V52_EXIT, BTC, risk_usd=RISK, leverage=10, available_margin=PLENTY
    )
    assert isinstance(sized, Sized)
    assert (sized.entry, sized.stop, sized.qty) == (
        Decimal("59994.0"),
        Decimal("60294.0"),
        Decimal("0.333"),
    )


@pytest.mark.parametrize(
    ("risk", "leverage", "available", "reason", "value", "limit"),
    [
        # 0.2 / 300 = 0.00066…: floors to nothing (never rounded up to the minimum).
        ("0.2", 10, PLENTY, "below_min_qty", "0.000", "0.001"),
        # 0.5 / 300 → 0.001 BTC, worth 60.006 USDT: under the 100 minimum.
        ("0.5", 10, PLENTY, "below_min_notional", "60.006000", "100"),
        # 40 000 / 300 → 133.333 BTC: over MARKET_LOT_SIZE's 120 (LOT_SIZE would allow 1000).
        ("40000", 10, PLENTY, "above_max_qty", "133.333", "120"),
        # 3 500 / 300 → 11.666 BTC = 700 030.0 USDT: over 100x's 600 000 bracket cap.
        ("3500", 100, PLENTY, "above_bracket_cap", "700029.996", "600000"),
        # 100 → 0.333 BTC = 19 981.998 USDT, at 10x 1 998.1998 of margin: more than 1 000.
        ("100", 10, Decimal(1000), "above_available_margin", "1998.1998", "1000"),
    ],
)
def test_each_refusal_names_its_reason_and_numbers(
    risk: str, leverage: int, available: Decimal, reason: str, value: str, limit: str
) -> None:
    skipped = size_entry(
        signal(1),
        V52_EXIT,
        BTC,
        risk_usd=Decimal(risk),
        leverage=leverage,
        available_margin=available,
    )
    assert isinstance(skipped, Skipped)
    assert (skipped.reason, skipped.value, skipped.limit) == (
        reason,
        Decimal(value),
        Decimal(limit),
    )
    assert skipped.message.startswith(reason.replace("_", " ") + ": ")


def test_a_leverage_no_bracket_allows_is_refused() -> None:
    skipped = size_entry(
        signal(1), V52_EXIT, BTC, risk_usd=RISK, leverage=126, available_margin=PLENTY
    )
    assert isinstance(skipped, Skipped)
    assert (skipped.reason, skipped.limit) == ("above_bracket_cap", 0)


def test_a_stop_outside_the_price_filter_is_refused() -> None:
    # 300 · 1.0001 − 1.5 · 100 = 150.03: below BTCUSDT's 261.10 minimum price.
    low = size_entry(
        signal(1, price=300.0, atr=100.0),
        V52_EXIT,
        BTC,
        risk_usd=RISK,
        leverage=10,
        available_margin=PLENTY,
    )
    assert isinstance(low, Skipped)
    assert (low.reason, low.value, low.limit) == (
        "stop_outside_price_range",
        to_decimal(300.0 * (1 + 1e-4) - 150.0),
        Decimal("261.10"),
    )
    # 800 000 · 0.9999 + 1.5 · 7 000 = 810 420: above the 809 484 maximum.
    high = size_entry(
        signal(-1, price=800_000.0, atr=7_000.0),
        V52_EXIT,
        BTC,
        risk_usd=RISK,
        leverage=10,
        available_margin=PLENTY,
    )
    assert isinstance(high, Skipped)
    assert (high.reason, high.limit) == ("stop_outside_price_range", Decimal("809484"))


def test_a_coarse_step_floors_to_whole_tenths() -> None:
    # XRP at 0.5, ATR 0.004: R = 0.006, 100 / 0.006 = 16 666.66… → 16 666.6.
    sized = size_entry(
        signal(1, price=0.5, atr=0.004, symbol="XRPUSDT"),
        V52_EXIT,
        XRP,
        risk_usd=RISK,
        leverage=5,
        available_margin=PLENTY,
    )
    assert isinstance(sized, Sized)
    assert sized.qty == Decimal("16666.6")


def test_leverage_below_one_is_a_bug_not_a_skip() -> None:
    with pytest.raises(ValueError, match="leverage must be at least 1"):
        size_entry(signal(1), V52_EXIT, BTC, risk_usd=RISK, leverage=0, available_margin=PLENTY)


@settings(max_examples=300, deadline=None)
@given(
    direction=st.sampled_from([1, -1]),
    price=st.floats(min_value=1_000, max_value=200_000),
    atr_fraction=st.floats(min_value=1e-4, max_value=0.05),
    risk=st.decimals(min_value="0.01", max_value="100000", places=2),
    sl_atr=st.floats(min_value=0.1, max_value=5),
)
def test_sizing_never_risks_more_than_asked_nor_a_step_less(
    direction: int, price: float, atr_fraction: float, risk: Decimal, sl_atr: float
) -> None:
    rule = V52_EXIT.__class__(sl_atr=sl_atr, slippage_bps=1)
    result = size_entry(
        signal(direction, price=price, atr=price * atr_fraction),
        rule,
        BTC,
        risk_usd=risk,
        leverage=1,
        available_margin=Decimal(10) ** 12,
    )
    if isinstance(result, Sized):
        assert result.qty * result.r_distance <= risk
        assert result.qty % BTC.market_lot.step == 0
        assert (result.qty + BTC.market_lot.step) * result.r_distance > risk
    else:
        assert result.reason in {"below_min_qty", "below_min_notional", "above_max_qty"}
