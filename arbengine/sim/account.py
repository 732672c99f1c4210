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

This module is the account's state and its transitions; the jobs around them live
beside it: ``order_params`` (request validation), ``margin`` (positions and margin
arithmetic), ``account_wire`` (replies and events as Binance formats them) and
``account_records`` (what the account remembers).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from arbengine.sim import account_wire as wire
from arbengine.sim import order_params as param
from arbengine.sim.account_records import AlgoOrder, Income, Order, SimFill
from arbengine.sim.error_reply import SimApiError, mandatory
from arbengine.sim.margin import (
    LIQUIDATION_FEE,
    ZERO,
    Marked,
    Position,
    Totals,
    after_fill,
    break_even,
    liquidation_price,
    margin_left_after,
    q8,
    totals,
)
from arbengine.sim.symbols import SymbolSpec, fmt_decimal, fmt_float

MAX_ALGO_ORDERS = 10
ACCOUNT_HISTORY_MS = 90 * 86_400_000
"""Finished orders and algos, fills and income are forgotten this long after their last
change, as Binance stops finding orders 90 days after they were made: a sim trading for
weeks keeps a bounded account, and scans of the algos stay short."""
FORGET_EVERY_MS = 3_600_000


class MarketView(Protocol):
    """What the account needs from the market (the sim's market, or a test fake)."""

    def now_ms(self) -> int: ...

    def quote(self, symbol: str) -> tuple[int, int]:
        """Best bid and ask in price units."""
        ...

    def mark(self, symbol: str) -> float: ...


