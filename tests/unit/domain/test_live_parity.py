"""A live trade against its paper twin, worked by hand.

A long from a signal at 100 with R = 2: the paper enters at e' = 100.01 (1 bp slippage),
exits half at TP1 102.0 and half at its breakeven stop 100.0; fees 4 bps of (e' + Σ f·y)
per unit. The live trade entered 5 at 100.11, sold 2 at 102.10 (TP1, the lot step's
floor of 2.5) and 3 at 99.90 (its breakeven stop), paid 0.40 in fees and received 0.05 of
funding.
"""

from __future__ import annotations

import pytest

from arbengine.domain.engine_rows import PaperExit
from arbengine.domain.live_parity import (
    PaperTwin,
    compare,
    explained_r,
    parity_lines,
    summarise,
)
from arbengine.domain.live_rows import Fill, LiveTradeRow

R = 2.0
E_PAPER = 100.01
PAPER_FILLS = [PaperExit(1, 1, 102.0, 0.5, "tp1"), PaperExit(2, 2, 100.0, 0.5, "breakeven")]
PAPER_FEES_PER_UNIT = 4e-4 * (E_PAPER + 0.5 * 102.0 + 0.5 * 100.0)
PAPER_GROSS = 0.5 * (102.0 - E_PAPER) + 0.5 * (100.0 - E_PAPER)
PAPER_R = (PAPER_GROSS - PAPER_FEES_PER_UNIT) / R


def paper(closed: bool = True) -> PaperTwin:
    return PaperTwin(
        entry_price=E_PAPER,
        r_distance=R,
        risk_usd=10.0,
        fills=PAPER_FILLS if closed else PAPER_FILLS[:1],
        fees=PAPER_FEES_PER_UNIT * 5.0,  # the paper's quantity: risk 10 / R 2
        funding=0.0,
        result_r=PAPER_R if closed else None,
        closed=closed,
    )


def live(status: str = "closed", exits: tuple[tuple[float, float, str], ...] = ()) -> LiveTradeRow:
    exits = exits or ((102.10, 2.0, "tp1"), (99.90, 3.0, "breakeven_sl"))
    fills = [
        Fill(time=10 + i, price=p, quantity=q, fee=0.0, client_order_id=f"x{i}", reason=why)
        for i, (p, q, why) in enumerate(exits)
    ]
    gross = sum((p - 100.11) * q for p, q, _ in exits)
    net = gross - 0.40 + 0.05
    return LiveTradeRow(
        strategy="v52",
        strategy_hash="h",
        symbol="BTCUSDT",
        signal_tick=0,
        direction=1,
        status=status,  # type: ignore[arg-type]
        quantity=5.0,
        entry_price=100.11,
        stop_price=98.1,
        r_distance=R,
        risk_usd=10.0,
        exit_fills=fills if status == "closed" else [],
        fees=0.40,
        funding=0.05,
        realised_r=net / (R * 5.0) if status == "closed" else None,
        realised_usd=net if status == "closed" else None,
        paper_entry_tick=0,
    )


def test_the_difference_in_r_is_slippage_fees_funding_and_the_split() -> None:
    c = compare(live(), paper())
    assert c.entry_slippage_r == pytest.approx((100.11 - E_PAPER) / R)
    assert c.entry_slippage_bps == pytest.approx((100.11 - E_PAPER) / E_PAPER * 1e4)
    # TP1 0.10 better than the paper's, the breakeven stop 0.10 worse; weighted 2/5, 3/5.
    assert c.exit_slippage_r == pytest.approx((0.4 * -0.10 + 0.6 * 0.10) / R)
    assert c.exit_slippage_bps == pytest.approx(
        0.4 * -0.10 / 102.0 * 1e4 + 0.6 * 0.10 / 100.0 * 1e4
    )
    assert c.fees_r == pytest.approx(0.40 / 10.0)
    assert c.paper_fees_r == pytest.approx(PAPER_FEES_PER_UNIT / R)
    assert (c.funding_r, c.paper_funding_r) == (pytest.approx(0.005), 0.0)
    # 2 of 5 at TP1 where the paper took half: 0.1 of the position at TP1's level moved
    # to the breakeven's, (0.4 − 0.5)·(102 − e') + (0.6 − 0.5)·(100 − e'), over R.
    assert c.split_r == pytest.approx((-0.1 * (102.0 - E_PAPER) + 0.1 * (100.0 - E_PAPER)) / R)
    assert c.r_vs_paper == pytest.approx(live().realised_r - PAPER_R)  # type: ignore[operator]
    assert explained_r(c) == pytest.approx(c.r_vs_paper, abs=1e-12)
    assert (c.exit_reasons, c.paper_exit_reasons, c.same_exits) == (
        ["tp1", "breakeven"],
        ["tp1", "breakeven"],
        True,
    )


def test_an_exit_the_paper_has_not_is_a_different_rule_and_lands_in_the_split() -> None:
    flattened = live(exits=((102.10, 2.0, "tp1"), (101.0, 3.0, "flatten")))
    c = compare(flattened, paper())
    assert c.exit_reasons == ["tp1", "flatten"]
    assert c.same_exits is False
    assert explained_r(c) == pytest.approx(c.r_vs_paper, abs=1e-12)


def test_until_both_are_closed_only_the_entry_is_compared() -> None:
    c = compare(live(status="open"), paper(closed=False))
    assert c.entry_slippage_r == pytest.approx((100.11 - E_PAPER) / R)
    assert (c.exit_slippage_r, c.r_vs_paper, c.same_exits, explained_r(c)) == (
        None,
        None,
        None,
        None,
    )
    s = summarise([c, compare(live(), paper())])
    assert (s.twins, s.same_exits) == (1, 1)
    assert s.entry_slippage_r == pytest.approx((100.11 - E_PAPER) / R)


def test_live_status_lines() -> None:
    assert parity_lines([]) == ["no live trades"]
    [line] = parity_lines([(live(), paper()), (live(status="open"), None)])
    assert line.startswith("v52: 1 closed, 1 with a closed twin (1 same exits); R vs paper ")
