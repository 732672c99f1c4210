"""Positions and margin: the arithmetic of one cross-margined, one-way USDT account.

All money is ``Decimal``, rounded half-up to 8 decimals where Binance reports 8:
realised PnL = (fill − entry) × closed qty × sign of the position; the entry price of
a position that grows is the quantity-weighted average of its fills and does not
change when it shrinks. Functions take the marks they need: the account supplies them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

Q8 = Decimal("0.00000001")
ZERO = Decimal(0)
LIQUIDATION_FEE = Decimal("0.0125")


def q8(value: Decimal) -> Decimal:
    return value.quantize(Q8, rounding=ROUND_HALF_UP)


def sign(value: Decimal) -> int:
    return (value > 0) - (value < 0)


@dataclass(slots=True)
class Position:
    symbol: str
    leverage: int
    amt: Decimal = ZERO
    entry: Decimal = ZERO
    cum_realized: Decimal = ZERO
    update_time: int = 0


@dataclass(frozen=True, slots=True)
class Marked:
    """A position with the mark and maintenance margin rate it is valued at."""

    position: Position
    mark: Decimal
    maint_margin_rate: Decimal

    @property
    def upnl(self) -> Decimal:
        pos = self.position
        if pos.amt == 0:
            return ZERO
        return q8((self.mark - pos.entry) * pos.amt)

    @property
    def initial_margin(self) -> Decimal:
        return q8(abs(self.position.amt) * self.mark / self.position.leverage)

    @property
    def maint_margin(self) -> Decimal:
        return q8(abs(self.position.amt) * self.mark * self.maint_margin_rate)


@dataclass(frozen=True, slots=True)
class Totals:
    wallet: Decimal
    upnl: Decimal
    im: Decimal
    mm: Decimal

    @property
    def margin_balance(self) -> Decimal:
        return self.wallet + self.upnl

    @property
    def available(self) -> Decimal:
        return max(ZERO, self.margin_balance - self.im)


def totals(wallet: Decimal, marked: Iterable[Marked]) -> Totals:
    rows = list(marked)
    return Totals(
        wallet,
        sum((m.upnl for m in rows), ZERO),
        sum((m.initial_margin for m in rows), ZERO),
        sum((m.maint_margin for m in rows), ZERO),
    )


def after_fill(
    amt: Decimal, entry: Decimal, signed: Decimal, price: Decimal
) -> tuple[Decimal, Decimal]:
    """``(realised PnL, new entry price)`` of adding ``signed`` at ``price`` to a position."""
    if amt == 0 or sign(amt) == sign(signed):
        new_amt = amt + signed
        return ZERO, (entry * abs(amt) + price * abs(signed)) / abs(new_amt)
    closing = min(abs(signed), abs(amt))
    realized = q8((price - entry) * closing * sign(amt))
    new_amt = amt + signed
    if new_amt == 0:
        return realized, ZERO
    if sign(new_amt) != sign(amt):
        return realized, price
    return realized, entry


def margin_left_after(
    wallet: Decimal,
    target: Marked,
    others: Iterable[Marked],
    signed: Decimal,
    price: Decimal,
    taker_fee: Decimal,
) -> Decimal | None:
    """Available margin once ``signed`` is filled at ``price`` on ``target`` (taker fee
    paid); ``None`` when the fill only reduces the position, which is always allowed."""
    pos = target.position
    new_amt = pos.amt + signed
    if abs(new_amt) <= abs(pos.amt) and sign(new_amt) in (0, sign(pos.amt)):
        return None
    fee = q8(price * abs(signed) * taker_fee)
    realized, new_entry = after_fill(pos.amt, pos.entry, signed, price)
    rest = list(others)
    mark = target.mark
    upnl = sum((m.upnl for m in rest), ZERO) + (mark - new_entry) * new_amt
    im = sum((m.initial_margin for m in rest), ZERO) + abs(new_amt) * mark / pos.leverage
    return wallet + realized - fee + upnl - im


def break_even(pos: Position, taker_fee: Decimal) -> Decimal:
    if pos.amt == 0:
        return ZERO
    f = taker_fee
    factor = (1 + f) / (1 - f) if pos.amt > 0 else (1 - f) / (1 + f)
    return q8(pos.entry * factor)


def liquidation_price(wallet: Decimal, target: Marked, others: Iterable[Marked]) -> Decimal:
    """Cross margin, one-way: the mark at which margin balance meets maintenance."""
    pos = target.position
    if pos.amt == 0:
        return ZERO
    rest = list(others)
    cushion = wallet + sum((m.upnl for m in rest), ZERO) - sum((m.maint_margin for m in rest), ZERO)
    mmr = target.maint_margin_rate
    denom = pos.amt - mmr * abs(pos.amt)
    if denom == 0:
        return ZERO
    price = (pos.entry * pos.amt - cushion) / denom
    return q8(price) if price > 0 else ZERO
