"""Performance figures of a set of paper trades (backtests and the paper summary).

Definitions (the README repeats them):
- ``trades``: closed trades; open ones are counted apart and excluded below.
- ``win_rate``: share of closed trades with a result above 0 R.
- ``avg_r`` / ``total_r``: mean and sum of results in R.
- ``profit_factor``: gross winning R / gross losing R (None without losses).
- ``expectancy_usd``: mean result in USD per closed trade.
- ``max_drawdown_r``: largest fall of cumulative R from a previous peak, trades in close order.
- ``sharpe`` / ``sortino``: of daily R over every UTC day of the period (days without a
  close count as 0), annualised with √365; None with fewer than two days or no dispersion.
- ``exposure``: share of the period during which at least one position was open.
- ``funding_usd``: funding P&L (negative when paid).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class TradeOutcome:
    """What statistics need of one paper trade."""

    entry_ms: int
    close_ms: int | None
    result_r: float
    result_usd: float
    funding_usd: float


@dataclass(frozen=True, slots=True)
class Summary:
    trades: int
    open_trades: int
    win_rate: float | None
    avg_r: float | None
    total_r: float
    profit_factor: float | None
    expectancy_usd: float | None
    max_drawdown_r: float
    sharpe: float | None
    sortino: float | None
    exposure: float
    funding_usd: float


def _ratio(mean: float, dispersion: float) -> float | None:
    if dispersion <= 0 or math.isnan(dispersion):
        return None
    return mean / dispersion * math.sqrt(365)


def summarise(outcomes: Sequence[TradeOutcome], from_ms: int, to_ms: int) -> Summary:
    closed = sorted((o for o in outcomes if o.close_ms is not None), key=lambda o: o.close_ms or 0)
    results = [o.result_r for o in closed]
    wins = [r for r in results if r > 0]
    losses = [r for r in results if r < 0]
    peak = cumulative = drawdown = 0.0
    for r in results:
        cumulative += r
        peak = max(peak, cumulative)
        drawdown = max(drawdown, peak - cumulative)

    days = max(1, -(-(to_ms - from_ms) // DAY_MS))
    daily = [0.0] * days
    for o in closed:
        index = min(days - 1, max(0, ((o.close_ms or 0) - from_ms) // DAY_MS))
        daily[index] += o.result_r
    sharpe = sortino = None
    if days >= 2:
        mean = sum(daily) / days
        variance = sum((x - mean) ** 2 for x in daily) / (days - 1)
        downside = math.sqrt(sum(min(0.0, x) ** 2 for x in daily) / days)
        sharpe = _ratio(mean, math.sqrt(variance))
        sortino = _ratio(mean, downside)

    intervals = sorted(
        (max(o.entry_ms, from_ms), min(o.close_ms if o.close_ms is not None else to_ms, to_ms))
        for o in outcomes
    )
    covered = 0
    current_start = current_end = None
    for start, end in intervals:
        if end <= start:
            continue
        if current_end is None or start > current_end:
            if current_end is not None and current_start is not None:
                covered += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None and current_start is not None:
        covered += current_end - current_start

    return Summary(
        trades=len(closed),
        open_trades=len(outcomes) - len(closed),
        win_rate=len(wins) / len(closed) if closed else None,
        avg_r=sum(results) / len(results) if results else None,
        total_r=sum(results),
        profit_factor=sum(wins) / -sum(losses) if losses else None,
        expectancy_usd=sum(o.result_usd for o in closed) / len(closed) if closed else None,
        max_drawdown_r=drawdown,
        sharpe=sharpe,
        sortino=sortino,
        exposure=covered / (to_ms - from_ms) if to_ms > from_ms else 0.0,
        funding_usd=sum(o.funding_usd for o in outcomes),
    )
