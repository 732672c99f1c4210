"""A live trade against its paper twin: where the difference in R comes from.

Both sides are results in R of the same signal under the same exit plan. With ``d`` the
direction, the live trade's entry ``e`` (average fill), quantity ``Q``, R distance ``R``,
exits of quantity ``qᵢ`` at ``xᵢ``, fees ``F`` and funding ``U`` (USD); the paper's entry
``e'``, R distance ``R'``, exits of fraction ``fⱼ`` at ``yⱼ``, fees and funding per R::

    live  = [Σ d·qᵢ·(xᵢ − e) − F + U] / (Q·R)
    paper =  Σ d·fⱼ·(yⱼ − e') / R' − fees' + funding'

Grouping each side's exits by reason (the live ``g_r = q_r/Q`` at the average ``x̄_r``,
the paper's ``f_r`` at ``ȳ_r``), the difference splits exactly into

- entry slippage ``d·(e − e')/R``: the live fill worse than the paper's entry (positive);
- exit slippage ``Σ g_r·d·(ȳ_r − x̄_r)/R``: each live exit worse than the paper's exit by
  the same rule (positive), weighted by the live quantity;
- fees ``F/(Q·R)`` against the paper's, funding ``U/(Q·R)`` against the paper's;
- the split ``Σ (g_r/R − f_r/R')·d·(ȳ_r − e')``: what the live quantities (TP1 floored to
  the lot step) take differently from the paper's fractions, nothing when they agree;

so ``live − paper = −entry − exit − (fees − fees') + (funding − funding') + split``, to
float rounding. Slippage in bps is the same price difference over the paper's price.
A live exit whose reason the paper does not have (a flatten, a liquidation) has no
paper price to compare with: the comparison says so (``same_exits`` false) and leaves
that part in the split.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from arbengine.domain.engine_rows import PaperExit
from arbengine.domain.live_rows import Fill, LiveTradeRow

LIVE_TO_PAPER_REASON = {
    "sl": "sl",
    "breakeven_sl": "breakeven",
    "breakeven": "breakeven",
    "tp1": "tp1",
    "tp2": "tp2",
    "time_exit": "max_hold",
    "max_hold": "max_hold",
}
"""A live exit fill's reason (the order's role) as the paper's exit reason."""


class PaperTwin(msgspec.Struct, frozen=True, kw_only=True):
    """What the comparison reads of a ``paper_trades`` row."""

    entry_price: float
    r_distance: float
    risk_usd: float
    fills: list[PaperExit]
    fees: float
    """USD for the paper's quantity (``risk_usd / r_distance``)."""
    funding: float
    result_r: float | None
    closed: bool


class TwinComparison(msgspec.Struct, frozen=True, kw_only=True):
    """One live trade against its paper twin (costs positive when live did worse)."""

    entry_slippage_r: float | None
    entry_slippage_bps: float | None
    """None before the live entry filled."""
    exit_slippage_r: float | None
    exit_slippage_bps: float | None
    """None until both sides are closed."""
    fees_r: float | None
    paper_fees_r: float
    funding_r: float | None
    paper_funding_r: float
    split_r: float | None
    r_vs_paper: float | None
    """realised R − the paper's result R, once both are closed."""
    exit_reasons: list[str]
    """The live exits' reasons in the paper's words, in order (one per order)."""
    paper_exit_reasons: list[str]
    same_exits: bool | None
    """Both closed by the same rules in the same order; None until both are closed."""


def exit_reasons(fills: Iterable[Fill]) -> list[str]:
    """The live exits' reasons in order of their first fill, one per reason."""
    seen: list[str] = []
    for fill in sorted(fills, key=lambda f: f.time):
        reason = LIVE_TO_PAPER_REASON.get(fill.reason or "", fill.reason or "unknown")
        if reason not in seen:
            seen.append(reason)
    return seen


def _paper_reasons(fills: Sequence[PaperExit]) -> list[str]:
    seen: list[str] = []
    for fill in fills:
        if fill.reason not in seen:
            seen.append(fill.reason)
    return seen


def compare(live: LiveTradeRow, paper: PaperTwin) -> TwinComparison:
    d = live.direction
    r_live = live.r_distance
    paper_fees_r = paper.fees / paper.risk_usd if paper.risk_usd else 0.0
    paper_funding_r = paper.funding / paper.risk_usd if paper.risk_usd else 0.0
    live_reasons = exit_reasons(live.exit_fills)
    paper_reasons = _paper_reasons(paper.fills)
    entry_r = entry_bps = None
    if live.entry_price is not None:
        moved = d * (live.entry_price - paper.entry_price)
        entry_r = moved / r_live
        entry_bps = moved / paper.entry_price * 1e4
    closed = live.status == "closed" and paper.closed
    if (
        not closed
        or live.realised_r is None
        or paper.result_r is None
        or live.entry_price is None
        or live.quantity <= 0
    ):
        return TwinComparison(
            entry_slippage_r=entry_r,
            entry_slippage_bps=entry_bps,
            exit_slippage_r=None,
            exit_slippage_bps=None,
            fees_r=None,
            paper_fees_r=paper_fees_r,
            funding_r=None,
            paper_funding_r=paper_funding_r,
            split_r=None,
            r_vs_paper=None,
            exit_reasons=live_reasons,
            paper_exit_reasons=paper_reasons,
            same_exits=None,
        )
    assert entry_r is not None
    q = live.quantity
    live_by: dict[str, tuple[float, float]] = {}  # reason -> (quantity, quantity × price)
    for fill in live.exit_fills:
        reason = LIVE_TO_PAPER_REASON.get(fill.reason or "", fill.reason or "unknown")
        qty, value = live_by.get(reason, (0.0, 0.0))
        live_by[reason] = (qty + fill.quantity, value + fill.quantity * fill.price)
    paper_by: dict[str, tuple[float, float]] = {}  # reason -> (fraction, fraction × price)
    for exit_ in paper.fills:
        frac, value = paper_by.get(exit_.reason, (0.0, 0.0))
        paper_by[exit_.reason] = (frac + exit_.fraction, value + exit_.fraction * exit_.price)
    exit_r = exit_bps = split = 0.0
    for reason, (qty, value) in live_by.items():
        g, x = qty / q, value / qty
        if reason in paper_by:
            frac, pvalue = paper_by[reason]
            y = pvalue / frac
            exit_r += g * d * (y - x) / r_live
            exit_bps += g * d * (y - x) / y * 1e4
            split += (g / r_live - frac / paper.r_distance) * d * (y - paper.entry_price)
        else:  # no paper price for it: all of it is a difference of rule, in the split
            split += g * d * (x - paper.entry_price) / r_live
    for reason, (frac, pvalue) in paper_by.items():
        if reason not in live_by:
            split -= frac / paper.r_distance * d * (pvalue / frac - paper.entry_price)
    return TwinComparison(
        entry_slippage_r=entry_r,
        entry_slippage_bps=entry_bps,
        exit_slippage_r=exit_r,
        exit_slippage_bps=exit_bps,
        fees_r=live.fees / (q * r_live),
        paper_fees_r=paper_fees_r,
        funding_r=live.funding / (q * r_live),
        paper_funding_r=paper_funding_r,
        split_r=split,
        r_vs_paper=live.realised_r - paper.result_r,
        exit_reasons=live_reasons,
        paper_exit_reasons=paper_reasons,
        same_exits=live_reasons == paper_reasons,
    )


