"""The live exit plan: the exchange orders that carry out the paper plan for a live trade.

The live plan mirrors the paper plan (SIGNALS.md, "Paper trades") level for level: the
stop, TP1 and TP2 trigger at the paper's prices (from the signal's price, its ATR and the
strategy's exit rule: the same R levels), the breakeven stop at the paper's entry e, the
time exit at the paper's ``entry tick + max_hold``, TP1 closes the paper's fraction.
Where the exchange forces a difference the plan records it (``differences``: what, the
paper's value, the live one) so a live trade can be compared with its paper twin.

Rounding to the tick, and why each direction is the safe one. Every trigger is moved
onto the tick grid in the direction that makes it fire *no later* than the paper level:

- stops (SL and the breakeven stop) round towards the position's direction (up for a
  long, down for a short): nearer the entry, so the loss at the stop is never larger
  than the paper's R and a price that reaches the paper's stop always triggers;
- take-profits round against it (down for a long, up for a short): nearer the entry too,
  so a price that reaches the paper's level always takes the profit (a tick less of it
  at worst) rather than turning back one tick short of a live level the paper passed.

Each trigger therefore differs from the paper level by less than one tick. Quantities
are floored to the MARKET_LOT_SIZE step (conditional orders execute as market orders).

Orders (``POST /fapi/v1/algoOrder``, ``algoType=CONDITIONAL``, ``workingType`` =
``CONTRACT_PRICE``: the paper walks trade prices, so the live triggers watch the last
price too):

- stop loss: STOP_MARKET ``closePosition`` (whatever the position is, it closes it);
- TP1: TAKE_PROFIT_MARKET ``reduceOnly`` with ``tp1_fraction`` of the filled quantity;
  ``closePosition`` when that fraction is the whole position; left out (a difference)
  when the floored quantity is below the minimum;
- TP2: TAKE_PROFIT_MARKET ``closePosition`` (the rest);
- after TP1, with ``breakeven_after_tp1``: a STOP_MARKET ``reduceOnly`` for the remaining
  quantity at e, placed *before* the first stop is cancelled, so the position is never
  without a stop (a second ``closePosition`` stop on the same side is refused by Binance,
  ``-4130``, hence a quantity);
- time exit and flatten: MARKET ``reduceOnly`` orders for the remaining quantity.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from arbengine.domain.engine_rows import ExitRule
from arbengine.domain.events import Signal
from arbengine.trading.live_ids import OrderRole, TradeKey, client_id
from arbengine.trading.live_rules import Rounding, SymbolRules, to_decimal, wire
from arbengine.trading.live_sizing import Sized
from arbengine.trading.paper import open_position

Side = Literal["BUY", "SELL"]
WORKING_TYPE = "CONTRACT_PRICE"


@dataclass(frozen=True, slots=True)
class MarketOrder:
    """``POST /fapi/v1/order``, type MARKET: the entry, a time exit or a flatten."""

    symbol: str
    side: Side
    quantity: Decimal
    reduce_only: bool
    client_order_id: str
    role: OrderRole

    def params(self) -> dict[str, str]:
        """The request's parameters (the REST client adds timestamp and signature)."""
        params = {
            "symbol": self.symbol,
            "side": self.side,
            "type": "MARKET",
            "quantity": wire(self.quantity),
            "newClientOrderId": self.client_order_id,
            "newOrderRespType": "RESULT",
        }
        if self.reduce_only:
            params["reduceOnly"] = "true"
        return params


