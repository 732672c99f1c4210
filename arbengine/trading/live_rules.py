"""A symbol's trading rules (exchangeInfo filters and leverage brackets) and exact rounding.

Every quantity and price the live executor sends passes through here. The arithmetic
is ``Decimal`` throughout: a float cannot hold ``0.001`` or ``0.1`` exactly, and an
order whose quantity is not a whole number of steps is refused by the exchange
(``-1111``). Floats from the signal engine become ``Decimal`` through their shortest
repr (:func:`to_decimal`), so ``0.1`` is ``Decimal("0.1")``, not its binary expansion.

The rules are read from the exchange's replies through the small protocols below:
this core may not import the exchange client (import contracts), and the reply
structs of ``arbengine.exchange.replies`` satisfy them as they are.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Literal, Protocol

ZERO = Decimal(0)

Rounding = Literal["up", "down"]


class FilterView(Protocol):
    """One ``exchangeInfo`` symbol filter (``arbengine.exchange.replies.SymbolFilter``)."""

    @property
    def filterType(self) -> str: ...
    @property
    def tickSize(self) -> Decimal | None: ...
    @property
    def minPrice(self) -> Decimal | None: ...
    @property
    def maxPrice(self) -> Decimal | None: ...
    @property
    def stepSize(self) -> Decimal | None: ...
    @property
    def minQty(self) -> Decimal | None: ...
    @property
    def maxQty(self) -> Decimal | None: ...
    @property
    def notional(self) -> Decimal | None: ...


class BracketView(Protocol):
    """One leverage bracket (``arbengine.exchange.replies.LeverageBracket``)."""

    @property
    def initialLeverage(self) -> int: ...
    @property
    def notionalCap(self) -> Decimal: ...


class RulesError(ValueError):
    """exchangeInfo lacks a filter the executor needs, or holds a nonsensical one."""


@dataclass(frozen=True, slots=True)
class Lot:
    """A quantity filter: ``LOT_SIZE`` (limit and conditional orders) or ``MARKET_LOT_SIZE``."""

    step: Decimal
    min_qty: Decimal
    max_qty: Decimal

    def floor(self, qty: Decimal) -> Decimal:
        """``qty`` floored to a whole number of steps (never rounded up: never more risk)."""
        return floor_to(qty, self.step)


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """What the exchange accepts for one symbol, and how far the account may go in it."""

    symbol: str
    tick: Decimal
    min_price: Decimal
    max_price: Decimal
    lot: Lot
    market_lot: Lot
    min_notional: Decimal
    bracket_caps: tuple[tuple[int, Decimal], ...] = ()
    """(initial leverage, notional cap) of each leverage bracket; empty when unknown."""

    def price(self, price: Decimal, rounding: Rounding) -> Decimal:
        """``price`` on the tick grid (counted from ``min_price``, as PRICE_FILTER does),
        rounded ``up`` or ``down``: the caller says which side is the safe one."""
        base = self.min_price if self.min_price > 0 else ZERO
        steps = (price - base) / self.tick
        whole = steps.to_integral_value(ROUND_CEILING if rounding == "up" else ROUND_FLOOR)
        return base + whole * self.tick

    def price_in_range(self, price: Decimal) -> bool:
        """Inside PRICE_FILTER's bounds (a bound of 0 means none, as on the exchange)."""
        if price <= 0:
            return False
        if self.min_price > 0 and price < self.min_price:
            return False
        return not (self.max_price > 0 and price > self.max_price)

    def max_notional(self, leverage: int) -> Decimal | None:
        """The largest position notional allowed at ``leverage``: the cap of the largest
        bracket that still allows that leverage; 0 when no bracket does; None when the
        brackets are unknown."""
        if not self.bracket_caps:
            return None
        allowed = [cap for lev, cap in self.bracket_caps if lev >= leverage]
        return max(allowed, default=ZERO)


def to_decimal(value: float | int | str | Decimal) -> Decimal:
    """A number as the ``Decimal`` it reads as (a float through its shortest repr)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(value)


def floor_to(value: Decimal, step: Decimal) -> Decimal:
    """The largest whole multiple of ``step`` not above ``value`` (exact)."""
    if step <= 0:
        raise RulesError(f"step must be positive, got {step}")
    return (value / step).to_integral_value(ROUND_FLOOR) * step


def wire(value: Decimal) -> str:
    """A Decimal as the exchange reads it: plain notation, no exponent, no trailing zeros."""
    text = format(value.normalize(), "f")
    return "0" if text in ("-0", "") else text


def symbol_rules(
    symbol: str,
    filters: Iterable[FilterView],
    brackets: Iterable[BracketView] = (),
) -> SymbolRules:
    """The rules of ``symbol`` from its exchangeInfo filters and leverage brackets.

    PRICE_FILTER and LOT_SIZE are required; MARKET_LOT_SIZE defaults to LOT_SIZE and
    MIN_NOTIONAL to none when absent (older or test exchanges leave them out).
    """
    by_type = {f.filterType: f for f in filters}

    def need(kind: str, field: str, value: Decimal | None) -> Decimal:
        if value is None:
            raise RulesError(f"exchangeInfo {symbol}: {kind} has no {field}")
        return value

    price = by_type.get("PRICE_FILTER")
    lot = by_type.get("LOT_SIZE")
    if price is None or lot is None:
        missing = "PRICE_FILTER" if price is None else "LOT_SIZE"
        raise RulesError(f"exchangeInfo {symbol}: no {missing} filter")
    tick = need("PRICE_FILTER", "tickSize", price.tickSize)
    if tick <= 0:
        raise RulesError(f"exchangeInfo {symbol}: PRICE_FILTER tickSize {tick} is not positive")

    def read_lot(kind: str, f: FilterView) -> Lot:
        step = need(kind, "stepSize", f.stepSize)
        if step <= 0:
            raise RulesError(f"exchangeInfo {symbol}: {kind} stepSize {step} is not positive")
        return Lot(step, need(kind, "minQty", f.minQty), need(kind, "maxQty", f.maxQty))

    limit_lot = read_lot("LOT_SIZE", lot)
    market = by_type.get("MARKET_LOT_SIZE")
    market_lot = limit_lot if market is None else read_lot("MARKET_LOT_SIZE", market)
    notional = by_type.get("MIN_NOTIONAL")
    return SymbolRules(
        symbol=symbol,
        tick=tick,
        min_price=price.minPrice or ZERO,
        max_price=price.maxPrice or ZERO,
        lot=limit_lot,
        market_lot=market_lot,
        min_notional=(notional.notional if notional is not None else None) or ZERO,
        bracket_caps=tuple(sorted((b.initialLeverage, b.notionalCap) for b in brackets)),
    )