@dataclass(slots=True)
class _OrderPlan:
    """A market execution that passed every check, ready to apply."""

    symbol: str
    side: str
    qty: Decimal
    price: Decimal


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
        self.update_time = market.now_ms()
        """The balance's last change; a fresh account's is its creation (clients read 0 as
        "no balance yet")."""
        self.dual_side = False
        """Hedge mode, set only behind the client's back (``/_sim/account``): the sim
        trades one-way, so in hedge mode it refuses orders as Binance refuses a
        ``positionSide`` that does not match the setting."""
        self.multi_assets = False
        """Multi-assets margin mode, set only behind the client's back (``/_sim/account``):
        reported by ``GET multiAssetsMargin`` (the sim margins in USDT alone either way)."""
        self._next_order = 4_000_000_001
        self._next_algo = 1_000_000_001
        self._next_trade = 100_000_001
        self._next_tran = 9_000_000_001
        self._next_forget = 0

    # ==== valuation ============================================================================

    def _spec(self, params: Mapping[str, str]) -> SymbolSpec:
        return param.symbol_spec(self.specs, params)

    def _price(self, spec: SymbolSpec, units: int) -> Decimal:
        return Decimal(units).scaleb(-spec.price_precision)

    def mark(self, symbol: str) -> Decimal:
        return Decimal(fmt_float(self.market.mark(symbol)))

    def marked(self, pos: Position) -> Marked:
        """``pos`` valued at the current mark."""
        return Marked(pos, self.mark(pos.symbol), self.specs[pos.symbol].maint_margin_rate)

    def _others(self, pos: Position) -> list[Marked]:
        return [self.marked(p) for p in self.positions.values() if p.symbol != pos.symbol]

    def totals(self) -> Totals:
        return totals(self.wallet, (self.marked(p) for p in self.positions.values()))

    def break_even(self, pos: Position) -> Decimal:
        return break_even(pos, self.taker_fee)

    def liquidation_price(self, pos: Position) -> Decimal:
        """Cross margin, one-way: the mark at which margin balance meets maintenance."""
        if pos.amt == 0:
            return ZERO
        return liquidation_price(self.wallet, self.marked(pos), self._others(pos))

    # ==== checks against the account's state ===================================================

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
        available = margin_left_after(
            self.wallet, self.marked(pos), self._others(pos), signed, price, self.taker_fee
        )
        if available is not None and available < 0:
            raise SimApiError(-2019, "Margin is insufficient.")

    def _check_position_mode(self, params: Mapping[str, str]) -> None:
        param.check_position_side(params)
        if self.dual_side:
            raise SimApiError(-4061, "Order's position side does not match user's setting.")

    def _new_order_id(self) -> int:
        oid = self._next_order
        self._next_order += 1
        return oid

    # ==== orders ===============================================================================

    def place_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``POST /fapi/v1/order``: validate, execute a MARKET order, return the reply."""
        spec = self._spec(params)
        side = param.side(params)
        param.market_order_type(params)
        self._check_position_mode(params)
        cid = param.client_id(params, "newClientOrderId")
        if cid is not None and (spec.symbol, cid) in self.order_by_client:
            raise SimApiError(-4116, "ClientOrderId is duplicated.")
        reduce_only = param.bool_param(params, "reduceOnly")
        resp_type = param.response_type(params)
        qty = param.quantity(spec, params, market_lot=True)
        plan = self._plan(spec, side, qty, reduce_only)
        order = self._execute(plan, cid, reduce_only, orig_type="MARKET")
        return self.order_reply(order, result=resp_type == "RESULT")

    def _plan(
        self, spec: SymbolSpec, side: str, qty: Decimal | None, reduce_only: bool
    ) -> _OrderPlan:
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
        return _OrderPlan(spec.symbol, side, qty, price)

    def _execute(
        self,
        plan: _OrderPlan,
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
        realized, new_entry = after_fill(pos.amt, pos.entry, signed, price)
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
        oid, cid = param.order_lookup(params)
        order = (
            self.orders.get(oid)
            if oid is not None
            else self.order_by_client.get((spec.symbol, cid))
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
        return dict(wire.ALL_DONE)

    def open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        if params.get("symbol"):
            self._spec(params)
        return []

    def all_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        spec = self._spec(params)
        limit = min(param.int_param(params, "limit") or 500, 1000)
        rows = [o for o in self.orders.values() if o.symbol == spec.symbol]
        return [self.order_reply(o, result=True, query=True) for o in rows[-limit:]]

    def order_reply(self, o: Order, *, result: bool, query: bool = False) -> dict[str, Any]:
        return wire.order_reply(o, self.specs[o.symbol], result=result, query=query)

    # ==== conditional (algo) orders ============================================================

    def place_algo(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``POST /fapi/v1/algoOrder`` with ``algoType=CONDITIONAL``."""
        param.algo_type(params)
        spec = self._spec(params)
        side = param.side(params)
        otype = param.conditional_order_type(params)
        self._check_position_mode(params)
        trigger_units = param.trigger_units(spec, params)
        close_position = param.bool_param(params, "closePosition")
        reduce_only = param.bool_param(params, "reduceOnly")
        qty: Decimal | None = None
        if close_position:
            if params.get("quantity"):
                raise SimApiError(-1106, "Parameter 'quantity' sent when not required.")
            if params.get("reduceOnly"):
                raise SimApiError(-1106, "Parameter 'reduceOnly' sent when not required.")
        else:
            qty = param.quantity(spec, params, market_lot=True)
        working = param.working_type(params)
        price_protect = param.bool_param(params, "priceProtect")
        cid = param.client_id(params, "clientAlgoId")
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
        aid, cid = param.algo_lookup(params)
        algo = self.algos.get(aid) if aid is not None else self.algo_by_client.get(cid)
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
        return wire.algo_canceled(algo)

    def cancel_all_algos(self, params: Mapping[str, str]) -> dict[str, Any]:
        spec = self._spec(params)
        for algo in list(self.algos.values()):
            if algo.symbol == spec.symbol and algo.status == "NEW":
                self._finish_algo(algo, "CANCELED")
        return dict(wire.ALL_DONE)

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
        return wire.algo_reply(a, self.specs[a.symbol])

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
        self.outbox.append(wire.account_event(t, "FUNDING_FEE", self.wallet, fmt_decimal(fee), []))
        return fee

    def check_liquidation(self) -> bool:
        """Close every position at mark when margin balance falls to maintenance margin."""
        if all(p.amt == 0 for p in self.positions.values()):
            return False
        tot = self.totals()
        if tot.margin_balance > tot.mm:
            return False
        now = self.market.now_ms()
        for pos in self.positions.values():
            if pos.amt != 0:
                self._autoclose(pos, now)
        if self.wallet < 0:  # the insurance fund takes the rest
            self.wallet = ZERO
        return True

    def _autoclose(self, pos: Position, now: int) -> Order:
        """Close ``pos`` at mark as the exchange's liquidation engine does: an ``autoclose-``
        order, a ``CALCULATED`` fill at the liquidation fee, the closePosition algos expired."""
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
        return order

    # ==== behind the client's back (the control endpoint) ======================================

    def liquidate(self, symbol: str) -> dict[str, Any]:
        """Liquidate one position now, whatever its margin: the order as ``GET /fapi/v1/order``
        shows it. ValueError when there is no such position."""
        pos = self.positions.get(symbol)
        if pos is None:
            raise ValueError(f"unknown symbol {symbol!r}")
        if pos.amt == 0:
            raise ValueError(f"no {symbol} position to liquidate")
        order = self._autoclose(pos, self.market.now_ms())
        if self.wallet < 0:
            self.wallet = ZERO
        return self.order_reply(order, result=True, query=True)

    def open_orphan(
        self, symbol: str, side: str, qty: Decimal, client_id: str | None
    ) -> dict[str, Any]:
        """A market fill placed as if by another client (the web UI, a second bot): the
        order and its events are the same as through the API. ValueError on bad input."""
        spec = self.specs.get(symbol)
        if spec is None:
            raise ValueError(f"unknown symbol {symbol!r}")
        if side not in ("BUY", "SELL"):
            raise ValueError(f"side must be BUY or SELL, got {side!r}")
        if qty <= 0:
            raise ValueError(f"quantity must be positive, got {qty}")
        units = qty.scaleb(spec.qty_precision)
        if units != units.to_integral_value() or int(units) % spec.step:
            raise ValueError(f"quantity {qty} is not a multiple of {symbol}'s step size")
        cid = client_id or f"web_{self._next_order}"
        if (symbol, cid) in self.order_by_client:
            raise ValueError(f"client order id {cid!r} already used")
        try:
            plan = self._plan(spec, side, qty, reduce_only=False)
        except SimApiError as err:
            raise ValueError(f"the exchange would refuse it: {err.code} {err.msg}") from None
        order = self._execute(plan, cid, False, orig_type="MARKET")
        return self.order_reply(order, result=True, query=True)

    # ==== settings endpoints ===================================================================

    def set_leverage(self, params: Mapping[str, str]) -> dict[str, Any]:
        spec = self._spec(params)
        lev = param.leverage(params)
        self.positions[spec.symbol].leverage = lev
        return wire.leverage_reply(lev, spec.symbol)

    def get_dual(self, params: Mapping[str, str]) -> dict[str, Any]:
        return {"dualSidePosition": self.dual_side}

    def get_multi_assets(self, params: Mapping[str, str]) -> dict[str, Any]:
        return {"multiAssetsMargin": self.multi_assets}

    def set_dual(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Back to one-way mode is allowed when flat; the sim does not trade in hedge mode."""
        value = params.get("dualSidePosition")
        if not value:
            raise mandatory("dualSidePosition")
        if value.lower() not in ("true", "false"):
            raise SimApiError(-1130, "Data sent for parameter 'dualSidePosition' is not valid.")
        wanted = value.lower() == "true"
        if wanted == self.dual_side:
            raise SimApiError(-4059, "No need to change position side.")
        if wanted:
            raise SimApiError(-1000, "The simulated exchange supports one-way position mode only.")
        if any(p.amt != 0 for p in self.positions.values()):
            raise SimApiError(-4068, "Position side cannot be changed if there exists position.")
        self.dual_side = False
        return {"code": 200, "msg": "success"}

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
        return wire.position_row_v3(
            self.marked(pos),
            self.specs[pos.symbol],
            self.break_even(pos),
            self.liquidation_price(pos),
        )

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
            rows.append(wire.position_row_v2(pos, self._position_row_v3(pos)))
        return rows

    def balance(self) -> list[dict[str, Any]]:
        return wire.balance_rows(self.totals(), self.update_time)

    def account(self, version: int = 3) -> dict[str, Any]:
        t = self.totals()
        positions = [
            wire.account_position(self.marked(pos), self.specs[pos.symbol])
            for pos in self.positions.values()
            if not (version == 3 and pos.amt == 0)
        ]
        return wire.account_info(t, self.update_time, positions)

    def user_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        spec = self._spec(params)
        limit = min(param.int_param(params, "limit") or 500, 1000)
        from_id = param.int_param(params, "fromId")
        order_id = param.int_param(params, "orderId")
        start = param.int_param(params, "startTime")
        end = param.int_param(params, "endTime")
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
        return [wire.user_trade(f, spec) for f in rows]

    def income_history(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        symbol = params.get("symbol")
        kind = params.get("incomeType")
        limit = min(param.int_param(params, "limit") or 100, 1000)
        start = param.int_param(params, "startTime")
        end = param.int_param(params, "endTime")
        rows = [
            i
            for i in self.income
            if (not symbol or i.symbol == symbol)
            and (not kind or i.kind == kind)
            and (start is None or i.time >= start)
            and (end is None or i.time <= end)
        ]
        rows = rows[:limit] if start is not None else rows[-limit:]
        return [wire.income_row(i) for i in rows]

    def commission_rate(self, params: Mapping[str, str]) -> dict[str, Any]:
        spec = self._spec(params)
        return wire.commission_rate(spec.symbol, self.maker_fee, self.taker_fee)

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
        self.outbox.append(wire.order_event(o, self.specs[o.symbol], exec_type, status, fill))

    def _emit_account(self, reason: str, symbols: list[str]) -> None:
        now = self.market.now_ms()
        positions = []
        for symbol in symbols:
            pos = self.positions[symbol]
            upnl = self.marked(pos).upnl
            positions.append(
                wire.position_update(pos, self.specs[symbol], self.break_even(pos), upnl)
            )
        self.outbox.append(wire.account_event(now, reason, self.wallet, "0", positions))

    def _emit_algo(self, a: AlgoOrder) -> None:
        self.outbox.append(wire.algo_event(a, self.specs[a.symbol], self.market.now_ms()))


def _triggered(order_type: str, side: str, trigger: Decimal, price: Decimal) -> bool:
    stop = order_type.startswith("STOP")
    if (side == "BUY") == stop:
        return price >= trigger
    return price <= trigger
