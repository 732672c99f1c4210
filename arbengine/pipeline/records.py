"""Rows for storage, from the pipeline's objects (and paper positions back from rows).

The store package stays free of signal and trading types: it receives plain
column tuples built here, and gives back plain records that are rebuilt here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from arbengine.signals.scoring import Evaluation
from arbengine.trading.paper import ExitRule, FundingCharge, PaperExit, PaperPosition

EvaluationRow = tuple[Any, ...]
SignalRow = tuple[Any, ...]
PaperRow = dict[str, Any]


def _finite(values: Mapping[str, float]) -> dict[str, float]:
    return {k: v for k, v in values.items() if v is not None and math.isfinite(v)}


def evaluation_row(e: Evaluation) -> EvaluationRow:
    """signal_indicators columns: every evaluation, fired or not, with its breakdown."""
    gates = {
        g.feature: {"low": g.low, "high": g.high, "value": g.value, "passed": g.passed}
        for g in e.gates
    }
    factors = {
        f.feature: {"weight": f.weight, "value": f.value, "score": f.score,
                    "contribution": f.contribution}
        for f in e.factors
    }  # fmt: skip
    return (
        e.strategy,
        e.strategy_hash,
        e.symbol,
        e.tick_ms,
        e.direction or None,
        e.score,
        e.coverage,
        e.fired,
        None if e.reason is None else str(e.reason.value),
        _finite(e.features.as_dict()),
        {"contributions": e.contributions, "factors": factors},
        gates,
    )


def signal_row(e: Evaluation) -> SignalRow:
    """signal_logs columns for a fired evaluation."""
    return (
        e.strategy,
        e.strategy_hash,
        e.symbol,
        e.tick_ms,
        e.direction,
        e.score,
        e.coverage,
        e.price,
        e.atr,
        _finite(e.features.as_dict()),
        e.contributions,
    )


def paper_row(p: PaperPosition) -> PaperRow:
    rule = p.rule
    return {
        "strategy": p.strategy,
        "strategy_hash": p.strategy_hash,
        "symbol": p.symbol,
        "direction": p.direction,
        "entry_tick": p.entry_tick,
        "entry_price": p.entry_price,
        "r_distance": p.r_distance,
        "stop_loss": p.stop_loss,
        "take_profit_1": p.take_profit_1,
        "take_profit_2": p.take_profit_2,
        "quantity": p.quantity,
        "risk_usd": rule.risk_usd,
        "status": "open" if p.is_open else "closed",
        "exits": {
            "fills": [
                {"ts": f.ts, "agg_id": f.agg_id, "price": f.price, "fraction": f.fraction,
                 "reason": f.reason}
                for f in p.fills
            ],
            "funding": [
                {"time": c.time, "rate": c.rate, "mark": c.mark, "fraction": c.fraction,
                 "usd_per_unit": c.usd_per_unit}
                for c in p.funding
            ],
            "state": {"remaining": p.remaining, "tp1_done": p.tp1_done,
                      "at_breakeven": p.at_breakeven, "last_ts": p.last_ts},
            "rule": {"sl_atr": rule.sl_atr, "tp1_atr": rule.tp1_atr,
                     "tp1_fraction": rule.tp1_fraction, "tp2_atr": rule.tp2_atr,
                     "breakeven_after_tp1": rule.breakeven_after_tp1,
                     "max_hold_ms": rule.max_hold_ms, "fee_bps": rule.fee_bps,
                     "slippage_bps": rule.slippage_bps, "risk_usd": rule.risk_usd},
        },
        "exit_reason": p.exit_reason,
        "closed_at": p.closed_at,
        "last_agg_id": p.last_agg_id,
        "result_r": p.result_r() if p.fills else None,
        "result_usd": p.result_usd() if p.fills else None,
        "fees": p.fees_per_unit * p.quantity,
        "funding": p.funding_per_unit * p.quantity,
    }  # fmt: skip


def position_from_row(row: Mapping[str, Any]) -> PaperPosition:
    """A stored paper trade as a live position again (restart)."""
    exits = row["exits"]
    rule = ExitRule(**exits["rule"])
    state = exits["state"]
    return PaperPosition(
        strategy=row["strategy"],
        strategy_hash=row["strategy_hash"],
        symbol=row["symbol"],
        direction=int(row["direction"]),
        entry_tick=int(row["entry_tick"]),
        entry_price=float(row["entry_price"]),
        r_distance=float(row["r_distance"]),
        stop_loss=float(row["stop_loss"]),
        take_profit_1=row["take_profit_1"],
        take_profit_2=row["take_profit_2"],
        rule=rule,
        fills=[PaperExit(**f) for f in exits["fills"]],
        funding=[FundingCharge(**c) for c in exits["funding"]],
        remaining=float(state["remaining"]),
        tp1_done=bool(state["tp1_done"]),
        at_breakeven=bool(state["at_breakeven"]),
        last_agg_id=row["last_agg_id"],
        last_ts=state["last_ts"],
    )
