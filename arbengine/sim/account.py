"""The simulated futures account: orders, conditional (algo) orders, positions, balance.

One account, USDT-margined, cross margin, one-way position mode, as the engine
trades. All money is ``Decimal`` so fees and realised PnL on worked examples are
exact: commission = fill price × qty × fee rate, rounded half-up to 8 decimals
(Binance reports commissions to 8 decimals); realised PnL = (fill − entry) ×
closed qty × sign of the position, rounded to 8 decimals; the entry price of a
position that grows is the quantity-weighted average of its fills, and it does
not change when the position shrinks. Funding pays ``−amount × mark × rate``
(longs pay a positive rate) with mark and rate as the stream published them.

Market orders fill in full at one price on the tick grid: the best ask (buy) or
bid (sell) the tape implies, moved by ``slippage_bps`` when a test asks for a thin
book; a reduce-only order larger than the position is cut to the position (its
``origQty`` then shows the executed size). The
account's own fills are not printed on the public tape: the simulated market
is deemed too deep to notice us, and the tape stays a function of the seed.

Only ``MARKET`` orders are accepted on ``/fapi/v1/order`` (the engine sends no
others); conditional orders are ``STOP_MARKET`` / ``TAKE_PROFIT_MARKET`` on the
algo endpoint, triggered by mark price (``workingType=MARK_PRICE``) or last
price. A ``closePosition`` conditional order is expired by the system when the
position goes flat, as Binance does for its GTE_GTC orders.

Every state change appends the user-data-stream events Binance would push to
``outbox``; the server drains it after each call.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from arbengine.sim.symbols import (
    NumberFormatError,
    PrecisionError,
    SymbolSpec,
    fmt_decimal,
    fmt_float,
    fmt_units,
    to_units,
)

Q8 = Decimal("0.00000001")
ZERO = Decimal(0)
CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
CLIENT_ID_RANGE = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
CONDITIONAL_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET")
ALGO_ONLY_TYPES = (
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
)
LIQUIDATION_FEE = Decimal("0.0125")
MAX_ALGO_ORDERS = 10
ACCOUNT_HISTORY_MS = 90 * 86_400_000
"""Finished orders and algos, fills and income are forgotten this long after their last
change, as Binance stops finding orders 90 days after they were made: a sim trading for
weeks keeps a bounded account, and scans of the algos stay short."""
FORGET_EVERY_MS = 3_600_000
ALL_DONE = {"code": 200, "msg": "The operation of cancel all open order is done."}


class SimApiError(Exception):
    """A Binance error reply: ``{"code": code, "msg": msg}`` with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code = code
        self.msg = msg
        self.status = status

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def mandatory(name: str) -> SimApiError:
    return SimApiError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )


class MarketView(Protocol):
    """What the account needs from the market (the sim's market, or a test fake)."""

    def now_ms(self) -> int: ...

    def quote(self, symbol: str) -> tuple[int, int]:
        """Best bid and ask in price units."""
        ...

    def mark(self, symbol: str) -> float: ...


def q8(value: Decimal) -> Decimal:
    return value.quantize(Q8, rounding=ROUND_HALF_UP)


def plain(value: Decimal) -> str:
    """Shortest exact decimal string, never exponent notation (``61000.10`` → ``61000.1``)."""
    if value == 0:
        return "0"
    text = f"{value.normalize():f}"
    return text


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


@dataclass(slots=True)
class Order:
    order_id: int
    client_id: str
    symbol: str
    side: str
    qty: Decimal
    reduce_only: bool
    time: int
    orig_type: str = "MARKET"
    close_position: bool = False
    stop_price: Decimal = ZERO
    working_type: str = "CONTRACT_PRICE"
    price_protect: bool = False
    status: str = "NEW"
    executed: Decimal = ZERO
    avg_price: Decimal = ZERO
    cum_quote: Decimal = ZERO
    update_time: int = 0


@dataclass(slots=True)
class AlgoOrder:
    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    order_type: str
    qty: Decimal | None
    trigger: Decimal
    close_position: bool
    reduce_only: bool
    working_type: str
    price_protect: bool
    create_time: int
    status: str = "NEW"
    update_time: int = 0
    trigger_time: int = 0
    actual_order_id: int | None = None
    avg_price: Decimal = ZERO
    executed: Decimal = ZERO
    reject_reason: str = ""


@dataclass(frozen=True, slots=True)
class SimFill:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    realized: Decimal
    time: int


@dataclass(frozen=True, slots=True)
class Income:
    tran_id: int
    symbol: str
    kind: str
    amount: Decimal
    time: int
    info: str = ""
    trade_id: str = ""


@dataclass(slots=True)
class _Plan:
    """A market execution that passed every check, ready to apply."""

    symbol: str
    side: str
    qty: Decimal
    price: Decimal


