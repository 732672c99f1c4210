"""What the signal engine stores: one typed row per evaluation, signal and paper trade.

These are the shapes of ``signal_indicators``, ``signal_logs`` and
``paper_trades``, stated once: the pipeline builds them (``pipeline/records.py``)
and hands them to the signal writer in ``EngineOutput`` batches; the store
derives its column lists and JSON columns from their fields
(``store/engine_sql.py``) and rebuilds ``PaperTradeRow`` from the table at a
restart; the API's paper-trade schema is checked against ``PaperTradeRow`` by a
test. They live here, in the leaf package, because the pipeline, the store and
the API all speak them and none of those may import another.

The parts of a paper trade's ``exits`` column (its exit rule, exits and funding
charges) are the paper trader's own values, defined here for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import msgspec

# -- evaluations and signals --------------------------------------------------------------


class FactorDetail(msgspec.Struct, frozen=True):
    """One factor of an evaluation: wᵢ, its feature's value, sᵢ and wᵢ·sᵢ."""

    weight: float
    value: float | None
    score: float | None
    contribution: float | None


class GateDetail(msgspec.Struct, frozen=True):
    low: float | None
    high: float | None
    value: float | None
    passed: bool


class EvaluationBreakdown(msgspec.Struct, frozen=True):
    """The ``contributions`` column of ``signal_indicators``: the sum's terms, and each
    factor in full (by feature name)."""

    contributions: dict[str, float]
    factors: dict[str, FactorDetail]


class EvaluationRow(msgspec.Struct, frozen=True):
    """A ``signal_indicators`` row: every evaluation, fired or not, with its breakdown.
    Fields in the table's column order (the backtest's evaluations.csv uses it too)."""

    strategy: str
    strategy_hash: str
    symbol: str
    tick: int
    direction: int | None
    """+1 or −1; None without a direction."""
    score: float | None
    coverage: float
    fired: bool
    reason: str | None
    """Why it did not fire; None when it fired."""
    features: dict[str, float]
    """Every finite feature value at the tick."""
    contributions: EvaluationBreakdown
    gates: dict[str, GateDetail]


class SignalRow(msgspec.Struct, frozen=True):
    """A ``signal_logs`` row: a fired evaluation."""

    strategy: str
    strategy_hash: str
    symbol: str
    tick: int
    direction: int
    score: float | None
    coverage: float
    price: float | None
    atr: float | None
    features: dict[str, float]
    contributions: dict[str, float]


# -- paper trades -----------------------------------------------------------------------------

ExitReason = Literal["sl", "breakeven", "tp1", "tp2", "max_hold"]


@dataclass(frozen=True, slots=True)
class ExitRule:
    sl_atr: float
    tp1_atr: float | None = None
    tp1_fraction: float | None = None
    tp2_atr: float | None = None
    breakeven_after_tp1: bool = False
    max_hold_ms: int | None = None
    fee_bps: float = 0.0
    slippage_bps: float = 0.0
    risk_usd: float = 100.0


@dataclass(frozen=True, slots=True)
class PaperExit:
    ts: int
    agg_id: int
    price: float
    fraction: float
    reason: ExitReason


@dataclass(frozen=True, slots=True)
class FundingCharge:
    time: int
    rate: float
    mark: float
    fraction: float
    usd_per_unit: float
    """P&L per unit of quantity: −d · rate · mark · fraction."""


class PaperTradeState(msgspec.Struct, frozen=True):
    """Where an open position stands: what a restart needs beyond its exits."""

    remaining: float
    tp1_done: bool
    at_breakeven: bool
    last_ts: int | None


class PaperTradeExits(msgspec.Struct, frozen=True):
    """The ``exits`` column of ``paper_trades`` (JSON)."""

    fills: list[PaperExit]
    funding: list[FundingCharge]
    state: PaperTradeState
    rule: ExitRule


class PaperTradeRow(msgspec.Struct, frozen=True):
    """A ``paper_trades`` row (less the table's own ``id`` and ``updated_at``): one per
    (strategy, symbol, entry tick), rewritten as the position fills."""

    strategy: str
    strategy_hash: str
    symbol: str
    direction: int
    entry_tick: int
    entry_price: float
    r_distance: float
    stop_loss: float
    take_profit_1: float | None
    take_profit_2: float | None
    quantity: float
    risk_usd: float
    status: Literal["open", "closed"]
    exits: PaperTradeExits
    exit_reason: str | None
    closed_at: int | None
    last_agg_id: int | None
    result_r: float | None
    result_usd: float | None
    fees: float
    funding: float


# -- what the engine hands the signal writer ----------------------------------------------


@dataclass(frozen=True)
class EngineOutput:
    """One batch of rows for the signal writer: what one round of the engine produced."""

    evaluations: list[EvaluationRow] = field(default_factory=list)
    signals: list[SignalRow] = field(default_factory=list)
    paper: list[PaperTradeRow] = field(default_factory=list)
    """The latest state of every paper trade that changed."""