@dataclass(frozen=True, slots=True)
class AlgoOrder:
    """``POST /fapi/v1/algoOrder``: one conditional order of the exit plan."""

    symbol: str
    side: Side
    type: Literal["STOP_MARKET", "TAKE_PROFIT_MARKET"]
    trigger_price: Decimal
    quantity: Decimal | None
    """None with ``close_position``."""
    close_position: bool
    client_algo_id: str
    role: OrderRole

    def params(self) -> dict[str, str]:
        """The request's parameters; ``closePosition`` sends neither quantity nor
        ``reduceOnly`` (the exchange refuses either with it, ``-1106``)."""
        params = {
            "algoType": "CONDITIONAL",
            "symbol": self.symbol,
            "side": self.side,
            "type": self.type,
            "triggerPrice": wire(self.trigger_price),
            "workingType": WORKING_TYPE,
            "clientAlgoId": self.client_algo_id,
        }
        if self.close_position:
            params["closePosition"] = "true"
        else:
            assert self.quantity is not None
            params["quantity"] = wire(self.quantity)
            params["reduceOnly"] = "true"
        return params


OrderRequest = MarketOrder | AlgoOrder


@dataclass(frozen=True, slots=True)
class Difference:
    """Where the live plan could not be the paper plan, and by how much."""

    what: str
    paper: Decimal | None
    live: Decimal | None


@dataclass(frozen=True, slots=True)
class LivePlan:
    """The exit plan of one filled live trade."""

    key: TradeKey
    direction: Literal[1, -1]
    entry_price: Decimal
    """The live fill's average price."""
    quantity: Decimal
    """The filled quantity."""
    paper_entry: Decimal
    r_distance: Decimal
    stop_loss: Decimal
    take_profit_1: Decimal | None
    tp1_quantity: Decimal | None
    """None without a TP1 order; equal to ``quantity`` when TP1 closes everything."""
    take_profit_2: Decimal | None
    breakeven_stop: Decimal | None
    """The stop after TP1; None unless ``breakeven_after_tp1``."""
    time_exit_at: int | None
    """Epoch ms from which the rest is closed at market (paper: first trade at or after)."""
    differences: tuple[Difference, ...]

    @property
    def exit_side(self) -> Side:
        return "SELL" if self.direction == 1 else "BUY"

    def protection(self) -> list[AlgoOrder]:
        """The orders to place as soon as the entry is filled: the stop first."""
        orders = [self._algo("sl", "STOP_MARKET", self.stop_loss, None)]
        if self.take_profit_1 is not None and self.tp1_quantity is not None:
            whole = self.tp1_quantity >= self.quantity
            orders.append(
                self._algo(
                    "tp1",
                    "TAKE_PROFIT_MARKET",
                    self.take_profit_1,
                    None if whole else self.tp1_quantity,
                )
            )
        if self.take_profit_2 is not None and not self.tp1_closes_all:
            orders.append(self._algo("tp2", "TAKE_PROFIT_MARKET", self.take_profit_2, None))
        return orders

    @property
    def tp1_closes_all(self) -> bool:
        return self.tp1_quantity is not None and self.tp1_quantity >= self.quantity

    def breakeven(self, remaining: Decimal, replacement: int = 0) -> AlgoOrder | None:
        """The stop that replaces the first one after TP1 (None without the rule)."""
        if self.breakeven_stop is None or remaining <= 0:
            return None
        return self._algo(
            "breakeven_sl", "STOP_MARKET", self.breakeven_stop, remaining, replacement
        )

    def close(
        self, role: Literal["time_exit", "flatten"], remaining: Decimal, replacement: int = 0
    ) -> MarketOrder:
        """A market order that closes what is left (reduce-only: it can never open)."""
        return MarketOrder(
            symbol=self.key.symbol,
            side=self.exit_side,
            quantity=remaining,
            reduce_only=True,
            client_order_id=client_id(self.key, role, replacement),
            role=role,
        )

    def _algo(
        self,
        role: OrderRole,
        kind: Literal["STOP_MARKET", "TAKE_PROFIT_MARKET"],
        trigger: Decimal,
        quantity: Decimal | None,
        replacement: int = 0,
    ) -> AlgoOrder:
        return AlgoOrder(
            symbol=self.key.symbol,
            side=self.exit_side,
            type=kind,
            trigger_price=trigger,
            quantity=quantity,
            close_position=quantity is None,
            client_algo_id=client_id(self.key, role, replacement),
            role=role,
        )


