"""The reconciliation service: reads the exchange and the records, asks the
``live_reconcile`` core what to do, and does it (or, dry-run, only says it).

Runs once at start-up and then every ``interval_s``. Every decision carried out is a
``live_events`` row (``who`` = ``reconciler``) and a ``live.reconcile.*`` log line; an
exchange or database outage during a round is reported and the round made again later
(``run``), never fatal. An order placed here whose outcome is unknown is recorded
UNKNOWN: the next round sees the stop on the exchange if it was placed, and otherwise
places one under a new id, so protection is never doubled.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol

import msgspec

from arbengine.domain.errors import RetryableError
from arbengine.domain.live_rows import (
    NOT_FOUND,
    UNKNOWN,
    EventLevel,
    Fill,
    LiveEventRow,
    LiveOrderRow,
    LiveTradeRow,
    TradeClose,
)
from arbengine.exchange.exchange_errors import ExchangeError, FatalExchangeError
from arbengine.exchange.replies import (
    AlgoCancelReply,
    AlgoOrderReply,
    ExchangeInfo,
    OrderReply,
    PositionRisk,
    UserTrade,
)
from arbengine.exchange.rest import BinanceRest
from arbengine.logs import get_logger
from arbengine.runtime.backoff import EXCHANGE_REST_RETRY, RetryPolicy, Stopped
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.runtime.stopping import unless_stopped
from arbengine.trading.live_executor import ALGO_PATH, ORDER_PATH, funding_between
from arbengine.trading.live_plan import AlgoOrder, OrderRequest
from arbengine.trading.live_reconcile import (
    AlertOrphan,
    CancelLeftover,
    CloseWithFills,
    Decision,
    ExchangeOrder,
    ExchangePosition,
    ExchangeView,
    FlattenOrphan,
    MarkOrderGone,
    OpenPending,
    OrphanPolicy,
    ProtectOrphan,
    RecordsView,
    RestoreStop,
    SettlePending,
    decision_detail,
    reconcile,
)
from arbengine.trading.live_rules import SymbolRules, symbol_rules, to_decimal
from arbengine.trading.live_wire import ORDER_DOES_NOT_EXIST, order_row


class ReconcilerRecordsPort(Protocol):
    """What reconciliation reads and writes (``store.live_records.LiveRecords``)."""

    async def open_trades(self) -> list[LiveTradeRow]: ...
    async def orders_of_trade(self, trade_id: int) -> list[LiveOrderRow]: ...
    async def open_orders(self, symbol: str | None = None) -> list[LiveOrderRow]: ...
    async def upsert_order(self, order: LiveOrderRow, note: str | None = None) -> LiveOrderRow: ...
    async def upsert_trade(self, trade: LiveTradeRow) -> int: ...
    async def close_trade(self, trade_id: int, close: TradeClose) -> bool: ...
    async def append_event(self, event: LiveEventRow) -> None: ...


@dataclass(frozen=True, slots=True)
class ReconcileSettings:
    orphan_policy: OrphanPolicy
    risk_per_trade_usd: Decimal
    interval_s: float = 30.0


class LiveReconciler:
    def __init__(
        self,
        rest: BinanceRest,
        records: ReconcilerRecordsPort,
        settings: ReconcileSettings,
        *,
        driven: Callable[[], Collection[int]] = tuple,
        clock: Clock | None = None,
        retry: RetryPolicy = EXCHANGE_REST_RETRY,
        who: str = "reconciler",
    ) -> None:
        self._rest = rest
        self._records = records
        self.settings = settings
        self._driven = driven
        self._clock = clock or SystemClock()
        self._retry = retry
        self._who = who
        self._rules: dict[str, SymbolRules] = {}
        self._log = get_logger("live")

    async def run(self, stop: asyncio.Event) -> None:
        """A round now, then every ``interval_s`` until ``stop``; a failed round is
        reported (``live.reconcile.failed``) and made again after a backoff."""
        attempt = 0
        while not stop.is_set():
            try:
                await self.reconcile_once(stop=stop)
                attempt = 0
                delay = self.settings.interval_s
            except RetryableError as exc:
                attempt += 1
                delay = self._retry.delay(attempt)
                self._log.warning(
                    "live.reconcile.failed", error=str(exc), retry_in_s=round(delay, 2)
                )
            await self._clock.sleep(delay, stop)

    async def reconcile_once(
        self, *, dry_run: bool = False, stop: asyncio.Event | None = None
    ) -> list[Decision]:
        """One round: the decisions, carried out unless ``dry_run``. Reading sends no
        order, so a ``stop`` set while it waits (for the next minute's request weight, an
        exchange slow to answer) ends the round at once with nothing done; carrying the
        decisions out is never cut short (an order placed is recorded)."""
        try:
            decisions, records = await unless_stopped(self._decide(), stop, "reconciliation")
        except Stopped:
            self._log.info("live.reconcile.stopped_reading")
            return []
        if dry_run:
            return decisions
        trades = {t.id: t for t in records.trades}
        orders = {o.client_order_id: o for o in records.orders}
        for decision in decisions:
            await self._act(decision, trades, orders)
        return decisions

    async def _decide(self) -> tuple[list[Decision], RecordsView]:
        exchange = await self.exchange_view()
        records = await self.records_view()
        await self._load_rules({p.symbol for p in exchange.positions if p.amount != 0})
        decisions = reconcile(
            exchange,
            records,
            orphan_policy=self.settings.orphan_policy,
            risk_per_trade_usd=self.settings.risk_per_trade_usd,
            rules=self._rules,
            now_ms=self._rest.server_time_ms(),
            driven=self._driven(),
        )
        return decisions, records

    # -- reading --------------------------------------------------------------------------

    async def exchange_view(self) -> ExchangeView:
        risks = await self._rest.get(
            "/fapi/v3/positionRisk", reply=list[PositionRisk], weight=5, signed=True
        )
        plain = await self._rest.get(
            "/fapi/v1/openOrders", reply=list[OrderReply], weight=40, signed=True
        )
        algos = await self._rest.get(
            "/fapi/v1/openAlgoOrders", reply=list[AlgoOrderReply], weight=40, signed=True
        )
        amounts: dict[str, ExchangePosition] = {}
        for r in risks:
            seen = amounts.get(r.symbol)
            amount = r.positionAmt + (seen.amount if seen else 0)
            amounts[r.symbol] = ExchangePosition(
                r.symbol, amount, r.entryPrice, to_decimal(r.markPrice)
            )
        orders = [
            ExchangeOrder(o.clientOrderId, o.symbol, o.side, o.type, o.closePosition,
                          o.reduceOnly, algo=False)
            for o in plain
        ] + [
            ExchangeOrder(a.clientAlgoId, a.symbol, a.side, a.orderType, a.closePosition,
                          a.reduceOnly, algo=True)
            for a in algos
        ]  # fmt: skip
        return ExchangeView(tuple(amounts.values()), tuple(orders))

    async def records_view(self) -> RecordsView:
        trades = await self._records.open_trades()
        orders: dict[str, LiveOrderRow] = {}
        for trade in trades:
            if trade.id is not None:
                for o in await self._records.orders_of_trade(trade.id):
                    orders[o.client_order_id] = o
        for o in await self._records.open_orders():
            orders.setdefault(o.client_order_id, o)
        return RecordsView(tuple(trades), tuple(orders.values()))

    async def _load_rules(self, symbols: set[str]) -> None:
        missing = symbols - set(self._rules)
        if not missing:
            return
        info = await self._rest.get("/fapi/v1/exchangeInfo", reply=ExchangeInfo, weight=1)
        for listed in info.symbols:
            if listed.symbol in missing:
                self._rules[listed.symbol] = symbol_rules(listed.symbol, listed.filters, [])

    # -- acting ---------------------------------------------------------------------------

    async def _act(
        self,
        decision: Decision,
        trades: dict[int | None, LiveTradeRow],
        orders: dict[str, LiveOrderRow],
    ) -> None:
        detail = decision_detail(decision)
        level: EventLevel = "warning"
        if isinstance(decision, RestoreStop):
            detail |= await self._place(decision.order, decision.trade_id)
            restored = trades[decision.trade_id]
            if restored.status == "pending" and detail.get("outcome") == "placed":
                detail |= await self._open(restored, orders, float(decision.order.trigger_price))
        elif isinstance(decision, OpenPending):
            pending = trades[decision.trade_id]
            placed = (
                o.trigger_price
                for o in orders.values()
                if o.trade_id == pending.id and o.role == "sl" and o.trigger_price
            )  # the stop as the executor placed it, on the tick grid
            detail |= await self._open(pending, orders, next(placed, pending.stop_price))
        elif isinstance(decision, SettlePending):
            detail |= await self._settle(trades[decision.trade_id], orders)
        elif isinstance(decision, ProtectOrphan | FlattenOrphan):
            detail |= await self._place(decision.order, None)
        elif isinstance(decision, AlertOrphan):
            level = "error"
        elif isinstance(decision, CloseWithFills):
            detail |= await self._close(trades[decision.trade_id])
        elif isinstance(decision, CancelLeftover):
            detail |= await self._cancel(orders[decision.client_id])
            level = "info"
        elif isinstance(decision, MarkOrderGone):
            detail |= await self._mark(orders[decision.client_id])
            level = "info"
        if detail.get("outcome") in ("rejected", "unknown", "no_fills"):
            level = "error"
        trade = trades.get(getattr(decision, "trade_id", None))
        await self._event(decision.kind, decision.symbol, detail, level, trade)

    async def _place(self, order: OrderRequest, trade_id: int | None) -> dict[str, object]:
        algo = isinstance(order, AlgoOrder)
        now = self._rest.server_time_ms()
        try:
            if isinstance(order, AlgoOrder):
                reply_a = await self._rest.post(
                    ALGO_PATH, order.params(), reply=AlgoOrderReply, signed=True, weight=0,
                    order_client_id=order.client_algo_id,
                )  # fmt: skip
                status, exchange_id = reply_a.algoStatus, reply_a.algoId
            else:
                reply_o = await self._rest.post(
                    ORDER_PATH, order.params(), reply=OrderReply, signed=True, weight=0,
                    order_client_id=order.client_order_id,
                )  # fmt: skip
                status, exchange_id = reply_o.status, reply_o.orderId
        except FatalExchangeError as exc:
            if exc.code is None:
                raise
            await self._records.upsert_order(
                order_row(order, status="REJECTED", status_time=now, trade_id=trade_id), str(exc)
            )
            return {"outcome": "rejected", "code": exc.code, "error": str(exc)}
        except ExchangeError as exc:
            await self._records.upsert_order(
                order_row(order, status=UNKNOWN, status_time=now, trade_id=trade_id), str(exc)
            )
            return {"outcome": "unknown", "error": str(exc)}
        row = order_row(order, status=status, status_time=now, trade_id=trade_id)
        await self._records.upsert_order(
            msgspec.structs.replace(row, exchange_order_id=exchange_id)
        )
        return {"outcome": "placed", "status": status, "algo": algo}

    async def _entry(
        self, trade: LiveTradeRow, orders: dict[str, LiveOrderRow]
    ) -> tuple[LiveOrderRow | None, OrderReply | None]:
        """A pending trade's entry: our row, and the exchange's answer by its client id
        (None: it has no such order), written to the row when it says more."""
        entry = next(
            (o for o in orders.values() if o.trade_id == trade.id and o.role == "entry"), None
        )
        if entry is None:
            return None, None
        query = {"symbol": trade.symbol, "origClientOrderId": entry.client_order_id}
        try:
            reply = await self._rest.get(ORDER_PATH, query, reply=OrderReply, signed=True)
        except FatalExchangeError as exc:
            if exc.code != ORDER_DOES_NOT_EXIST:
                raise
            if entry.status != NOT_FOUND:
                now = self._rest.server_time_ms()
                gone = msgspec.structs.replace(entry, status=NOT_FOUND, status_time=now)
                await self._records.upsert_order(gone, "reconciliation")
            return entry, None
        if entry.status != reply.status:
            written = msgspec.structs.replace(
                entry,
                status=reply.status,
                status_time=max(reply.updateTime, entry.status_time),
                filled_quantity=reply.executedQty,
                average_price=reply.avgPrice or None,
                exchange_order_id=reply.orderId,
            )
            await self._records.upsert_order(written, "reconciliation")
        return entry, reply

    async def _open(
        self, trade: LiveTradeRow, orders: dict[str, LiveOrderRow], stop_price: float
    ) -> dict[str, object]:
        """A pending trade whose entry filled (its process ended between the fill and
        writing the trade open): written open with its entry as the exchange has it,
        asked by client id, with its fills, and its stop at ``stop_price``."""
        entry, reply = await self._entry(trade, orders)
        opened = await self._opened(trade, entry, reply, stop_price)
        return {"opened": opened is not None}

    async def _opened(
        self,
        trade: LiveTradeRow,
        entry: LiveOrderRow | None,
        reply: OrderReply | None,
        stop_price: float,
    ) -> LiveTradeRow | None:
        if entry is None or reply is None or reply.executedQty <= 0:
            return None
        rows = await self._rest.get(
            "/fapi/v1/userTrades",
            {"symbol": trade.symbol, "orderId": reply.orderId},
            reply=list[UserTrade],
            weight=5,
            signed=True,
        )
        fills = [
            Fill(
                time=r.time,
                price=r.price,
                quantity=r.qty,
                fee=r.commission,
                client_order_id=entry.client_order_id,
                trade_id=r.id,
            )
            for r in rows
        ]
        opened = msgspec.structs.replace(
            trade,
            status="open",
            quantity=reply.executedQty,
            entry_price=reply.avgPrice,
            stop_price=stop_price,
            entry_fills=fills,
            opened_at=min((f.time for f in fills), default=reply.updateTime),
        )
        await self._records.upsert_trade(opened)
        return opened

    async def _settle(
        self, trade: LiveTradeRow, orders: dict[str, LiveOrderRow]
    ) -> dict[str, object]:
        """A pending trade with no position: opened and ended while nobody drove it
        (written open, then closed with the exchange's fills), or never opened."""
        entry, reply = await self._entry(trade, orders)
        opened = await self._opened(trade, entry, reply, trade.stop_price)
        if opened is not None:
            return {"opened": True} | await self._close(opened)
        if reply is not None and reply.status in ("NEW", "PARTIALLY_FILLED"):
            return {"outcome": "entry_open", "entry_status": reply.status}
        status = NOT_FOUND if reply is None else reply.status
        reason = "entry_failed" if status in (NOT_FOUND, "REJECTED") else "entry_expired"
        await self._records.upsert_trade(
            msgspec.structs.replace(trade, status="not_opened", exit_reason=reason)
        )
        return {"outcome": "not_opened", "entry_status": status, "exit_reason": reason}

    async def _cancel(self, order: LiveOrderRow) -> dict[str, object]:
        try:
            await self._rest.delete(
                ALGO_PATH, {"clientAlgoId": order.client_order_id}, reply=AlgoCancelReply,
                signed=True, order_client_id=order.client_order_id,
            )  # fmt: skip
        except FatalExchangeError as exc:
            if exc.code is None:
                raise
            # Over already (-2011): record how it ended.
        except ExchangeError as exc:
            return {"outcome": "unknown", "error": str(exc)}
        return await self._mark(order)

    async def _mark(self, order: LiveOrderRow) -> dict[str, object]:
        """How the order ended, asked by its client id, written as its status."""
        now = self._rest.server_time_ms()
        try:
            if order.kind == "algo":
                reply_a = await self._rest.get(
                    ALGO_PATH, {"clientAlgoId": order.client_order_id},
                    reply=AlgoOrderReply, signed=True,
                )  # fmt: skip
                status, at = reply_a.algoStatus, reply_a.updateTime
            else:
                query = {"symbol": order.symbol, "origClientOrderId": order.client_order_id}
                reply_o = await self._rest.get(ORDER_PATH, query, reply=OrderReply, signed=True)
                status, at = reply_o.status, reply_o.updateTime
        except FatalExchangeError as exc:
            if exc.code != ORDER_DOES_NOT_EXIST:
                raise
            status, at = NOT_FOUND, now
        written = msgspec.structs.replace(order, status=status, status_time=max(at, now))
        await self._records.upsert_order(written, "reconciliation")
        return {"outcome": "marked", "status": status}

    async def _close(self, trade: LiveTradeRow) -> dict[str, object]:
        """Close the trade with the exchange's fills after its entry on the exit side."""
        assert trade.id is not None
        exit_side = "SELL" if trade.direction == 1 else "BUY"
        entry_trade_ids = {f.trade_id for f in trade.entry_fills}
        params: dict[str, str | int] = {"symbol": trade.symbol}
        if trade.opened_at is not None:
            params["startTime"] = trade.opened_at
        rows = await self._rest.get(
            "/fapi/v1/userTrades", params, reply=list[UserTrade], weight=5, signed=True
        )
        by_order = {
            o.exchange_order_id: o.client_order_id
            for o in await self._records.orders_of_trade(trade.id)
            if o.kind == "order" and o.exchange_order_id is not None
        }
        fills = [
            Fill(
                time=r.time,
                price=r.price,
                quantity=r.qty,
                fee=r.commission,
                client_order_id=by_order.get(r.orderId, str(r.orderId)),
                trade_id=r.id,
                reason="exchange",
            )
            for r in rows
            if r.side == exit_side and r.id not in entry_trade_ids
        ]
        if not fills:
            return {"outcome": "no_fills"}
        entry = trade.entry_price or 0.0
        closed_at = max(f.time for f in fills)
        gross = sum(trade.direction * (f.price - entry) * f.quantity for f in fills)
        fees = sum(f.fee for f in trade.entry_fills) + sum(f.fee for f in fills)
        funding = trade.funding
        if trade.opened_at is not None:
            funding = await funding_between(self._rest, trade.symbol, trade.opened_at, closed_at)
        net = gross - fees + funding
        risk = trade.r_distance * trade.quantity
        closed = await self._records.close_trade(
            trade.id,
            TradeClose(
                closed_at=closed_at,
                exit_reason="exchange",
                exit_fills=fills,
                fees=fees,
                funding=funding,
                realised_r=net / risk if risk > 0 else 0.0,
                realised_usd=net,
            ),
        )
        return {"outcome": "closed" if closed else "closed_already", "fills": len(fills)}

    async def _event(
        self,
        kind: str,
        symbol: str,
        detail: dict[str, object],
        level: EventLevel,
        trade: LiveTradeRow | None,
    ) -> None:
        strategy = None if trade is None else trade.strategy
        getattr(self._log, level)(f"live.{kind}", symbol=symbol, strategy=strategy, **detail)
        await self._records.append_event(
            LiveEventRow(
                at=datetime.now(UTC),
                level=level,
                kind=kind,
                symbol=symbol,
                strategy=strategy,
                detail=detail,
                who=self._who,
            )
        )