def explained_r(c: TwinComparison) -> float | None:
    """The difference in R the recorded costs account for (``r_vs_paper`` when the
    decomposition holds): −entry − exit − Δfees + Δfunding + split."""
    parts = (c.entry_slippage_r, c.exit_slippage_r, c.fees_r, c.funding_r, c.split_r)
    if any(p is None for p in parts):
        return None
    entry, exit_, fees, funding, split = (float(p) for p in parts)  # type: ignore[arg-type]
    return -entry - exit_ - (fees - c.paper_fees_r) + (funding - c.paper_funding_r) + split


class ParitySummary(msgspec.Struct, frozen=True, kw_only=True):
    """Means over a strategy's live trades with a paper twin (None: no such trade)."""

    twins: int
    """Closed live trades whose twin is closed: the ones the exit comparison is over."""
    same_exits: int
    """Of those, the ones that exited by the same rules in the same order."""
    entry_slippage_r: float | None
    entry_slippage_bps: float | None
    """Over every trade with an entry fill and a twin."""
    exit_slippage_r: float | None
    exit_slippage_bps: float | None
    fees_r: float | None
    paper_fees_r: float | None
    funding_r: float | None
    paper_funding_r: float | None
    r_vs_paper: float | None
    """The sum over ``twins`` of realised R − paper R."""


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def summarise(comparisons: Sequence[TwinComparison]) -> ParitySummary:
    closed = [c for c in comparisons if c.r_vs_paper is not None]
    return ParitySummary(
        twins=len(closed),
        same_exits=sum(1 for c in closed if c.same_exits),
        entry_slippage_r=_mean([c.entry_slippage_r for c in comparisons]),
        entry_slippage_bps=_mean([c.entry_slippage_bps for c in comparisons]),
        exit_slippage_r=_mean([c.exit_slippage_r for c in closed]),
        exit_slippage_bps=_mean([c.exit_slippage_bps for c in closed]),
        fees_r=_mean([c.fees_r for c in closed]),
        paper_fees_r=_mean([c.paper_fees_r for c in closed]),
        funding_r=_mean([c.funding_r for c in closed]),
        paper_funding_r=_mean([c.paper_funding_r for c in closed]),
        r_vs_paper=sum(c.r_vs_paper for c in closed if c.r_vs_paper is not None)
        if closed
        else None,
    )


def parity_lines(pairs: Sequence[tuple[LiveTradeRow, PaperTwin | None]]) -> list[str]:
    """One line a strategy for ``live status``: its live trades against their twins."""
    by_strategy: dict[str, list[tuple[LiveTradeRow, PaperTwin | None]]] = {}
    for live, paper in pairs:
        by_strategy.setdefault(live.strategy, []).append((live, paper))
    if not by_strategy:
        return ["no live trades"]
    lines = []
    for strategy, rows in sorted(by_strategy.items()):
        closed = sum(1 for live, _ in rows if live.status == "closed")
        s = summarise([compare(live, paper) for live, paper in rows if paper is not None])
        line = f"{strategy}: {closed} closed, {s.twins} with a closed twin"
        line += f" ({s.same_exits} same exits)"
        if s.r_vs_paper is not None:
            line += f"; R vs paper {s.r_vs_paper:+.3f}"
        if s.entry_slippage_r is not None and s.entry_slippage_bps is not None:
            line += f"; entry slippage {s.entry_slippage_bps:+.2f} bps"
            line += f" ({s.entry_slippage_r:+.3f} R)"
        if s.exit_slippage_r is not None and s.exit_slippage_bps is not None:
            line += f", exits {s.exit_slippage_bps:+.2f} bps ({s.exit_slippage_r:+.3f} R)"
        if s.fees_r is not None and s.paper_fees_r is not None:
            line += f"; fees {s.fees_r:.3f} R (paper {s.paper_fees_r:.3f})"
        if s.funding_r is not None and s.paper_funding_r is not None:
            line += f", funding {s.funding_r:+.3f} R (paper {s.paper_funding_r:+.3f})"
        lines.append(line)
    return lines
