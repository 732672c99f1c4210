"""The live executor: signals of the allowed strategies become positions protected on the
exchange, each driven by its ``LiveTrade`` machine.

A thin service. The rules (what to send next, when an unknown outcome may be retried,
when a trade is over) are the machine's: this module sizes a signal (``size_entry``,
with the symbol's rules from exchangeInfo and ``/fapi/v1/leverageBracket`` and the
available margin from ``/fapi/v3/balance``), performs the machine's actions one at a
time with the signed REST client, and feeds back what the exchange answered as events.
It never sends an order the machine did not ask for, so a retry can never open a second
position: every placement carries the machine's client id, and a placement whose
outcome is unknown is followed by a query by that id, never by a blind resend.

Every order and its status changes are written to ``live_orders`` (PENDING before it is
sent, UNKNOWN, NOT_FOUND or REJECTED of ours, else the exchange's status), every action
and answer to ``live_events``, the trade to ``live_trades``. A database outage is waited
out (capped, jittered) at the write that met it: the exchange's answer is never dropped.

Until the user data stream feeds it, the service learns about fills, triggers and the
position by polling (``poll_once``, every ``poll_interval_s``); the stream will call
``on_exchange_event`` with the same events (``live_wire`` translates both).

``clock`` is the market's time (the exchange's: the time exit is due when the exchange's
clock passes the plan's ``time_exit_at``, as the paper's is at the tape's first trade at
or after it); its ``sleep`` paces the polls and the backoffs.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Protocol, TypeVar

from arbengine.domain.control_rows import FlattenReason
from arbengine.domain.engine_rows import ExitRule
from arbengine.domain.errors import RetryableError
from arbengine.domain.events import Signal
from arbengine.domain.live_rows import (
    NOT_FOUND,
    PENDING,
    UNKNOWN,
    EventLevel,
    Fill,
    LiveEventRow,
    LiveOrderRow,
    LiveTradeRow,
    TradeClose,
)
from arbengine.exchange.exchange_errors import (
    ExchangeError,
    FatalExchangeError,
    OrderOutcomeUnknown,
    TimestampOutsideWindow,
)
from arbengine.exchange.replies import (
    AccountBalance,
    AlgoCancelReply,
    AlgoOrderReply,
    ExchangeInfo,
    IncomeRow,
    OrderReply,
    PositionRisk,
    SymbolLeverageBrackets,
    UserTrade,
)
from arbengine.exchange.rest import BinanceRest
from arbengine.logs import get_logger
from arbengine.runtime.backoff import (
    DATABASE_RETRY,
    EXCHANGE_REST_RETRY,
    ORDER_RESEND_RETRY,
    RetryPolicy,
)
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.trading.live_plan import AlgoOrder, OrderRequest, trade_key
from arbengine.trading.live_replace import StopReplaceTimer
from arbengine.trading.live_resume import NotResumable, rebuild, unfinished
from arbengine.trading.live_rules import SymbolRules, symbol_rules, to_decimal
from arbengine.trading.live_sizing import Skipped, resized, size_entry
from arbengine.trading.live_trade import (
    Cancel,
    Ended,
    FlattenRequested,
    HoldExpired,
    LiveTrade,
    NotFound,
    OutcomeUnknown,
    Place,
    PositionChanged,
    Query,
    Rejected,
    TradeAction,
    TradeEvent,
    TradeState,
)
from arbengine.trading.live_wire import (
    ORDER_DOES_NOT_EXIST,
    OrderReport,
    algo_events,
    order_events,
    order_row,
    request_client_id,
    trade_result,
    trade_row,
)

ORDER_PATH = "/fapi/v1/order"
ALGO_PATH = "/fapi/v1/algoOrder"
MARGIN_ASSET = "USDT"
FREE_SENDS = 2
"""Sends of one placement or cancel made at once; later ones wait (``_pace``)."""
T = TypeVar("T")


class LiveRecordsPort(Protocol):
    """What the executor writes (``store.live_records.LiveRecords``, bound by app.py)."""

    async def upsert_order(self, order: LiveOrderRow, note: str | None = None) -> LiveOrderRow: ...
    async def upsert_trade(self, trade: LiveTradeRow) -> int: ...
    async def close_trade(self, trade_id: int, close: TradeClose) -> bool: ...
    async def append_event(self, event: LiveEventRow) -> None: ...
    async def trade_for_signal(
        self, strategy: str, symbol: str, signal_tick: int
    ) -> LiveTradeRow | None: ...
    async def open_trades(self) -> list[LiveTradeRow]: ...
    async def orders_of_trade(self, trade_id: int) -> list[LiveOrderRow]: ...


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    """The live part of the configuration the executor acts on (``[live]``, overridden by
    the admin's latest ``live_config``; replaced while running, read at each signal)."""

    strategies: frozenset[str]
    risk_per_trade_usd: Decimal
    max_positions: int
    leverage: int
    poll_interval_s: float = 1.0
    max_entry_attempts: int = 3
    paused: bool = False
    """No new entries (each skipped signal says so); open trades are still driven."""


@dataclass(slots=True)
class _Running:
    """A trade the executor is driving."""

    trade: LiveTrade
    trade_id: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    opened_at: int | None = None
    protected_reported: bool = False
    sends: dict[tuple[str, str], int] = field(default_factory=dict)
    """(place | cancel, client id) → how many times it was sent."""
    attention_reported: bool = False
    order_ids: dict[str, int] = field(default_factory=dict)
    """Client id → the exchange's id of the order that executed it (an algo order's:
    the order it placed), to find its fills."""
    entry_fills: list[Fill] = field(default_factory=list)
    status_times: dict[str, int] = field(default_factory=dict)
    """Client id → the time of the last status written for it."""
    breakeven: StopReplaceTimer = field(default_factory=StopReplaceTimer)
    resumed: bool = False
    """Rebuilt from an earlier process's records: what it left under way is settled
    after the first poll (``live_resume.unfinished``)."""


class LiveExecutor:
    def __init__(
        self,
        rest: BinanceRest,
        records: LiveRecordsPort,
        settings: ExecutorSettings,
        exit_rules: Mapping[str, ExitRule],
        *,
        clock: Clock | None = None,
        rest_retry: RetryPolicy = EXCHANGE_REST_RETRY,
        resend_retry: RetryPolicy = ORDER_RESEND_RETRY,
        db_retry: RetryPolicy = DATABASE_RETRY,
        who: str = "executor",
    ) -> None:
        self._rest = rest
        self._records = records
        self.settings = settings
        self._exit_rules = dict(exit_rules)
        self._clock = clock or SystemClock()
        self._rest_retry = rest_retry
        self._resend_retry = resend_retry
        self._db_retry = db_retry
        self._who = who
        self._rules: dict[str, SymbolRules] = {}
        self._running: dict[int, _Running] = {}
        self._by_client_id: dict[str, int] = {}
        self._signal_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._log = get_logger("live")

    # -- what the executor knows ----------------------------------------------------------

    @property
    def open_trades(self) -> list[LiveTrade]:
        return [r.trade for r in self._running.values()]

    @property
    def trade_ids(self) -> frozenset[int]:
        """The trades it is driving now: reconciliation leaves them to it."""
        return frozenset(self._running)

    def set_exit_rules(self, exit_rules: Mapping[str, ExitRule]) -> None:
        """The strategies' exit rules after a reload: for trades opened from now on."""
        self._exit_rules = dict(exit_rules)

    def trade(self, trade_id: int) -> LiveTrade | None:
        running = self._running.get(trade_id)
        return None if running is None else running.trade

    async def load_rules(self, symbols: Iterable[str]) -> None:
        """The symbols' filters (exchangeInfo) and leverage brackets, read again."""
        wanted = set(symbols)
        info = await self._rest.get("/fapi/v1/exchangeInfo", reply=ExchangeInfo, weight=1)
        brackets = await self._rest.get(
            "/fapi/v1/leverageBracket", reply=list[SymbolLeverageBrackets], weight=1, signed=True
        )
        by_symbol = {b.symbol: b.brackets for b in brackets}
        for listed in info.symbols:
            if listed.symbol in wanted:
                self._rules[listed.symbol] = symbol_rules(
                    listed.symbol, listed.filters, by_symbol.get(listed.symbol, [])
                )

    async def available_margin(self) -> Decimal:
        rows = await self._rest.get(
            "/fapi/v3/balance", reply=list[AccountBalance], weight=5, signed=True
        )
        return sum(
            (to_decimal(r.availableBalance) for r in rows if r.asset == MARGIN_ASSET),
            Decimal(0),
        )

    # -- a restart --------------------------------------------------------------------------

    async def resume(self) -> list[int]:
        """Drive again the pending and open trades an earlier process left (a deploy, a
        crash): each is rebuilt from its records by replaying its machine
        (``live_resume``); the next poll asks the exchange about its orders and position
        and it carries on from there. One that cannot be rebuilt stays the
        reconciliation's, with an error event saying why. The ids of those resumed."""
        resumed: list[int] = []
        for row in await self._write(self._records.open_trades):
            assert row.id is not None
            if row.id in self._running:
                continue
            running = await self._rebuild(row)
            if running is None:
                continue
            self._running[row.id] = running
            for cid in running.trade.orders:
                self._by_client_id[cid] = row.id
            trade = running.trade
            await self._event(
                "trade.resumed",
                trade.signal,
                {
                    "trade_id": row.id,
                    "state": trade.state.value,
                    "orders": {cid: o.status for cid, o in trade.orders.items()},
                },
            )
            resumed.append(row.id)
        return resumed

    async def _rebuild(self, row: LiveTradeRow) -> _Running | None:
        assert row.id is not None
        signal, rule = row.signal, self._exit_rules.get(row.strategy)
        reason: str | None = None
        if signal is None:
            reason = "the trade's signal was not recorded"
        elif rule is None:
            reason = f"strategy {row.strategy} is not loaded: its exit rule is unknown"
        else:
            if row.symbol not in self._rules:
                await self.load_rules([row.symbol])
            if row.symbol not in self._rules:
                reason = f"symbol {row.symbol} is not listed"
        if reason is not None or signal is None or rule is None:
            await self._not_resumed(row, reason or "")
            return None
        orders = await self._write(lambda: self._records.orders_of_trade(row.id or 0))
        entry = next((o for o in orders if o.role == "entry"), None)
        qty = to_decimal(entry.quantity if entry and entry.quantity else row.quantity)
        unrounded = next(
            (to_decimal(d.paper) for d in row.plan_differences if d.what == "quantity" and d.paper),
            None,
        )
        sized = resized(
            signal,
            rule,
            qty=qty,
            unrounded_qty=unrounded,
            risk_usd=self.settings.risk_per_trade_usd,
            leverage=self.settings.leverage,
        )
        trade = rebuild(
            signal,
            rule,
            self._rules[row.symbol],
            sized,
            orders,
            max_entry_attempts=self.settings.max_entry_attempts,
        )
        if isinstance(trade, NotResumable):
            await self._not_resumed(row, trade.reason)
            return None
        return _Running(
            trade,
            row.id,
            opened_at=row.opened_at,
            protected_reported=trade.is_protected,
            order_ids={
                o.client_order_id: o.exchange_order_id
                for o in orders
                if o.kind == "order" and o.exchange_order_id is not None
            },
            entry_fills=list(row.entry_fills),
            status_times={o.client_order_id: o.status_time for o in orders},
            resumed=True,
        )

    async def _not_resumed(self, row: LiveTradeRow, reason: str) -> None:
        detail: dict[str, object] = {"trade_id": row.id, "reason": reason}
        self._log.error(
            "live.trade.not_resumed", symbol=row.symbol, strategy=row.strategy, **detail
        )
        await self._write(
            lambda: self._records.append_event(
                LiveEventRow(
                    at=datetime.now(UTC),
                    level="error",
                    kind="trade.not_resumed",
                    symbol=row.symbol,
                    strategy=row.strategy,
                    detail=detail,
                    who=self._who,
                )
            )
        )

    # -- signals --------------------------------------------------------------------------

    async def on_signal(self, signal: Signal) -> int | None:
        """Trade ``signal`` if its strategy is allowed live and it can be sized; the
        trade's id, or None (the reason is a ``live_events`` row)."""
        if signal.strategy not in self.settings.strategies:
            return None
        if self.settings.paused:
            await self._event("signal.skipped", signal, {"reason": "paused"}, "warning")
            return None
        async with self._signal_lock:
            running = await self._open_trade(signal)
        if running is None:
            return None
        async with running.lock:
            await self._drive(running, running.trade.start())
        return running.trade_id

    async def _open_trade(self, signal: Signal) -> _Running | None:
        key = trade_key(signal)
        if any(trade_key(r.trade.signal) == key for r in self._running.values()):
            return None
        existing = await self._write(
            lambda: self._records.trade_for_signal(signal.strategy, signal.symbol, signal.tick_ms)
        )
        if existing is not None:
            await self._event("signal.already_traded", signal, {"trade_id": existing.id})
            return None
        rule = self._exit_rules.get(signal.strategy)
        if rule is None:
            await self._event("signal.skipped", signal, {"reason": "no exit rule"}, "error")
            return None
        # Trades open in the records that no one drives here: left by an earlier process
        # and not resumed (``resume``), in reconciliation's hands.
        left = [
            t for t in await self._write(self._records.open_trades) if t.id not in self._running
        ]
        open_symbols = {r.trade.signal.symbol for r in self._running.values()}
        if signal.symbol in open_symbols | {t.symbol for t in left}:
            # One-way mode nets every trade on a symbol into one position: a second trade
            # would share the first one's closePosition stop and its "position gone".
            await self._event(
                "signal.skipped", signal, {"reason": "symbol_has_open_trade"}, "warning"
            )
            return None
        if len(self._running) + len(left) >= self.settings.max_positions:
            await self._event(
                "signal.skipped",
                signal,
                {"reason": "max_positions", "limit": self.settings.max_positions},
                "warning",
            )
            return None
        if signal.symbol not in self._rules:
            await self.load_rules([signal.symbol])
        rules = self._rules.get(signal.symbol)
        if rules is None:
            await self._event("signal.skipped", signal, {"reason": "symbol not listed"}, "error")
            return None
        sized = size_entry(
            signal,
            rule,
            rules,
            risk_usd=self.settings.risk_per_trade_usd,
            leverage=self.settings.leverage,
            available_margin=await self.available_margin(),
        )
        if isinstance(sized, Skipped):
            await self._event(
                "signal.skipped",
                signal,
                {
                    "reason": sized.reason,
                    "value": str(sized.value),
                    "limit": str(sized.limit),
                    "message": sized.message,
                },
                "warning",
            )
            return None
        trade = LiveTrade(
            signal, rule, rules, sized, max_entry_attempts=self.settings.max_entry_attempts
        )
        trade_id = await self._write(lambda: self._records.upsert_trade(trade_row(trade)))
        running = _Running(trade, trade_id)
        self._running[trade_id] = running
        await self._event(
            "trade.created",
            signal,
            {"trade_id": trade_id, "quantity": str(sized.qty), "entry_id": trade.entry_id},
        )
        return running

    # -- what the exchange says -----------------------------------------------------------

    async def on_exchange_event(
        self, event: TradeEvent, symbol: str | None = None, *, reported_at: int | None = None
    ) -> None:
        """Feed one report of the exchange to the trade it concerns: by client id, or for a
        position change (with its ``symbol``) to every trade open on that symbol. A
        position report made (``reported_at``, exchange ms) before a trade was opened is
        not about that trade: a flat position from before its entry is not its end."""
        client_id = getattr(event, "client_id", None)
        if isinstance(client_id, str):
            trade_id = self._by_client_id.get(client_id)
            targets = [self._running[trade_id]] if trade_id in self._running else []
        else:
            targets = [
                r
                for r in self._running.values()
                if symbol is None or r.trade.signal.symbol == symbol
            ]
        for running in targets:
            async with running.lock:
                if not self._driving(running):
                    continue
                if reported_at is not None and (
                    running.opened_at is None or reported_at <= running.opened_at
                ):
                    continue
                await self._feed(running, [event])

    async def on_order_report(self, report: OrderReport, *, algo: bool) -> None:
        """The user stream's report of one of our orders: stored as a query's answer is,
        then fed. A report no newer than the status written is fed only (the machine
        ignores what it has heard; the row keeps the newer status)."""
        trade_id = self._by_client_id.get(report.client_id)
        running = self._running.get(trade_id) if trade_id is not None else None
        if running is None:
            return
        async with running.lock:
            order = running.trade.orders.get(report.client_id)
            if order is None or not self._driving(running):
                return
            if not algo and report.exchange_id is not None:
                running.order_ids.setdefault(report.client_id, report.exchange_id)
            if report.time_ms > running.status_times.get(report.client_id, 0):
                await self._store(running, order.request, report.status, report=report)
            await self._feed(running, algo_events(report) if algo else order_events(report))

    async def flatten(self, trade_id: int, reason: FlattenReason = "flatten") -> None:
        """Close the trade at market under its lock (``reason``: its exit reason). A trade
        already closing sends nothing more, so two flattens never close a position twice."""
        running = self._running.get(trade_id)
        if running is not None:
            async with running.lock:
                if self._driving(running):
                    await self._feed(running, [FlattenRequested(reason)])

    async def poll_once(self) -> None:
        """Ask the exchange about every open order of every running trade, the time exit,
        and whether the position is still there (until the user stream tells us)."""
        for running in list(self._running.values()):
            async with running.lock:
                if self._driving(running):
                    await self._poll_trade(running)

    def _driving(self, running: _Running) -> bool:
        """Whether ``running`` is still driven: a caller that waited for its lock may find
        it closed and let go meanwhile (its close is written once)."""
        return self._running.get(running.trade_id) is running

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Poll until ``stop``; an exchange or database outage is reported and waited out."""
        stop = stop or self._stop
        attempt = 0
        while not stop.is_set():
            try:
                await self.poll_once()
                attempt = 0
                delay = self.settings.poll_interval_s
            except RetryableError as exc:
                attempt += 1
                delay = self._rest_retry.delay(attempt)
                self._log.warning("live.poll_failed", error=str(exc), retry_in_s=round(delay, 2))
            await self._clock.sleep(delay, stop)

    async def _poll_trade(self, running: _Running) -> None:
        trade = running.trade
        plan = trade.plan
        # The position is read before the orders are asked for: a stop or take-profit that
        # made it zero has then said so (FINISHED, with its fill) by the time it is fed.
        amount: Decimal | None = None
        if trade.plan is not None and trade.state != TradeState.CLOSED:
            rows = await self._rest.get(
                "/fapi/v3/positionRisk",
                {"symbol": trade.signal.symbol},
                reply=list[PositionRisk],
                weight=5,
                signed=True,
            )
            amount = sum((r.positionAmt for r in rows), Decimal(0))
        exit_at = None if plan is None else plan.time_exit_at
        if exit_at is not None and self._clock.time_ms() >= exit_at:
            await self._feed(running, [HoldExpired()])
        for order in list(trade.orders.values()):
            if order.status not in ("open", "triggered"):
                continue
            events = [
                e for e in await self._ask(running, order.request) if not isinstance(e, NotFound)
            ]
            if events:
                await self._feed(running, events)
        if amount == 0 and trade.state != TradeState.CLOSED:
            await self._feed(running, [PositionChanged(amount, settled=True)])
        if running.resumed and self._driving(running):
            # After the position and the open orders: a stop replaced while the position
            # was already gone is then asked about and let go, not placed.
            running.resumed = False
            await self._drive(running, unfinished(trade))

    # -- driving the machine --------------------------------------------------------------

    async def _feed(self, running: _Running, events: Sequence[TradeEvent]) -> None:
        running.breakeven.heard(running.trade, events, time.perf_counter())
        actions: list[TradeAction] = []
        for event in events:
            actions += running.trade.on(event)
        await self._drive(running, actions)

    async def _drive(self, running: _Running, actions: Iterable[TradeAction]) -> None:
        """Carry out the machine's actions one at a time, feeding each answer back."""
        queue = deque(actions)
        while queue:
            action = queue.popleft()
            running.breakeven.starting(running.trade, action, time.perf_counter())
            events = await self._perform(running, action)
            running.breakeven.heard(running.trade, events, time.perf_counter())
            for event in events:
                queue.extend(running.trade.on(event))
        moved = running.breakeven.finished()
        if moved is not None:
            await self._event(
                "trade.breakeven_moved",
                running.trade.signal,
                {"trade_id": running.trade_id, **moved.detail()},
            )
        await self._sync_trade(running)

    async def _perform(self, running: _Running, action: TradeAction) -> list[TradeEvent]:
        trade = running.trade
        if isinstance(action, Place | Cancel):
            await self._pace(running, action)
        if isinstance(action, Place):
            return await self._place(running, action.order)
        if isinstance(action, Query):
            order = trade.orders[action.client_id].request
            events = await self._ask(running, order)
            return [
                NotFound(e.client_id, action.query) if isinstance(e, NotFound) else e
                for e in events
            ]
        return await self._cancel(running, trade.orders[action.client_id].request)

    async def _pace(self, running: _Running, action: Place | Cancel) -> None:
        """Wait (capped, jittered) before sending a placement or a cancel the third time
        and after: the exchange keeps losing them (5xx, cut connections) and the machine
        keeps asking, so it must not hammer it. An entry is sent three times at most."""
        cid = request_client_id(action.order) if isinstance(action, Place) else action.client_id
        key = ("place" if isinstance(action, Place) else "cancel", cid)
        sends = running.sends[key] = running.sends.get(key, 0) + 1
        if sends <= FREE_SENDS or running.trade.orders[cid].role == "entry":
            return
        delay = self._resend_retry.delay(sends - FREE_SENDS)
        await self._order_event(
            running, "order.send_delayed", cid, {"send": sends, "delay_s": round(delay, 2)},
            "warning",
        )  # fmt: skip
        await self._clock.sleep(delay, self._stop)

    async def _place(self, running: _Running, order: OrderRequest) -> list[TradeEvent]:
        cid = request_client_id(order)
        self._by_client_id[cid] = running.trade_id
        await self._store(running, order, PENDING)
        algo = isinstance(order, AlgoOrder)
        for attempt in (1, 2):
            try:
                if algo:
                    reply_a = await self._rest.post(
                        ALGO_PATH, order.params(), reply=AlgoOrderReply, signed=True,
                        weight=0, order_client_id=cid,
                    )  # fmt: skip
                    report = _algo_report(reply_a)
                    events = algo_events(report)
                else:
                    reply_o = await self._rest.post(
                        ORDER_PATH, order.params(), reply=OrderReply, signed=True,
                        weight=0, order_client_id=cid,
                    )  # fmt: skip
                    report = _order_report(reply_o)
                    events = order_events(report)
                    running.order_ids[cid] = reply_o.orderId
            except TimestampOutsideWindow as exc:
                # -1021: refused before it was placed; our clock drifted. Resync, once.
                await self._order_event(running, "order.clock_resync", cid, {"error": str(exc)})
                if attempt == 1:
                    await self._rest.sync_time()
                    continue
                await self._store(running, order, "REJECTED", note=str(exc))
                return [Rejected(cid, -1021, str(exc))]
            except FatalExchangeError as exc:
                if exc.code is None:
                    return await self._unknown(running, order, exc)
                await self._store(running, order, "REJECTED", note=str(exc))
                await self._order_event(
                    running, "order.rejected", cid, {"code": exc.code, "error": str(exc)}, "warning"
                )
                return [Rejected(cid, exc.code, str(exc))]
            except ExchangeError as exc:  # OrderOutcomeUnknown, and anything retryable
                return await self._unknown(running, order, exc)
            await self._store(running, order, report.status, report=report)
            await self._order_event(running, "order.placed", cid, {"status": report.status})
            return events
        raise AssertionError("unreachable")

    async def _unknown(
        self, running: _Running, order: OrderRequest, exc: ExchangeError
    ) -> list[TradeEvent]:
        cid = request_client_id(order)
        await self._store(running, order, UNKNOWN, note=str(exc))
        await self._order_event(
            running, "order.outcome_unknown", cid, {"error": str(exc)}, "warning"
        )
        return [OutcomeUnknown(cid)]

    async def _ask(self, running: _Running, order: OrderRequest) -> list[TradeEvent]:
        """The order's state by client id, asked until the exchange answers; ``NotFound``
        (query 0: the caller sets the query's number) when it has no such order."""
        cid = request_client_id(order)
        attempt = 0
        while True:
            try:
                if isinstance(order, AlgoOrder):
                    reply_a = await self._rest.get(
                        ALGO_PATH, {"clientAlgoId": cid}, reply=AlgoOrderReply, signed=True
                    )
                    report = _algo_report(reply_a)
                    if reply_a.algoStatus == "FINISHED" and reply_a.actualOrderId:
                        report = await self._algo_execution(reply_a, report)
                        running.order_ids[cid] = int(reply_a.actualOrderId)
                    events = algo_events(report)
                else:
                    reply_o = await self._rest.get(
                        ORDER_PATH,
                        {"symbol": order.symbol, "origClientOrderId": cid},
                        reply=OrderReply,
                        signed=True,
                    )
                    report = _order_report(reply_o)
                    events = order_events(report)
                    running.order_ids[cid] = reply_o.orderId
                break
            except FatalExchangeError as exc:
                if exc.code != ORDER_DOES_NOT_EXIST:
                    raise
                await self._store(running, order, NOT_FOUND, note=str(exc))
                await self._order_event(running, "order.not_found", cid, {})
                return [NotFound(cid, 0)]
            except (ExchangeError, RetryableError) as exc:
                if isinstance(exc, TimestampOutsideWindow):
                    await self._rest.sync_time()
                attempt += 1
                delay = self._rest_retry.delay(attempt)
                self._log.warning(
                    "live.query_failed", client_id=cid, error=str(exc), retry_in_s=round(delay, 2)
                )
                if not await self._clock.sleep(delay, self._stop):
                    raise
        await self._store(running, order, report.status, report=report)
        return events

    async def _algo_execution(self, reply: AlgoOrderReply, report: OrderReport) -> OrderReport:
        """A FINISHED algo order's execution: that of the order it placed."""
        placed = await self._rest.get(
            ORDER_PATH,
            {"symbol": reply.symbol, "orderId": reply.actualOrderId},
            reply=OrderReply,
            signed=True,
        )
        return OrderReport(
            client_id=report.client_id,
            status=report.status,
            executed_qty=to_decimal(placed.executedQty),
            avg_price=to_decimal(placed.avgPrice),
            exchange_id=report.exchange_id,
            time_ms=max(report.time_ms, placed.updateTime),
        )

    async def _cancel(self, running: _Running, order: OrderRequest) -> list[TradeEvent]:
        cid = request_client_id(order)
        try:
            try:
                await self._delete_algo(cid)
            except TimestampOutsideWindow as exc:
                # -1021: refused before it was looked at, as a placement is: resync, once.
                await self._order_event(running, "order.clock_resync", cid, {"error": str(exc)})
                await self._rest.sync_time()
                await self._delete_algo(cid)
        except OrderOutcomeUnknown as exc:
            await self._order_event(running, "order.cancel_unknown", cid, {"error": str(exc)})
            return [OutcomeUnknown(cid)]
        except FatalExchangeError as exc:
            if exc.code is None:
                raise
            await self._order_event(
                running, "order.cancel_refused", cid, {"code": exc.code, "error": str(exc)}
            )
            # Not open any more (-2011): record how it did end (the machine hears only
            # the refusal, which tells it the order is over).
            await self._ask(running, order)
            return [Rejected(cid, exc.code, str(exc))]
        except ExchangeError as exc:
            await self._order_event(running, "order.cancel_unknown", cid, {"error": str(exc)})
            return [OutcomeUnknown(cid)]
        await self._store(running, order, "CANCELED")
        await self._order_event(running, "order.canceled", cid, {})
        return [Ended(cid)]

    async def _delete_algo(self, client_id: str) -> None:
        await self._rest.delete(
            ALGO_PATH, {"clientAlgoId": client_id}, reply=AlgoCancelReply, signed=True,
            order_client_id=client_id,
        )  # fmt: skip

    async def _sync_trade(self, running: _Running) -> None:
        """Write the trade's state; report what changed; let go of a closed trade."""
        trade = running.trade
        signal = trade.signal
        if trade.plan is not None and running.opened_at is None:
            entry = trade.orders[trade.entry_id]
            running.opened_at = self._now_ms()
            running.entry_fills = await self._fills(running, [trade.entry_id])
            await self._event(
                "trade.opened",
                signal,
                {
                    "trade_id": running.trade_id,
                    "quantity": str(entry.executed),
                    "price": str(entry.avg_price),
                },
            )
        if trade.is_protected and not running.protected_reported:
            running.protected_reported = True
            await self._event(
                "trade.protected", signal, {"trade_id": running.trade_id, "stop": trade.stop_id}
            )
        if trade.needs_attention and not running.attention_reported:
            running.attention_reported = True
            await self._event(
                "trade.needs_attention", signal, {"trade_id": running.trade_id}, "error"
            )
        if trade.state == TradeState.CLOSED and trade.plan is not None:
            # Opened and closed in one go (a refused stop flattened at once) or not: the
            # trade is written open, with its entry, before its close.
            opened = trade_row(trade, opened_at=running.opened_at, entry_fills=running.entry_fills)
            await self._write(lambda: self._records.upsert_trade(opened))
            exits = [o.client_id for o in trade.orders.values() if o.role != "entry" and o.executed]
            exit_fills = await self._fills(running, exits)
            fees = sum(f.fee for f in running.entry_fills + exit_fills)
            closed_at = max([self._now_ms(), *(f.time for f in exit_fills)])
            funding = await self._funding(running, closed_at)
            result = trade_result(trade, fees, funding)
            await self._write(
                lambda: self._records.close_trade(
                    running.trade_id,
                    TradeClose(
                        closed_at=closed_at,
                        exit_reason=trade.exit_reason or "exchange",
                        exit_fills=exit_fills,
                        fees=fees,
                        funding=funding,
                        realised_r=result.realised_r,
                        realised_usd=result.realised_usd,
                    ),
                )
            )
            await self._event(
                "trade.closed",
                signal,
                {
                    "trade_id": running.trade_id,
                    "reason": trade.exit_reason,
                    "realised_r": result.realised_r,
                    "realised_usd": result.realised_usd,
                    "fees": fees,
                    "funding": funding,
                },
            )
            self._forget(running)
            return
        row = trade_row(trade, opened_at=running.opened_at, entry_fills=running.entry_fills)
        await self._write(lambda: self._records.upsert_trade(row))
        if trade.state == TradeState.CLOSED:
            await self._event(
                "trade.not_opened",
                signal,
                {"trade_id": running.trade_id, "reason": trade.exit_reason},
                "warning",
            )
            self._forget(running)

    async def _fills(self, running: _Running, client_ids: Iterable[str]) -> list[Fill]:
        """The exchange's fills (price, quantity, commission) of these orders; none for an
        order whose exchange id we never learnt, and none (reported) while the exchange
        cannot be asked: the trade's result then counts no fees."""
        trade = running.trade
        fills: list[Fill] = []
        for cid in client_ids:
            try:
                order_id = running.order_ids.get(cid)
                if order_id is None and trade.orders[cid].is_algo:
                    # Learnt from the user stream: the order it placed is asked for.
                    algo = await self._rest.get(
                        ALGO_PATH, {"clientAlgoId": cid}, reply=AlgoOrderReply, signed=True
                    )
                    if algo.actualOrderId:
                        order_id = running.order_ids[cid] = int(algo.actualOrderId)
                if order_id is None:
                    continue
                rows = await self._rest.get(
                    "/fapi/v1/userTrades",
                    {"symbol": trade.signal.symbol, "orderId": order_id},
                    reply=list[UserTrade],
                    weight=5,
                    signed=True,
                )
            except (RetryableError, ExchangeError) as exc:
                self._log.warning("live.fills_unavailable", client_id=cid, error=str(exc))
                continue
            role = trade.orders[cid].role
            fills += [
                Fill(
                    time=r.time,
                    price=r.price,
                    quantity=r.qty,
                    fee=r.commission,
                    client_order_id=cid,
                    trade_id=r.id,
                    reason=None if role == "entry" else role,
                )
                for r in rows
            ]
        return fills

    async def _funding(self, running: _Running, closed_at: int) -> float:
        """The position's funding from its opening to ``closed_at``; 0, reported, while
        the exchange cannot be asked."""
        if running.opened_at is None:
            return 0.0
        symbol = running.trade.signal.symbol
        try:
            return await funding_between(self._rest, symbol, running.opened_at, closed_at)
        except (RetryableError, ExchangeError) as exc:
            self._log.warning("live.funding_unavailable", symbol=symbol, error=str(exc))
            return 0.0

    def _forget(self, running: _Running) -> None:
        self._running.pop(running.trade_id, None)
        for cid in running.trade.orders:
            self._by_client_id.pop(cid, None)

    # -- records --------------------------------------------------------------------------

    async def _write(self, write: Callable[[], Awaitable[T]]) -> T:
        """A record write, made again while the database is away (every write is
        idempotent): the exchange's answer it carries is never dropped."""
        attempt = 0
        while True:
            try:
                return await write()
            except RetryableError as exc:
                attempt += 1
                delay = self._db_retry.delay(attempt)
                self._log.warning(
                    "live.record_write_failed", error=str(exc), retry_in_s=round(delay, 2)
                )
                if not await self._clock.sleep(delay, self._stop):
                    raise

    async def _store(
        self,
        running: _Running,
        order: OrderRequest,
        status: str,
        *,
        report: OrderReport | None = None,
        note: str | None = None,
    ) -> None:
        # Never before a status already written: our own times (PENDING, a cancel's
        # answer) and the exchange's report times come from two clocks.
        cid = request_client_id(order)
        at = max(self._now_ms(), report.time_ms if report else 0, running.status_times.get(cid, 0))
        running.status_times[cid] = at
        row = order_row(
            order,
            status=status,
            status_time=at,
            trade_id=running.trade_id,
            report=report,
        )
        await self._write(lambda: self._records.upsert_order(row, note))

    async def _order_event(
        self,
        running: _Running,
        kind: str,
        client_id: str,
        detail: dict[str, object],
        level: EventLevel = "info",
    ) -> None:
        role = running.trade.orders[client_id].role if client_id in running.trade.orders else None
        await self._event(
            kind,
            running.trade.signal,
            {"trade_id": running.trade_id, "client_id": client_id, "role": role, **detail},
            level,
        )

    async def _event(
        self, kind: str, signal: Signal, detail: dict[str, object], level: EventLevel = "info"
    ) -> None:
        if kind.startswith("signal."):
            detail = {**detail, "tick": signal.tick_ms}  # which signal: its tick
        row = LiveEventRow(
            at=datetime.now(UTC),
            level=level,
            kind=kind,
            symbol=signal.symbol,
            strategy=signal.strategy,
            detail=detail,
            who=self._who,
        )
        getattr(self._log, level)(
            f"live.{kind}", symbol=signal.symbol, strategy=signal.strategy, **detail
        )
        await self._write(lambda: self._records.append_event(row))

    def _now_ms(self) -> int:
        return self._rest.server_time_ms()


async def funding_between(rest: BinanceRest, symbol: str, start_ms: int, end_ms: int) -> float:
    """A position's funding (USD, negative when paid): the symbol's FUNDING_FEE income in
    ``[start_ms, end_ms]`` (one-way mode holds one position a symbol, so all of it is that
    position's)."""
    rows = await rest.get(
        "/fapi/v1/income",
        {
            "symbol": symbol,
            "incomeType": "FUNDING_FEE",
            "startTime": start_ms,
            "endTime": end_ms,
            "limit": 1000,
        },
        reply=list[IncomeRow],
        weight=30,
        signed=True,
    )
    return sum(r.income for r in rows if r.incomeType == "FUNDING_FEE" and r.symbol == symbol)


def _order_report(reply: OrderReply) -> OrderReport:
    return OrderReport(
        client_id=reply.clientOrderId,
        status=reply.status,
        executed_qty=to_decimal(reply.executedQty),
        avg_price=to_decimal(reply.avgPrice),
        exchange_id=reply.orderId,
        time_ms=reply.updateTime,
    )


def _algo_report(reply: AlgoOrderReply) -> OrderReport:
    return OrderReport(
        client_id=reply.clientAlgoId,
        status=reply.algoStatus,
        exchange_id=reply.algoId,
        time_ms=reply.updateTime,
    )