def trade_key(signal: Signal) -> TradeKey:
    return TradeKey(signal.strategy, signal.symbol, signal.tick_ms)


def entry_order(signal: Signal, sized: Sized) -> MarketOrder:
    """The entry: a MARKET order whose id is fixed by the signal, so no retry can open a
    second position under another id."""
    key = trade_key(signal)
    return MarketOrder(
        symbol=signal.symbol,
        side="BUY" if signal.direction == 1 else "SELL",
        quantity=sized.qty,
        reduce_only=False,
        client_order_id=client_id(key, "entry"),
        role="entry",
    )


def stop_rounding(direction: int) -> Rounding:
    """Stops round towards the position's direction (nearer the entry)."""
    return "up" if direction == 1 else "down"


def take_profit_rounding(direction: int) -> Rounding:
    """Take-profits round against the position's direction (nearer the entry)."""
    return "down" if direction == 1 else "up"


def plan_exits(
    signal: Signal,
    rule: ExitRule,
    rules: SymbolRules,
    *,
    sized: Sized,
    filled_qty: Decimal,
    fill_price: Decimal,
) -> LivePlan:
    """The exit plan of the trade ``signal`` opened, once ``filled_qty`` filled at
    ``fill_price`` (a partial fill is planned for what filled)."""
    if filled_qty <= 0:
        raise ValueError("an exit plan needs a filled quantity")
    d = signal.direction
    paper = open_position(
        strategy=signal.strategy,
        strategy_hash=signal.strategy_hash,
        symbol=signal.symbol,
        direction=d,
        tick=signal.tick_ms,
        price=signal.price,
        atr=signal.atr,
        rule=rule,
    )
    diffs: list[Difference] = []

    def level(what: str, paper_value: float | None, rounding: Rounding) -> Decimal | None:
        if paper_value is None:
            return None
        exact = to_decimal(paper_value)
        live = rules.price(exact, rounding)
        if live != exact:
            diffs.append(Difference(what, exact, live))
        return live

    paper_entry = to_decimal(paper.entry_price)
    if fill_price != paper_entry:
        diffs.append(Difference("entry_price", paper_entry, fill_price))
    if filled_qty != sized.unrounded_qty:
        # The step's floor and a partial fill both show here.
        diffs.append(Difference("quantity", sized.unrounded_qty, filled_qty))
    stop = level("stop_loss", paper.stop_loss, stop_rounding(d))
    assert stop is not None
    tp1 = level("take_profit_1", paper.take_profit_1, take_profit_rounding(d))
    tp2 = level("take_profit_2", paper.take_profit_2, take_profit_rounding(d))
    tp1_qty: Decimal | None = None
    if tp1 is not None:
        fraction = to_decimal(rule.tp1_fraction if rule.tp1_fraction is not None else 1.0)
        wanted = filled_qty * fraction
        floored = min(rules.market_lot.floor(wanted), filled_qty)
        if floored < rules.market_lot.min_qty:
            diffs.append(Difference("tp1_quantity", wanted, None))
            tp1 = None
        else:
            tp1_qty = floored
            if floored != wanted:
                diffs.append(Difference("tp1_quantity", wanted, floored))
    breakeven = None
    if rule.breakeven_after_tp1 and tp1_qty is not None and tp1_qty < filled_qty:
        breakeven = level("breakeven_stop", paper.entry_price, stop_rounding(d))
    return LivePlan(
        key=trade_key(signal),
        direction=signal.direction,
        entry_price=fill_price,
        quantity=filled_qty,
        paper_entry=paper_entry,
        r_distance=to_decimal(paper.r_distance),
        stop_loss=stop,
        take_profit_1=tp1,
        tp1_quantity=tp1_qty,
        take_profit_2=tp2,
        breakeven_stop=breakeven,
        time_exit_at=None if rule.max_hold_ms is None else signal.tick_ms + rule.max_hold_ms,
        differences=tuple(diffs),
    )