def _bool_param(params: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise SimApiError(-1130, f"Data sent for parameter '{name}' is not valid.")


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise SimApiError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(raw)


class Account:
    def __init__(
        self,
        specs: Mapping[str, SymbolSpec],
        market: MarketView,
        balance: Decimal = Decimal("10000"),
        leverage: int = 20,
        taker_fee: Decimal = Decimal("0.0005"),
        maker_fee: Decimal = Decimal("0.0002"),
    ) -> None:
        self.specs = dict(specs)
        self.market = market
        self.wallet = balance
        self.taker_fee = taker_fee
        self.maker_fee = maker_fee
        self.positions = {s: Position(s, leverage) for s in self.specs}
        self.orders: dict[int, Order] = {}
        self.order_by_client: dict[tuple[str, str], Order] = {}
        self.algos: dict[int, AlgoOrder] = {}
        self.algo_by_client: dict[str, AlgoOrder] = {}
        self.fills: list[SimFill] = []
        self.income: list[Income] = []
        self.outbox: list[dict[str, Any]] = []
        self.slippage_bps: dict[str, float] = {}
        self.update_time = 0
        self._next_order = 4_000_000_001
        self._next_algo = 1_000_000_001
        self._next_trade = 100_000_001
        self._next_tran = 9_000_000_001
        self._next_forget = 0

    # ==== helpers ==============================================================================

    def _spec(self, params: Mapping[str, str]) -> SymbolSpec:
        symbol = params.get("symbol")
        if not symbol:
            raise mandatory("symbol")
        spec = self.specs.get(symbol)
        if spec is None:
            raise SimApiError(-1121, "Invalid symbol.")
        return spec

    def _price(self, spec: SymbolSpec, units: int) -> Decimal:
        return Decimal(units).scaleb(-spec.price_precision)

    def mark(self, symbol: str) -> Decimal:
        return Decimal(fmt_float(self.market.mark(symbol)))

    def upnl(self, pos: Position) -> Decimal:
        if pos.amt == 0:
            return ZERO
        return q8((self.mark(pos.symbol) - pos.entry) * pos.amt)

    def initial_margin(self, pos: Position) -> Decimal:
        return q8(abs(pos.amt) * self.mark(pos.symbol) / pos.leverage)

    def maint_margin(self, pos: Position) -> Decimal:
        return q8(abs(pos.amt) * self.mark(pos.symbol) * self.specs[pos.symbol].maint_margin_rate)

    def totals(self) -> dict[str, Decimal]:
        upnl = sum((self.upnl(p) for p in self.positions.values()), ZERO)
        im = sum((self.initial_margin(p) for p in self.positions.values()), ZERO)
        mm = sum((self.maint_margin(p) for p in self.positions.values()), ZERO)
        margin_balance = self.wallet + upnl
        return {
            "wallet": self.wallet,
            "upnl": upnl,
            "im": im,
            "mm": mm,
            "margin_balance": margin_balance,
            "available": max(ZERO, margin_balance - im),
        }

    def _qty(self, spec: SymbolSpec, params: Mapping[str, str], *, market_lot: bool) -> Decimal:
        raw = params.get("quantity")
        if not raw:
            raise mandatory("quantity")
        try:
            units = to_units(raw, spec.qty_precision)
        except PrecisionError:
            raise SimApiError(
                -1111, "Precision is over the maximum defined for this asset."
            ) from None
        except NumberFormatError:
            raise SimApiError(-1100, "Illegal characters found in parameter 'quantity'.") from None
        if units <= 0:
            raise SimApiError(-4003, "Quantity less than or equal to zero.")
        max_qty = spec.market_max_qty if market_lot else spec.max_qty
        if units > max_qty:
            raise SimApiError(-4005, "Quantity greater than max quantity.")
        if units < spec.min_qty or units % spec.step:
            kind = "MARKET_LOT_SIZE" if market_lot else "LOT_SIZE"
            raise SimApiError(-1013, f"Filter failure: {kind}")
        return Decimal(units).scaleb(-spec.qty_precision)

    def _client_id(self, params: Mapping[str, str], name: str) -> str | None:
        cid = params.get(name)
        if cid is None or cid == "":
            return None
        if not CLIENT_ID.match(cid):
            raise SimApiError(
                -1100,
                f"Illegal characters found in parameter '{name}'; legal range is "
                f"'{CLIENT_ID_RANGE}'.",
            )
        return cid

    def _position_side(self, params: Mapping[str, str]) -> None:
        ps = params.get("positionSide", "BOTH")
        if ps not in ("BOTH", ""):
            raise SimApiError(-4061, "Order's position side does not match user's setting.")

    def _side(self, params: Mapping[str, str]) -> str:
        side = params.get("side")
        if not side:
            raise mandatory("side")
        if side not in ("BUY", "SELL"):
            raise SimApiError(-1117, "Invalid side.")
        return side

    def _fill_price(self, spec: SymbolSpec, side: str) -> Decimal:
        bid, ask = self.market.quote(spec.symbol)
        units = ask if side == "BUY" else bid
        bps = self.slippage_bps.get(spec.symbol, 0.0)
        if bps:
            moved = units * (1 + bps / 1e4) if side == "BUY" else units * (1 - bps / 1e4)
            units = max(spec.tick, round(moved / spec.tick) * spec.tick)
        return self._price(spec, units)

    def _check_percent_price(self, spec: SymbolSpec, side: str, price: Decimal) -> None:
        mark = self.mark(spec.symbol)
        if (side == "BUY" and price > mark * Decimal("1.05")) or (
            side == "SELL" and price < mark * Decimal("0.95")
        ):
            raise SimApiError(
                -4131, "The counterparty's best price does not meet the PERCENT_PRICE filter limit."
            )

    def _reduce_qty(self, pos: Position, side: str, qty: Decimal | None) -> Decimal:
        """The quantity a reduce-only order may execute; -2022 when it would not reduce."""
        reduces = (pos.amt > 0 and side == "SELL") or (pos.amt < 0 and side == "BUY")
        if not reduces:
            raise SimApiError(-2022, "ReduceOnly Order is rejected.")
        return abs(pos.amt) if qty is None else min(qty, abs(pos.amt))

    def _check_margin(self, pos: Position, side: str, qty: Decimal, price: Decimal) -> None:
        signed = qty if side == "BUY" else -qty
        new_amt = pos.amt + signed
        if abs(new_amt) <= abs(pos.amt) and sign(new_amt) in (0, sign(pos.amt)):
            return  # reduces only: always allowed
        fee = q8(price * qty * self.taker_fee)
        realized, new_entry = _after_fill(pos.amt, pos.entry, signed, price)
        others = [p for p in self.positions.values() if p.symbol != pos.symbol]
        mark = self.mark(pos.symbol)
        upnl = sum((self.upnl(p) for p in others), ZERO) + (mark - new_entry) * new_amt
        im = sum((self.initial_margin(p) for p in others), ZERO) + abs(new_amt) * mark / (
            pos.leverage
        )
        available = self.wallet + realized - fee + upnl - im
        if available < 0:
            raise SimApiError(-2019, "Margin is insufficient.")

    def _new_order_id(self) -> int:
        oid = self._next_order
        self._next_order += 1
        return oid

    # ==== orders ===============================================================================

    def place_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``POST /fapi/v1/order``: validate, execute a MARKET order, return the reply."""
        spec = self._spec(params)
        side = self._side(params)
        otype = params.get("type")
        if not otype:
            raise mandatory("type")
        if otype in ALGO_ONLY_TYPES:
            raise SimApiError(
                -4120,
                "Order type not supported for this endpoint. Please use the Algo Order API "
                "endpoints instead.",
            )
        if otype != "MARKET":
            raise SimApiError(-1116, "Invalid orderType.")
        self._position_side(params)
        cid = self._client_id(params, "newClientOrderId")
        if cid is not None and (spec.symbol, cid) in self.order_by_client:
            raise SimApiError(-4116, "ClientOrderId is duplicated.")
        reduce_only = _bool_param(params, "reduceOnly")
        resp_type = params.get("newOrderRespType", "ACK") or "ACK"
        if resp_type not in ("ACK", "RESULT"):
            raise SimApiError(-1130, "Data sent for parameter 'newOrderRespType' is not valid.")
        qty = self._qty(spec, params, market_lot=True)
        plan = self._plan(spec, side, qty, reduce_only)
        order = self._execute(plan, cid, reduce_only, orig_type="MARKET")
        return self.order_reply(order, result=resp_type == "RESULT")

    def _plan(self, spec: SymbolSpec, side: str, qty: Decimal | None, reduce_only: bool) -> _Plan:
        pos = self.positions[spec.symbol]
        price = self._fill_price(spec, side)
        self._check_percent_price(spec, side, price)
        if reduce_only or qty is None:
            qty = self._reduce_qty(pos, side, qty)
        elif qty * price < spec.min_notional:
            raise SimApiError(
                -4164,
                f"Order's notional must be no smaller than {spec.min_notional} "
                "(unless you choose reduce only).",
            )
        self._check_margin(pos, side, qty, price)
        return _Plan(spec.symbol, side, qty, price)

    def _execute(
        self,
        plan: _Plan,
        client_id: str | None,
        reduce_only: bool,
        orig_type: str,
        *,
        close_position: bool = False,
        stop_price: Decimal = ZERO,
        working_type: str = "CONTRACT_PRICE",
    ) -> Order:
        now = self.market.now_ms()
        oid = self._new_order_id()
        order = Order(
            order_id=oid,
            client_id=client_id or f"sim_{oid}",
            symbol=plan.symbol,
            side=plan.side,
            qty=plan.qty,
            reduce_only=reduce_only,
            time=now,
            orig_type=orig_type,
            close_position=close_position,
            stop_price=stop_price,
            working_type=working_type,
            update_time=now,
        )
        self.orders[oid] = order
        self.order_by_client.setdefault((plan.symbol, order.client_id), order)
        self._emit_order(order, "NEW", "NEW")
        fill = self._apply_fill(order, plan.price, plan.qty, self.taker_fee, now)
        self._emit_account("ORDER", [order.symbol])
        self._emit_order(order, "TRADE", "FILLED", fill)
        self._expire_close_position_algos(order.symbol)
        return order

    def _apply_fill(
        self, order: Order, price: Decimal, qty: Decimal, fee_rate: Decimal, now: int
    ) -> SimFill:
        pos = self.positions[order.symbol]
        signed = qty if order.side == "BUY" else -qty
        realized, new_entry = _after_fill(pos.amt, pos.entry, signed, price)
        commission = q8(price * qty * fee_rate)
        pos.amt += signed
        pos.entry = new_entry
        pos.cum_realized += realized
        pos.update_time = now
        self.wallet += realized - commission
        self.update_time = now
        order.executed = qty
        order.avg_price = price
        order.cum_quote = q8(price * qty)
        order.status = "FILLED"
        order.update_time = now
        fill = SimFill(
            self._next_trade,
            order.order_id,
            order.symbol,
            order.side,
            price,
            qty,
            commission,
            realized,
            now,
        )
        self._next_trade += 1
        self.fills.append(fill)
        if realized:
            self._record_income(order.symbol, "REALIZED_PNL", realized, now, str(fill.trade_id))
        self._record_income(order.symbol, "COMMISSION", -commission, now, str(fill.trade_id))
        return fill

    def _record_income(
        self, symbol: str, kind: str, amount: Decimal, now: int, trade_id: str = ""
    ) -> None:
        self.forget_old(now)
        self.income.append(Income(self._next_tran, symbol, kind, amount, now, kind, trade_id))
        self._next_tran += 1

    def forget_old(self, now: int) -> None:
        """Drop what ``ACCOUNT_HISTORY_MS`` no longer covers; scans at most once an hour.

        Called where the account grows (every fill and funding records income; every
        algo order is placed), so the cost is amortised over what is added.
        """
        if now < self._next_forget:
            return
        self._next_forget = now + FORGET_EVERY_MS
        cutoff = now - ACCOUNT_HISTORY_MS
        for oid, order in list(self.orders.items()):
            if order.status != "NEW" and order.update_time < cutoff:
                del self.orders[oid]
                key = (order.symbol, order.client_id)
                if self.order_by_client.get(key) is order:
                    del self.order_by_client[key]
        for aid, algo in list(self.algos.items()):
            if algo.status not in ("NEW", "TRIGGERING") and algo.update_time < cutoff:
                del self.algos[aid]
                if self.algo_by_client.get(algo.client_algo_id) is algo:
                    del self.algo_by_client[algo.client_algo_id]
        old_fills = bisect.bisect_left(self.fills, cutoff, key=lambda f: f.time)
        del self.fills[:old_fills]
        old_income = bisect.bisect_left(self.income, cutoff, key=lambda i: i.time)
        del self.income[:old_income]

    def find_order(self, params: Mapping[str, str]) -> Order:
        spec = self._spec(params)
        oid = _int_param(params, "orderId")
        cid = params.get("origClientOrderId")
        if oid is None and not cid:
            raise SimApiError(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            )
        order = (
            self.orders.get(oid)
            if oid is not None
            else self.order_by_client.get((spec.symbol, cid or ""))
        )
        if order is None or order.symbol != spec.symbol:
            raise SimApiError(-2013, "Order does not exist.")
        return order

    def query_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        return self.order_reply(self.find_order(params), result=True, query=True)

    def cancel_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Market orders fill at once, so there is never anything left to cancel."""
        try:
            self.find_order(params)
        except SimApiError as err:
            if err.code != -2013:
                raise
        raise SimApiError(-2011, "Unknown order sent.")

    def cancel_all(self, params: Mapping[str, str]) -> dict[str, Any]:
        self._spec(params)
        return dict(ALL_DONE)

    def open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        if params.get("symbol"):
            self._spec(params)
        return []

    def all_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        spec = self._spec(params)
        limit = min(_int_param(params, "limit") or 500, 1000)
        rows = [o for o in self.orders.values() if o.symbol == spec.symbol]
        return [self.order_reply(o, result=True, query=True) for o in rows[-limit:]]

    def order_reply(self, o: Order, *, result: bool, query: bool = False) -> dict[str, Any]:
        spec = self.specs[o.symbol]
        filled = result and o.status == "FILLED"
        reply: dict[str, Any] = {
            "orderId": o.order_id,
            "symbol": o.symbol,
            "status": o.status if result else "NEW",
            "clientOrderId": o.client_id,
            "price": fmt_units(0, spec.price_precision),
            "avgPrice": fmt_decimal(o.avg_price if filled else ZERO, spec.price_precision),
            "origQty": fmt_decimal(o.qty, spec.qty_precision),
            "executedQty": fmt_decimal(o.executed if filled else ZERO, spec.qty_precision),
            "cumQuote": fmt_decimal(o.cum_quote if filled else ZERO, 8),
            "timeInForce": "GTC",
            "type": "MARKET",
            "reduceOnly": o.reduce_only,
            "closePosition": o.close_position,
            "side": o.side,
            "positionSide": "BOTH",
            "stopPrice": fmt_decimal(o.stop_price, spec.price_precision),
            "workingType": o.working_type,
            "priceProtect": o.price_protect,
            "origType": o.orig_type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": 0,
            "updateTime": o.update_time,
        }
        if not query:
            reply["cumQty"] = reply["executedQty"]
        else:
            reply["time"] = o.time
        return reply

    # ==== conditional (algo) orders ============================================================

    def place_algo(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``POST /fapi/v1/algoOrder`` with ``algoType=CONDITIONAL``."""
        algo_type = params.get("algoType")
        if not algo_type:
            raise mandatory("algoType")
        if algo_type != "CONDITIONAL":
            raise SimApiError(-1130, "Data sent for parameter 'algoType' is not valid.")
        spec = self._spec(params)
        side = self._side(params)
        otype = params.get("type")
        if not otype:
            raise mandatory("type")
        if otype not in CONDITIONAL_TYPES:
            raise SimApiError(-1116, "Invalid orderType.")
        self._position_side(params)
        raw_trigger = params.get("triggerPrice")
        if not raw_trigger:
            raise mandatory("triggerPrice")
        try:
            trigger_units = to_units(raw_trigger, spec.price_precision)
        except PrecisionError:
            raise SimApiError(
                -1111, "Precision is over the maximum defined for this asset."
            ) from None
        except NumberFormatError:
            raise SimApiError(
                -1100, "Illegal characters found in parameter 'triggerPrice'."
            ) from None
        if trigger_units <= 0:
            raise SimApiError(-4006, "Stop price less than zero.")
        if trigger_units % spec.tick:
            raise SimApiError(-4014, "Price not increased by tick size.")
        close_position = _bool_param(params, "closePosition")
        reduce_only = _bool_param(params, "reduceOnly")
        qty: Decimal | None = None
        if close_position:
            if params.get("quantity"):
                raise SimApiError(-1106, "Parameter 'quantity' sent when not required.")
            if params.get("reduceOnly"):
                raise SimApiError(-1106, "Parameter 'reduceOnly' sent when not required.")
        else:
            qty = self._qty(spec, params, market_lot=True)
        working = params.get("workingType") or "CONTRACT_PRICE"
        if working not in ("MARK_PRICE", "CONTRACT_PRICE"):
            raise SimApiError(-1130, "Data sent for parameter 'workingType' is not valid.")
        price_protect = _bool_param(params, "priceProtect")
        cid = self._client_id(params, "clientAlgoId")
        if cid is not None and cid in self.algo_by_client:
            raise SimApiError(-4116, "ClientOrderId is duplicated.")
        open_count = sum(
            1 for a in self.algos.values() if a.symbol == spec.symbol and a.status == "NEW"
        )
        if open_count >= MAX_ALGO_ORDERS:
            raise SimApiError(-4045, "Reach max stop order limit.")
        trigger = self._price(spec, trigger_units)
        if _triggered(otype, side, trigger, self._working_price(spec, working)):
            raise SimApiError(-2021, "Order would immediately trigger.")
        now = self.market.now_ms()
        self.forget_old(now)
        algo = AlgoOrder(
            algo_id=self._next_algo,
            client_algo_id=cid or f"simalgo_{self._next_algo}",
            symbol=spec.symbol,
            side=side,
            order_type=otype,
            qty=qty,
            trigger=trigger,
            close_position=close_position,
            reduce_only=reduce_only or close_position,
            working_type=working,
            price_protect=price_protect,
            create_time=now,
            update_time=now,
        )
        self._next_algo += 1
        self.algos[algo.algo_id] = algo
        self.algo_by_client[algo.client_algo_id] = algo
        self._emit_algo(algo)
        return self.algo_reply(algo)

    def _working_price(self, spec: SymbolSpec, working: str) -> Decimal:
        if working == "MARK_PRICE":
            return self.mark(spec.symbol)
        bid, ask = self.market.quote(spec.symbol)
        return self._price(spec, (bid + ask) // 2 // spec.tick * spec.tick)

    def find_algo(self, params: Mapping[str, str]) -> AlgoOrder:
        aid = _int_param(params, "algoId")
        cid = params.get("clientAlgoId")
        if aid is None and not cid:
            raise SimApiError(
                -1102, "Param 'clientAlgoId' or 'algoId' must be sent, but both were empty/null!"
            )
        algo = self.algos.get(aid) if aid is not None else self.algo_by_client.get(cid or "")
        if algo is None:
            raise SimApiError(-2013, "Order does not exist.")
        return algo

    def query_algo(self, params: Mapping[str, str]) -> dict[str, Any]:
        return self.algo_reply(self.find_algo(params))

    def cancel_algo(self, params: Mapping[str, str]) -> dict[str, Any]:
        try:
            algo = self.find_algo(params)
        except SimApiError as err:
            if err.code == -2013:
                raise SimApiError(-2011, "Unknown order sent.") from None
            raise
        if algo.status != "NEW":
            raise SimApiError(-2011, "Unknown order sent.")
        self._finish_algo(algo, "CANCELED")
        return {
            "algoId": algo.algo_id,
            "clientAlgoId": algo.client_algo_id,
            "code": "200",
            "msg": "success",
        }

    def cancel_all_algos(self, params: Mapping[str, str]) -> dict[str, Any]:
        spec = self._spec(params)
        for algo in list(self.algos.values()):
            if algo.symbol == spec.symbol and algo.status == "NEW":
                self._finish_algo(algo, "CANCELED")
        return dict(ALL_DONE)

    def open_algos(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        symbol = params.get("symbol")
        if symbol:
            self._spec(params)
        return [
            self.algo_reply(a)
            for a in self.algos.values()
            if a.status == "NEW" and (not symbol or a.symbol == symbol)
        ]

    def all_algos(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        spec = self._spec(params)
        return [self.algo_reply(a) for a in self.algos.values() if a.symbol == spec.symbol]

    def _finish_algo(self, algo: AlgoOrder, status: str, reason: str = "") -> None:
        algo.status = status
        algo.update_time = self.market.now_ms()
        algo.reject_reason = reason
        self._emit_algo(algo)

    def algo_reply(self, a: AlgoOrder) -> dict[str, Any]:
        spec = self.specs[a.symbol]
        return {
            "algoId": a.algo_id,
            "clientAlgoId": a.client_algo_id,
            "algoType": "CONDITIONAL",
            "orderType": a.order_type,
            "symbol": a.symbol,
            "side": a.side,
            "positionSide": "BOTH",
            "timeInForce": "GTE_GTC" if a.close_position else "GTC",
            "quantity": fmt_decimal(a.qty or ZERO, spec.qty_precision),
            "algoStatus": a.status,
            "actualOrderId": "" if a.actual_order_id is None else str(a.actual_order_id),
            "actualPrice": fmt_decimal(a.avg_price, spec.price_precision) if a.executed else "0",
            "triggerPrice": fmt_decimal(a.trigger, spec.price_precision),
            "price": fmt_units(0, spec.price_precision),
            "icebergQuantity": None,
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": a.working_type,
            "priceMatch": "NONE",
            "closePosition": a.close_position,
            "priceProtect": a.price_protect,
            "reduceOnly": a.reduce_only,
            "activatePrice": "",
            "callbackRate": "",
            "createTime": a.create_time,
            "updateTime": a.update_time,
            "triggerTime": a.trigger_time,
            "goodTillDate": 0,
        }

    def _expire_close_position_algos(self, symbol: str) -> None:
        if self.positions[symbol].amt != 0:
            return
        for algo in list(self.algos.values()):
            if algo.symbol == symbol and algo.status == "NEW" and algo.close_position:
                self._finish_algo(algo, "EXPIRED")

    def on_price(self, symbol: str, working_type: str, price: Decimal) -> None:
        """A new mark (MARK_PRICE) or trade (CONTRACT_PRICE) price: fire what it triggers."""
        for algo in list(self.algos.values()):
            if (
                algo.status == "NEW"
                and algo.symbol == symbol
                and algo.working_type == working_type
                and _triggered(algo.order_type, algo.side, algo.trigger, price)
            ):
                self._trigger(algo)

    def algo_thresholds(self, symbol: str, working_type: str) -> list[tuple[str, str, Decimal]]:
        """``(order type, side, trigger)`` of open algos, so the server can scan trades fast."""
        return [
            (a.order_type, a.side, a.trigger)
            for a in self.algos.values()
            if a.status == "NEW" and a.symbol == symbol and a.working_type == working_type
        ]

    def _trigger(self, algo: AlgoOrder) -> None:
        now = self.market.now_ms()
        algo.trigger_time = now
        algo.status = "TRIGGERING"
        algo.update_time = now
        self._emit_algo(algo)
        spec = self.specs[algo.symbol]
        pos = self.positions[algo.symbol]
        try:
            if algo.close_position and pos.amt == 0:
                self._finish_algo(algo, "EXPIRED")
                return
            plan = self._plan(spec, algo.side, algo.qty, algo.reduce_only)
        except SimApiError as err:
            reason = "Reduce Only reject" if err.code == -2022 else err.msg
            self._finish_algo(algo, "REJECTED", reason)
            return
        oid = self._next_order
        algo.actual_order_id = oid
        algo.status = "TRIGGERED"
        self._emit_algo(algo)
        order = self._execute(
            plan,
            algo.client_algo_id,
            algo.reduce_only,
            algo.order_type,
            close_position=algo.close_position,
            stop_price=algo.trigger,
            working_type=algo.working_type,
        )
        algo.avg_price = order.avg_price
        algo.executed = order.executed
        if algo.status == "TRIGGERED":
            self._finish_algo(algo, "FINISHED")

    # ==== funding and liquidation ==============================================================

    def on_funding(self, symbol: str, t: int, rate: float, mark: float) -> Decimal:
        """Settle funding for ``symbol``; the amount credited (negative when paid)."""
        pos = self.positions.get(symbol)
        if pos is None or pos.amt == 0:
            return ZERO
        fee = q8(-pos.amt * Decimal(fmt_float(mark)) * Decimal(fmt_float(rate)))
        self.wallet += fee
        self.update_time = t
        self._record_income(symbol, "FUNDING_FEE", fee, t)
        self.outbox.append(
            {
                "e": "ACCOUNT_UPDATE",
                "E": t,
                "T": t,
                "a": {
                    "m": "FUNDING_FEE",
                    "B": [
                        {
                            "a": "USDT",
                            "wb": fmt_decimal(self.wallet),
                            "cw": fmt_decimal(self.wallet),
                            "bc": fmt_decimal(fee),
                        }
                    ],
                    "P": [],
                },
            }
        )
        return fee

    def check_liquidation(self) -> bool:
        """Close every position at mark when margin balance falls to maintenance margin."""
        if all(p.amt == 0 for p in self.positions.values()):
            return False
        tot = self.totals()
        if tot["margin_balance"] > tot["mm"]:
            return False
        now = self.market.now_ms()
        for pos in self.positions.values():
            if pos.amt == 0:
                continue
            spec = self.specs[pos.symbol]
            mark_units = round(self.mark(pos.symbol) * spec.price_scale / spec.tick) * spec.tick
            price = self._price(spec, int(mark_units))
            side = "SELL" if pos.amt > 0 else "BUY"
            order = Order(
                order_id=self._new_order_id(),
                client_id=f"autoclose-{now}{pos.symbol[:3].lower()}",
                symbol=pos.symbol,
                side=side,
                qty=abs(pos.amt),
                reduce_only=True,
                time=now,
                update_time=now,
            )
            self.orders[order.order_id] = order
            self.order_by_client[(pos.symbol, order.client_id)] = order
            self._emit_order(order, "NEW", "NEW")
            fill = self._apply_fill(order, price, abs(pos.amt), LIQUIDATION_FEE, now)
            self._emit_account("ORDER", [pos.symbol])
            self._emit_order(order, "CALCULATED", "FILLED", fill)
            self._expire_close_position_algos(pos.symbol)
        if self.wallet < 0:  # the insurance fund takes the rest
            self.wallet = ZERO
        return True

    # ==== settings endpoints ===================================================================

    def set_leverage(self, params: Mapping[str, str]) -> dict[str, Any]:
        spec = self._spec(params)
        lev = _int_param(params, "leverage")
        if lev is None:
            raise mandatory("leverage")
        if not 1 <= lev <= 125:
            raise SimApiError(-4028, f"Leverage {lev} is not valid")
        self.positions[spec.symbol].leverage = lev
        return {
            "leverage": lev,
            "maxNotionalValue": str(max(50_000, 300_000_000 // lev)),
            "symbol": spec.symbol,
        }

    def set_margin_type(self, params: Mapping[str, str]) -> dict[str, Any]:
        self._spec(params)
        margin_type = params.get("marginType")
        if not margin_type:
            raise mandatory("marginType")
        if margin_type == "CROSSED":
            raise SimApiError(-4046, "No need to change margin type.")
        if margin_type == "ISOLATED":
            raise SimApiError(-1000, "The simulated exchange supports CROSSED margin only.")
        raise SimApiError(-1130, "Data sent for parameter 'marginType' is not valid.")

    # ==== reads ================================================================================

    def _position_row_v3(self, pos: Position) -> dict[str, Any]:
        spec = self.specs[pos.symbol]
        mark = self.mark(pos.symbol)
        im = self.initial_margin(pos)
        return {
            "symbol": pos.symbol,
            "positionSide": "BOTH",
            "positionAmt": fmt_decimal(pos.amt, spec.qty_precision),
            "entryPrice": plain(q8(pos.entry)),
            "breakEvenPrice": plain(self.break_even(pos)),
            "markPrice": fmt_decimal(mark),
            "unRealizedProfit": fmt_decimal(self.upnl(pos)),
            "liquidationPrice": plain(self.liquidation_price(pos)),
            "isolatedMargin": "0",
            "notional": fmt_decimal(q8(pos.amt * mark)),
            "marginAsset": "USDT",
            "isolatedWallet": "0",
            "initialMargin": fmt_decimal(im),
            "maintMargin": fmt_decimal(self.maint_margin(pos)),
            "positionInitialMargin": fmt_decimal(im),
            "openOrderInitialMargin": "0",
            "adl": 2 if pos.amt else 0,
            "bidNotional": "0",
            "askNotional": "0",
            "updateTime": pos.update_time,
        }

    def position_risk(self, params: Mapping[str, str], version: int = 3) -> list[dict[str, Any]]:
        symbol = params.get("symbol")
        if symbol:
            self._spec(params)
        rows = []
        for pos in self.positions.values():
            if symbol and pos.symbol != symbol:
                continue
            if version == 3:
                if pos.amt != 0:
                    rows.append(self._position_row_v3(pos))
                continue
            row = self._position_row_v3(pos)
            rows.append(
                {
                    "symbol": pos.symbol,
                    "positionAmt": row["positionAmt"],
                    "entryPrice": row["entryPrice"],
                    "breakEvenPrice": row["breakEvenPrice"],
                    "markPrice": row["markPrice"],
                    "unRealizedProfit": row["unRealizedProfit"],
                    "liquidationPrice": row["liquidationPrice"],
                    "leverage": str(pos.leverage),
                    "maxNotionalValue": str(max(50_000, 300_000_000 // pos.leverage)),
                    "marginType": "cross",
                    "isolatedMargin": "0.00000000",
                    "isAutoAddMargin": "false",
                    "positionSide": "BOTH",
                    "notional": row["notional"],
                    "isolatedWallet": "0",
                    "updateTime": pos.update_time,
                }
            )
        return rows

    def break_even(self, pos: Position) -> Decimal:
        if pos.amt == 0:
            return ZERO
        f = self.taker_fee
        factor = (1 + f) / (1 - f) if pos.amt > 0 else (1 - f) / (1 + f)
        return q8(pos.entry * factor)

    def liquidation_price(self, pos: Position) -> Decimal:
        """Cross margin, one-way: the mark at which margin balance meets maintenance."""
        if pos.amt == 0:
            return ZERO
        others = [p for p in self.positions.values() if p.symbol != pos.symbol]
        cushion = (
            self.wallet
            + sum((self.upnl(p) for p in others), ZERO)
            - sum((self.maint_margin(p) for p in others), ZERO)
        )
        mmr = self.specs[pos.symbol].maint_margin_rate
        denom = pos.amt - mmr * abs(pos.amt)
        if denom == 0:
            return ZERO
        price = (pos.entry * pos.amt - cushion) / denom
        return q8(price) if price > 0 else ZERO

    def balance(self) -> list[dict[str, Any]]:
        t = self.totals()
        return [
            {
                "accountAlias": "SgsR",
                "asset": "USDT",
                "balance": fmt_decimal(t["wallet"]),
                "crossWalletBalance": fmt_decimal(t["wallet"]),
                "crossUnPnl": fmt_decimal(t["upnl"]),
                "availableBalance": fmt_decimal(t["available"]),
                "maxWithdrawAmount": fmt_decimal(t["available"]),
                "marginAvailable": True,
                "updateTime": self.update_time,
            }
        ]

    def account(self, version: int = 3) -> dict[str, Any]:
        t = self.totals()
        asset = {
            "asset": "USDT",
            "walletBalance": fmt_decimal(t["wallet"]),
            "unrealizedProfit": fmt_decimal(t["upnl"]),
            "marginBalance": fmt_decimal(t["margin_balance"]),
            "maintMargin": fmt_decimal(t["mm"]),
            "initialMargin": fmt_decimal(t["im"]),
            "positionInitialMargin": fmt_decimal(t["im"]),
            "openOrderInitialMargin": "0.00000000",
            "crossWalletBalance": fmt_decimal(t["wallet"]),
            "crossUnPnl": fmt_decimal(t["upnl"]),
            "availableBalance": fmt_decimal(t["available"]),
            "maxWithdrawAmount": fmt_decimal(t["available"]),
            "updateTime": self.update_time,
        }
        positions = []
        for pos in self.positions.values():
            if version == 3 and pos.amt == 0:
                continue
            spec = self.specs[pos.symbol]
            positions.append(
                {
                    "symbol": pos.symbol,
                    "positionSide": "BOTH",
                    "positionAmt": fmt_decimal(pos.amt, spec.qty_precision),
                    "entryPrice": plain(q8(pos.entry)),
                    "unrealizedProfit": fmt_decimal(self.upnl(pos)),
                    "isolatedMargin": "0",
                    "notional": fmt_decimal(q8(pos.amt * self.mark(pos.symbol))),
                    "isolatedWallet": "0",
                    "initialMargin": fmt_decimal(self.initial_margin(pos)),
                    "maintMargin": fmt_decimal(self.maint_margin(pos)),
                    "leverage": str(pos.leverage),
                    "updateTime": pos.update_time,
                }
            )
        return {
            "totalInitialMargin": fmt_decimal(t["im"]),
            "totalMaintMargin": fmt_decimal(t["mm"]),
            "totalWalletBalance": fmt_decimal(t["wallet"]),
            "totalUnrealizedProfit": fmt_decimal(t["upnl"]),
            "totalMarginBalance": fmt_decimal(t["margin_balance"]),
            "totalPositionInitialMargin": fmt_decimal(t["im"]),
            "totalOpenOrderInitialMargin": "0.00000000",
            "totalCrossWalletBalance": fmt_decimal(t["wallet"]),
            "totalCrossUnPnl": fmt_decimal(t["upnl"]),
            "availableBalance": fmt_decimal(t["available"]),
            "maxWithdrawAmount": fmt_decimal(t["available"]),
            "assets": [asset],
            "positions": positions,
        }

    def user_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        spec = self._spec(params)
        limit = min(_int_param(params, "limit") or 500, 1000)
        from_id = _int_param(params, "fromId")
        order_id = _int_param(params, "orderId")
        start = _int_param(params, "startTime")
        end = _int_param(params, "endTime")
        rows = [
            f
            for f in self.fills
            if f.symbol == spec.symbol
            and (from_id is None or f.trade_id >= from_id)
            and (order_id is None or f.order_id == order_id)
            and (start is None or f.time >= start)
            and (end is None or f.time <= end)
        ]
        rows = rows[:limit] if from_id is not None or start is not None else rows[-limit:]
        return [
            {
                "buyer": f.side == "BUY",
                "commission": fmt_decimal(f.commission),
                "commissionAsset": "USDT",
                "id": f.trade_id,
                "maker": False,
                "orderId": f.order_id,
                "price": fmt_decimal(f.price, spec.price_precision),
                "qty": fmt_decimal(f.qty, spec.qty_precision),
                "quoteQty": fmt_decimal(q8(f.price * f.qty)),
                "realizedPnl": fmt_decimal(f.realized),
                "side": f.side,
                "positionSide": "BOTH",
                "symbol": f.symbol,
                "time": f.time,
            }
            for f in rows
        ]

    def income_history(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        symbol = params.get("symbol")
        kind = params.get("incomeType")
        limit = min(_int_param(params, "limit") or 100, 1000)
        start = _int_param(params, "startTime")
        end = _int_param(params, "endTime")
        rows = [
            i
            for i in self.income
            if (not symbol or i.symbol == symbol)
            and (not kind or i.kind == kind)
            and (start is None or i.time >= start)
            and (end is None or i.time <= end)
        ]
        rows = rows[:limit] if start is not None else rows[-limit:]
        return [
            {
                "symbol": i.symbol,
                "incomeType": i.kind,
                "income": fmt_decimal(i.amount),
                "asset": "USDT",
                "info": i.info,
                "time": i.time,
                "tranId": i.tran_id,
                "tradeId": i.trade_id,
            }
            for i in rows
        ]

    def commission_rate(self, params: Mapping[str, str]) -> dict[str, Any]:
        spec = self._spec(params)
        return {
            "symbol": spec.symbol,
            "makerCommissionRate": plain(self.maker_fee),
            "takerCommissionRate": plain(self.taker_fee),
        }

    def set_balance(self, amount: Decimal) -> None:
        self.wallet = amount
        self._emit_account("ADJUSTMENT", [])

    # ==== user data stream events ==============================================================

    def drain(self) -> list[dict[str, Any]]:
        out, self.outbox = self.outbox, []
        return out

    def _emit_order(
        self, o: Order, exec_type: str, status: str, fill: SimFill | None = None
    ) -> None:
        spec = self.specs[o.symbol]
        now = o.update_time
        qp, pp = spec.qty_precision, spec.price_precision
        body: dict[str, Any] = {
            "s": o.symbol,
            "c": o.client_id,
            "S": o.side,
            "o": "MARKET",
            "f": "GTC",
            "q": fmt_decimal(o.qty, qp),
            "p": fmt_units(0, pp),
            "ap": fmt_decimal(o.avg_price, pp) if fill else "0",
            "sp": fmt_decimal(o.stop_price, pp),
            "x": exec_type,
            "X": status,
            "i": o.order_id,
            "l": fmt_decimal(fill.qty if fill else ZERO, qp),
            "z": fmt_decimal(o.executed if fill else ZERO, qp),
            "L": fmt_decimal(fill.price, pp) if fill else "0",
            "n": fmt_decimal(fill.commission if fill else ZERO),
            "T": now,
            "t": fill.trade_id if fill else 0,
            "b": "0",
            "a": "0",
            "m": False,
            "R": o.reduce_only,
            "wt": o.working_type,
            "ot": o.orig_type,
            "ps": "BOTH",
            "cp": o.close_position,
            "rp": fmt_decimal(fill.realized if fill else ZERO),
            "pP": o.price_protect,
            "si": 0,
            "ss": 0,
            "V": "EXPIRE_MAKER",
            "pm": "NONE",
            "gtd": 0,
        }
        if fill:
            body["N"] = "USDT"
        self.outbox.append({"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": body})

    def _emit_account(self, reason: str, symbols: list[str]) -> None:
        now = self.market.now_ms()
        positions = []
        for symbol in symbols:
            pos = self.positions[symbol]
            spec = self.specs[symbol]
            positions.append(
                {
                    "s": symbol,
                    "pa": fmt_decimal(pos.amt, spec.qty_precision),
                    "ep": plain(q8(pos.entry)),
                    "bep": plain(self.break_even(pos)),
                    "cr": fmt_decimal(pos.cum_realized),
                    "up": fmt_decimal(self.upnl(pos)),
                    "mt": "cross",
                    "iw": "0",
                    "ps": "BOTH",
                    "ma": "USDT",
                }
            )
        self.outbox.append(
            {
                "e": "ACCOUNT_UPDATE",
                "E": now,
                "T": now,
                "a": {
                    "m": reason,
                    "B": [
                        {
                            "a": "USDT",
                            "wb": fmt_decimal(self.wallet),
                            "cw": fmt_decimal(self.wallet),
                            "bc": "0",
                        }
                    ],
                    "P": positions,
                },
            }
        )

    def _emit_algo(self, a: AlgoOrder) -> None:
        spec = self.specs[a.symbol]
        now = self.market.now_ms()
        body: dict[str, Any] = {
            "caid": a.client_algo_id,
            "aid": a.algo_id,
            "at": "CONDITIONAL",
            "o": a.order_type,
            "s": a.symbol,
            "S": a.side,
            "ps": "BOTH",
            "f": "GTE_GTC" if a.close_position else "GTC",
            "q": fmt_decimal(a.qty or ZERO, spec.qty_precision),
            "X": a.status,
            "ai": "" if a.actual_order_id is None else str(a.actual_order_id),
            "ap": fmt_decimal(a.avg_price, spec.price_precision) if a.executed else "0",
            "aq": fmt_decimal(a.executed, spec.qty_precision),
            "act": "MARKET" if a.actual_order_id is not None else "0",
            "tp": fmt_decimal(a.trigger, spec.price_precision),
            "p": "0",
            "V": "EXPIRE_MAKER",
            "wt": a.working_type,
            "pm": "NONE",
            "cp": a.close_position,
            "pP": a.price_protect,
            "R": a.reduce_only,
            "tt": a.trigger_time,
            "gtd": 0,
        }
        if a.reject_reason:
            body["rm"] = a.reject_reason
        self.outbox.append({"e": "ALGO_UPDATE", "T": now, "E": now, "o": body})


def _after_fill(
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


def _triggered(order_type: str, side: str, trigger: Decimal, price: Decimal) -> bool:
    stop = order_type.startswith("STOP")
    if (side == "BUY") == stop:
        return price >= trigger
    return price <= trigger
