"""Paper trading core (SIGNALS.md, "Paper trades"): synchronous, event-time only.

A position is opened at a firing tick and then walks every later trade of its
symbol in ``(T, agg_id)`` order. On each trade, in this order: stop loss,
first take-profit (partial; optionally moves the stop to breakeven), second
take-profit, maximum hold. Every exit fills at that trade's price moved
against the position by the slippage. Funding is charged at each funding
time after the entry tick up to the close, on the fraction still open.

The same object runs live and in backtests; nothing in it reads a clock.

Choices where SIGNALS.md is silent (documented in the README):
- ``funding_usd_per_unit`` is the P&L effect of funding per unit of quantity
  (negative when the position pays); the R result adds it.
- A funding record that is not yet known when the position closes leaves the
  trade "closed, funding pending" until it arrives; results are final once
  every funding time in (entry tick, close] has a rate.
- Exit reasons: ``sl``, ``breakeven`` (the stop after it moved to the entry),
  ``tp1``, ``tp2``, ``max_hold``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

# The paper trader's values are stored with each trade: they are defined with its row.
from arbengine.domain.engine_rows import ExitReason as ExitReason
from arbengine.domain.engine_rows import ExitRule as ExitRule
from arbengine.domain.engine_rows import FundingCharge as FundingCharge
from arbengine.domain.engine_rows import PaperExit as PaperExit


@dataclass
class PaperPosition:
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
    rule: ExitRule
    fills: list[PaperExit] = field(default_factory=list)
    funding: list[FundingCharge] = field(default_factory=list)
    remaining: float = 1.0
    tp1_done: bool = False
    at_breakeven: bool = False
    last_agg_id: int | None = None
    last_ts: int | None = None

    @property
    def is_open(self) -> bool:
        return self.remaining > 1e-12

    @property
    def closed_at(self) -> int | None:
        return None if self.is_open or not self.fills else self.fills[-1].ts

    @property
    def quantity(self) -> float:
        return self.rule.risk_usd / self.r_distance

    @property
    def exit_reason(self) -> ExitReason | None:
        return None if self.is_open or not self.fills else self.fills[-1].reason

    @property
    def fees_per_unit(self) -> float:
        fee = self.rule.fee_bps * 1e-4
        return fee * (self.entry_price + sum(f.fraction * f.price for f in self.fills))

    @property
    def funding_per_unit(self) -> float:
        return sum(c.usd_per_unit for c in self.funding)

    def result_r(self) -> float:
        """[Σ fᵢ·d·(xᵢ − e) − fee·(e + Σ fᵢ·xᵢ) + funding] / R, over the parts closed so far."""
        d, e = self.direction, self.entry_price
        gross = sum(f.fraction * d * (f.price - e) for f in self.fills)
        return (gross - self.fees_per_unit + self.funding_per_unit) / self.r_distance

    def result_usd(self) -> float:
        return self.result_r() * self.rule.risk_usd


def open_position(
    *,
    strategy: str,
    strategy_hash: str,
    symbol: str,
    direction: int,
    tick: int,
    price: float,
    atr: float,
    rule: ExitRule,
) -> PaperPosition:
    if direction not in (1, -1):
        raise ValueError("direction must be 1 or -1")
    if atr <= 0 or price <= 0:
        raise ValueError("a position needs a positive price and atr")
    slip = rule.slippage_bps * 1e-4
    e = price * (1 + direction * slip)
    r = rule.sl_atr * atr
    return PaperPosition(
        strategy=strategy,
        strategy_hash=strategy_hash,
        symbol=symbol,
        direction=direction,
        entry_tick=tick,
        entry_price=e,
        r_distance=r,
        stop_loss=e - direction * r,
        take_profit_1=None if rule.tp1_atr is None else e + direction * rule.tp1_atr * atr,
        take_profit_2=None if rule.tp2_atr is None else e + direction * rule.tp2_atr * atr,
        rule=rule,
    )


@dataclass(frozen=True, slots=True)
class FundingSettlement:
    symbol: str
    time: int
    rate: float
    mark: float | None


class PaperBook:
    """Every paper position of every strategy, fed trades and funding in event time."""

    def __init__(self) -> None:
        self.open: list[PaperPosition] = []
        self.closed: list[PaperPosition] = []
        self._funding: dict[str, dict[int, FundingSettlement]] = {}
        # Last trade of each minute per symbol (24 h): funding times are minute-aligned,
        # so "the last trade before τ" is the last entry before τ, exactly.
        self._minute_last: dict[str, dict[int, tuple[int, float]]] = {}

    def add(self, position: PaperPosition) -> None:
        self.open.append(position)

    def open_count(self, strategy: str, symbol: str) -> int:
        return sum(1 for p in self.open if p.strategy == strategy and p.symbol == symbol)

    def restore(self, positions: Iterable[PaperPosition]) -> None:
        """Take back positions from storage after a restart (open ones resume walking)."""
        for position in positions:
            (self.open if position.is_open else self.closed).append(position)

    def on_funding(self, event: FundingSettlement) -> list[PaperPosition]:
        """Record a funding rate and charge the positions the walk has already carried past
        its time (a record can arrive after the trades that followed it). Returns them."""
        self._funding.setdefault(event.symbol, {})[event.time] = event
        touched = []
        for position in [*self.open, *self.closed]:
            if position.symbol != event.symbol:
                continue
            reached = position.closed_at if not position.is_open else position.last_ts
            if self._charge(position, event, reached):
                touched.append(position)
        return touched

    def on_trades(
        self,
        symbol: str,
        agg_ids: Sequence[int] | NDArray[np.int64],
        times: Sequence[int] | NDArray[np.int64],
        prices: Sequence[float] | NDArray[np.float64],
        *,
        note: bool = True,
    ) -> list[PaperPosition]:
        """Walk one symbol's trades, ordered by (T, agg_id); return positions that changed.

        ``note=False`` when the caller already passed these trades to ``note_trades``.

        Vectorised: for each open position numpy finds the next trade that can matter
        (a level touched, the hold limit, a funding time reached) and only that trade is
        stepped in Python, so a day of trades costs a few array scans, not a loop.
        """
        ids = np.asarray(agg_ids, dtype=np.int64)
        ts = np.asarray(times, dtype=np.int64)
        px = np.asarray(prices, dtype=np.float64)
        if not len(ids):
            return []
        if note:
            self.note_trades(symbol, ts, px)
        changed: dict[int, PaperPosition] = {}
        for position in [p for p in self.open if p.symbol == symbol]:
            if self._walk(position, ids, ts, px):
                changed[id(position)] = position
        if changed:
            self.closed += [p for p in self.open if not p.is_open]
            self.open = [p for p in self.open if p.is_open]
        return list(changed.values())

    def forget_settled(self) -> int:
        """Drop what no later event can change; the number of closed positions dropped.

        For a process that runs for ever (the daemon; a backtest keeps everything for its
        report): a closed position can still be charged only funding at or before its
        close, and funding arrives in time order, so once a funding time at or after its
        close has been seen for its symbol it is final (and already stored). Funding times
        no open position can still be charged go too, except each symbol's latest.
        """
        latest = {symbol: max(events) for symbol, events in self._funding.items() if events}
        kept = [
            p
            for p in self.closed
            if p.closed_at is None or latest.get(p.symbol, p.closed_at - 1) < p.closed_at
        ]
        dropped = len(self.closed) - len(kept)
        self.closed = kept
        for symbol, events in self._funding.items():
            floor = min((p.entry_tick for p in self.open if p.symbol == symbol), default=None)
            old = [t for t in events if t != latest[symbol] and (floor is None or t <= floor)]
            for t in old:
                del events[t]
        return dropped

    def has_open(self, symbol: str) -> bool:
        return any(p.symbol == symbol for p in self.open)

    def note_trades(
        self,
        symbol: str,
        ts: Sequence[int] | NDArray[np.int64],
        px: Sequence[float] | NDArray[np.float64],
    ) -> None:
        """Remember the last trade of each minute (the funding mark fallback)."""
        ts = np.asarray(ts, dtype=np.int64)
        px = np.asarray(px, dtype=np.float64)
        if len(ts):
            self._note_minutes(symbol, ts, px)

    def _note_minutes(self, symbol: str, ts: NDArray[np.int64], px: NDArray[np.float64]) -> None:
        minutes = ts // 60_000
        last_of_minute = np.flatnonzero(np.diff(minutes) != 0)
        minute_last = self._minute_last.setdefault(symbol, {})
        for i in (*last_of_minute.tolist(), len(ts) - 1):
            minute_last[int(minutes[i])] = (int(ts[i]), float(px[i]))
        if len(minute_last) > 1500:
            newest = max(minute_last)
            for minute in [m for m in minute_last if m < newest - 1440]:
                del minute_last[minute]

    def _walk(
        self,
        position: PaperPosition,
        ids: NDArray[np.int64],
        ts: NDArray[np.int64],
        px: NDArray[np.float64],
    ) -> bool:
        """Advance one position through the batch; True when it filled or was charged."""
        start = int(np.searchsorted(ts, position.entry_tick, side="left"))
        if position.last_agg_id is not None:
            start = max(start, int(np.searchsorted(ids, position.last_agg_id, side="right")))
        n = len(ids)
        if start >= n:
            return False
        funding_times = sorted(
            t
            for t in self._funding.get(position.symbol, {})
            if t > position.entry_tick and not any(c.time == t for c in position.funding)
        )
        changed = False
        i = start
        d = position.direction
        while position.is_open and i < n:
            rest_px = px[i:]
            hit = d * (rest_px - position.stop_loss) <= 0
            if position.take_profit_1 is not None and not position.tp1_done:
                hit |= d * (rest_px - position.take_profit_1) >= 0
            if position.take_profit_2 is not None:
                hit |= d * (rest_px - position.take_profit_2) >= 0
            if position.rule.max_hold_ms is not None:
                hit |= ts[i:] >= position.entry_tick + position.rule.max_hold_ms
            pending = [t for t in funding_times if t > (position.last_ts or -1)]
            if pending:
                hit |= ts[i:] >= pending[0]
            k = int(np.argmax(hit))
            if not hit[k]:
                break
            j = i + k
            if pending and ts[j] >= pending[0]:
                # Funding at τ is charged before the trade at or after τ is applied.
                changed |= self._charge(position, self._funding[position.symbol][pending[0]],
                                        int(ts[j]))  # fmt: skip
                funding_times.remove(pending[0])
                position.last_ts = max(position.last_ts or 0, pending[0] - 1)
                if not (d * (px[j] - position.stop_loss) <= 0 or _level_touched(position, px[j])
                        or _hold_over(position, int(ts[j]))):  # fmt: skip
                    continue
            changed |= _step(position, int(ids[j]), int(ts[j]), float(px[j]))
            position.last_agg_id = int(ids[j])
            position.last_ts = int(ts[j])
            i = j + 1
        if position.is_open:
            position.last_agg_id = int(ids[-1])
            position.last_ts = int(ts[-1])
        return changed

    def last_trade_before(self, symbol: str, time: int) -> float | None:
        minutes = self._minute_last.get(symbol, {})
        best: tuple[int, float] | None = None
        for ts, price in minutes.values():
            if ts < time and (best is None or ts > best[0]):
                best = (ts, price)
        return None if best is None else best[1]

    def _charge(
        self, position: PaperPosition, event: FundingSettlement, reached: int | None
    ) -> bool:
        """Charge ``event`` if entry tick < τ ≤ how far the position has been walked (and, once
        closed, τ ≤ its close), once. The fraction is what was open just before τ."""
        if event.time <= position.entry_tick or reached is None or event.time > reached:
            return False
        closed_at = position.closed_at
        if closed_at is not None and event.time > closed_at:
            return False
        if any(c.time == event.time for c in position.funding):
            return False
        fraction = max(0.0, 1.0 - sum(f.fraction for f in position.fills if f.ts < event.time))
        if fraction <= 0:
            return False
        mark = event.mark
        if mark is None:
            mark = self.last_trade_before(position.symbol, event.time)
        if mark is None:
            mark = position.entry_price
        usd = -position.direction * event.rate * mark * fraction
        position.funding.append(FundingCharge(event.time, event.rate, mark, fraction, usd))
        position.funding.sort(key=lambda c: c.time)
        return True


def _level_touched(position: PaperPosition, price: float) -> bool:
    d = position.direction
    tp1, tp2 = position.take_profit_1, position.take_profit_2
    return (tp1 is not None and not position.tp1_done and d * (price - tp1) >= 0) or (
        tp2 is not None and d * (price - tp2) >= 0
    )


def _hold_over(position: PaperPosition, ts: int) -> bool:
    hold = position.rule.max_hold_ms
    return hold is not None and ts >= position.entry_tick + hold


def _fill(
    position: PaperPosition,
    agg_id: int,
    ts: int,
    price: float,
    fraction: float,
    reason: ExitReason,
) -> None:
    slip = position.rule.slippage_bps * 1e-4
    x = price * (1 - position.direction * slip)
    fraction = min(fraction, position.remaining)
    position.fills.append(PaperExit(ts, agg_id, x, fraction, reason))
    position.remaining = position.remaining - fraction
    if position.remaining <= 1e-12:
        position.remaining = 0.0


def _step(position: PaperPosition, agg_id: int, ts: int, price: float) -> bool:
    """Apply one trade: SL, then TP1, then TP2, then max hold. True when it filled."""
    d = position.direction
    if d * (price - position.stop_loss) <= 0:
        reason: ExitReason = "breakeven" if position.at_breakeven else "sl"
        _fill(position, agg_id, ts, price, position.remaining, reason)
        return True
    filled = False
    tp1 = position.take_profit_1
    if tp1 is not None and not position.tp1_done and d * (price - tp1) >= 0:
        position.tp1_done = True
        _fill(position, agg_id, ts, price, position.rule.tp1_fraction or 1.0, "tp1")
        filled = True
        if position.rule.breakeven_after_tp1:
            position.stop_loss = position.entry_price
            position.at_breakeven = True
        if not position.is_open:
            return True
    tp2 = position.take_profit_2
    if tp2 is not None and d * (price - tp2) >= 0:
        _fill(position, agg_id, ts, price, position.remaining, "tp2")
        return True
    max_hold = position.rule.max_hold_ms
    if max_hold is not None and ts >= position.entry_tick + max_hold:
        _fill(position, agg_id, ts, price, position.remaining, "max_hold")
        return True
    return filled
