"""Rows for storage, from the pipeline's objects (and paper positions back from rows).

The store package stays free of signal and trading types: it receives the
typed rows of ``domain/engine_rows.py`` built here, and gives back paper-trade
rows that are turned into live positions here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from arbengine.domain.engine_rows import (
    EvaluationBreakdown,
    EvaluationRow,
    FactorDetail,
    GateDetail,
    PaperTradeExits,
    PaperTradeRow,
    PaperTradeState,
    SignalRow,
)
from arbengine.signals.scoring import Evaluation
from arbengine.trading.paper import PaperPosition


def _finite(values: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if v is not None and math.isfinite(v)}


def evaluation_row(e: Evaluation) -> EvaluationRow:
    """Every evaluation, fired or not, with its breakdown."""
    return EvaluationRow(
        strategy=e.strategy,
        strategy_hash=e.strategy_hash,
        symbol=e.symbol,
        tick=e.tick_ms,
        direction=e.direction or None,
        score=e.score,
        coverage=e.coverage,
        fired=e.fired,
        reason=None if e.reason is None else str(e.reason.value),
        features=_finite(e.features.as_dict()),
        contributions=EvaluationBreakdown(
            contributions=e.contributions,
            factors={
                f.feature: FactorDetail(f.weight, f.value, f.score, f.contribution)
                for f in e.factors
            },
        ),
        gates={g.feature: GateDetail(g.low, g.high, g.value, g.passed) for g in e.gates},
    )


def signal_row(e: Evaluation) -> SignalRow:
    """A fired evaluation."""
    return SignalRow(
        strategy=e.strategy,
        strategy_hash=e.strategy_hash,
        symbol=e.symbol,
        tick=e.tick_ms,
        direction=e.direction,
        score=e.score,
        coverage=e.coverage,
        price=e.price,
        atr=e.atr,
        features=_finite(e.features.as_dict()),
        contributions=e.contributions,
    )


def paper_row(p: PaperPosition) -> PaperTradeRow:
    rule = p.rule
    return PaperTradeRow(
        strategy=p.strategy,
        strategy_hash=p.strategy_hash,
        symbol=p.symbol,
        direction=p.direction,
        entry_tick=p.entry_tick,
        entry_price=p.entry_price,
        r_distance=p.r_distance,
        stop_loss=p.stop_loss,
        take_profit_1=p.take_profit_1,
        take_profit_2=p.take_profit_2,
        quantity=p.quantity,
        risk_usd=rule.risk_usd,
        status="open" if p.is_open else "closed",
        exits=PaperTradeExits(
            fills=list(p.fills),
            funding=list(p.funding),
            state=PaperTradeState(p.remaining, p.tp1_done, p.at_breakeven, p.last_ts),
            rule=rule,
        ),
        exit_reason=p.exit_reason,
        closed_at=p.closed_at,
        last_agg_id=p.last_agg_id,
        result_r=p.result_r() if p.fills else None,
        result_usd=p.result_usd() if p.fills else None,
        fees=p.fees_per_unit * p.quantity,
        funding=p.funding_per_unit * p.quantity,
    )


def position_from_row(row: PaperTradeRow) -> PaperPosition:
    """A stored paper trade as a live position again (restart)."""
    exits = row.exits
    state = exits.state
    return PaperPosition(
        strategy=row.strategy,
        strategy_hash=row.strategy_hash,
        symbol=row.symbol,
        direction=row.direction,
        entry_tick=row.entry_tick,
        entry_price=row.entry_price,
        r_distance=row.r_distance,
        stop_loss=row.stop_loss,
        take_profit_1=row.take_profit_1,
        take_profit_2=row.take_profit_2,
        rule=exits.rule,
        fills=list(exits.fills),
        funding=list(exits.funding),
        remaining=state.remaining,
        tp1_done=state.tp1_done,
        at_breakeven=state.at_breakeven,
        last_agg_id=row.last_agg_id,
        last_ts=state.last_ts,
    )
