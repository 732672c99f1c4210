"""How much to trade on a signal, or why not to trade it (the issue's "Sizing").

quantity = risk per trade / |entry − stop|, with the entry and the stop of the paper
plan (SIGNALS.md: e = price · (1 + d·slippage), R = sl_atr · atr), floored to the
MARKET_LOT_SIZE step (the entry is a market order). The quantity is only ever floored,
never rounded up, so the loss at the stop never exceeds the risk per trade; a signal the
exchange or the account cannot take at that size is *skipped* with a typed reason and
the values that decided it, never traded bigger or smaller than the rules allow.

Checked in this order, the first failure wins: the stop inside PRICE_FILTER's range,
min quantity, min notional, max quantity, the leverage bracket's notional cap at the
configured leverage, the initial margin against the available balance.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, localcontext
from typing import Literal

from arbengine.domain.engine_rows import ExitRule
from arbengine.domain.events import Signal
from arbengine.trading.live_rules import SymbolRules, to_decimal
from arbengine.trading.paper import open_position

SkipReason = Literal[
    "stop_outside_price_range",
    "below_min_qty",
    "below_min_notional",
    "above_max_qty",
    "above_bracket_cap",
    "above_available_margin",
]


@dataclass(frozen=True, slots=True)
class Sized:
    """A tradable size: the entry order's quantity and what it commits."""

    qty: Decimal
    unrounded_qty: Decimal
    """risk per trade / R before the floor: the quantity the paper plan would hold."""
    notional: Decimal
    """qty × the planned entry price."""
    margin: Decimal
    """notional / leverage: the initial margin the position takes."""
    risk_usd: Decimal
    """qty × R: the loss at the stop before fees and slippage (≤ the risk per trade)."""
    entry: Decimal
    """The paper plan's entry e."""
    stop: Decimal
    """The paper plan's stop e − d·R."""
    r_distance: Decimal
    leverage: int


@dataclass(frozen=True, slots=True)
class Skipped:
    """The signal is not traded: ``reason`` and the two numbers that decided it."""

    reason: SkipReason
    value: Decimal
    """What the signal would need (a quantity, a notional, a margin, a stop price)."""
    limit: Decimal
    """What the exchange or the account allows."""

    @property
    def message(self) -> str:
        """One line for the skip event and the log."""
        return f"{self.reason.replace('_', ' ')}: {self.value} vs limit {self.limit}"


def size_entry(
    signal: Signal,
    rule: ExitRule,
    rules: SymbolRules,
    *,
    risk_usd: Decimal,
    leverage: int,
    available_margin: Decimal,
) -> Sized | Skipped:
    """The entry size for ``signal`` under ``rule``, or why it cannot be traded."""
    if leverage < 1:
        raise ValueError(f"leverage must be at least 1, got {leverage}")
    paper = open_position(
        strategy=signal.strategy,
        strategy_hash=signal.strategy_hash,
        symbol=signal.symbol,
        direction=signal.direction,
        tick=signal.tick_ms,
        price=signal.price,
        atr=signal.atr,
        rule=rule,
    )
    entry = to_decimal(paper.entry_price)
    stop = to_decimal(paper.stop_loss)
    r_distance = to_decimal(paper.r_distance)
    if not rules.price_in_range(stop):
        bound = rules.min_price if signal.direction == 1 else rules.max_price
        return Skipped("stop_outside_price_range", stop, bound)
    with localcontext() as ctx:
        # Rounded down at every digit: the floored quantity can never carry more risk.
        ctx.rounding = ROUND_FLOOR
        steps = (risk_usd / r_distance / rules.market_lot.step).to_integral_value(ROUND_FLOOR)
    qty = steps * rules.market_lot.step
    notional = qty * entry
    lot = rules.market_lot
    if qty < lot.min_qty or qty <= 0:
        return Skipped("below_min_qty", qty, lot.min_qty)
    if notional < rules.min_notional:
        return Skipped("below_min_notional", notional, rules.min_notional)
    if qty > lot.max_qty:
        return Skipped("above_max_qty", qty, lot.max_qty)
    cap = rules.max_notional(leverage)
    if cap is not None and notional > cap:
        return Skipped("above_bracket_cap", notional, cap)
    margin = notional / leverage
    if margin > available_margin:
        return Skipped("above_available_margin", margin, available_margin)
    return Sized(
        qty=qty,
        unrounded_qty=risk_usd / r_distance,
        notional=notional,
        margin=margin,
        risk_usd=qty * r_distance,
        entry=entry,
        stop=stop,
        r_distance=r_distance,
        leverage=leverage,
    )


def resized(
    signal: Signal,
    rule: ExitRule,
    *,
    qty: Decimal,
    unrounded_qty: Decimal | None,
    risk_usd: Decimal,
    leverage: int,
) -> Sized:
    """The size a trade was given when its signal came (a restart rebuilds the trade):
    the entry order's ``qty`` as sent, the paper's levels from the signal and the rule as
    ``size_entry`` computed them, and ``unrounded_qty`` as recorded, else (nothing
    recorded yet) ``risk_usd`` / R as ``size_entry`` has it."""
    paper = open_position(
        strategy=signal.strategy,
        strategy_hash=signal.strategy_hash,
        symbol=signal.symbol,
        direction=signal.direction,
        tick=signal.tick_ms,
        price=signal.price,
        atr=signal.atr,
        rule=rule,
    )
    entry = to_decimal(paper.entry_price)
    r_distance = to_decimal(paper.r_distance)
    notional = qty * entry
    return Sized(
        qty=qty,
        unrounded_qty=risk_usd / r_distance if unrounded_qty is None else unrounded_qty,
        notional=notional,
        margin=notional / leverage,
        risk_usd=qty * r_distance,
        entry=entry,
        stop=to_decimal(paper.stop_loss),
        r_distance=r_distance,
        leverage=leverage,
    )
