"""Emergency controls: pause, resume, flatten (all, one symbol, one trade) and cancel-all,
carried out by the running daemon, whoever asks (the CLI through the database, an admin
through the API, the risk guard's breaker through ``flatten_all``).

One command path: ``execute`` carries a command out and answers within a second with the
resulting state (the pause in force, the positions and the number of open orders, read
from the exchange), records it (``live_commands``) and audits it (a ``control.<command>``
``live_events`` row: who, the command's id, the symbol, the result, the state). Commands
run one at a time, so two never interleave.

- ``pause`` / ``resume``: the one manual pause is ``live_config.paused`` (``PUT
  /api/live/config`` writes the same): a new row with only ``paused`` changed, applied at
  once. Pausing a paused daemon changes nothing and says so.
- ``flatten``: every trade the executor drives on the symbol (or every one) is closed by
  the executor under its lock (a reduce-only MARKET order; exit reason ``manual_flatten``,
  or ``risk_halt`` for the breaker), and a position no trade drives (an orphan) by a
  reduce-only MARKET order of its size under an id of ours (``acf…``). The answer says
  ``requested``; the close is then verified: the positions read back from the exchange
  until zero (``verify_timeout_s``, else ``failed`` with what is left), the orders left on
  those symbols that no trade of the executor's owns (an orphan's stop) cancelled, and
  the command completed (``done``, ``flat: true``). Flattening everything also pauses
  entries: the next signal would otherwise open a position again.
- ``cancel_all``: every open order and algo order of the account cancelled except those
  that protect an open position (the orders of a trade the executor drives, whose exits
  they are, and any stop closing a held position), and entries paused: a position is
  never left without its stop (to be out of it, flatten).
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

import msgspec

from arbengine.domain.control_rows import (
    AckStatus,
    ControlAck,
    ControlPosition,
    ControlRequest,
    ControlState,
    FlattenReason,
)
from arbengine.domain.errors import RetryableError
from arbengine.domain.live_rows import LiveConfigRow, LiveEventRow, LiveOrderRow
from arbengine.exchange.exchange_errors import ExchangeError, FatalExchangeError
from arbengine.exchange.replies import AlgoCancelReply, AlgoOrderReply, OrderReply, PositionRisk
from arbengine.exchange.rest import BinanceRest
from arbengine.logs import get_logger
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.trading.live_executor import ALGO_PATH, ORDER_PATH, LiveExecutor
from arbengine.trading.live_plan import MarketOrder
from arbengine.trading.live_service import LiveConfigFollower
from arbengine.trading.live_wire import order_row

CONTROL_PREFIX = "ac"
"""Client ids of the orders the controls send (``acf<ms base 36>-<symbol>``)."""
GONE = (-2011, -2013)
"""Cancel refused because the order is not open (any more), or unknown: it is gone."""
_STOPS = frozenset({"STOP_MARKET", "STOP"})
T = TypeVar("T")


class ControlRecordsPort(Protocol):
    """What the controls write (``store.live_records.LiveRecords``)."""

    async def set_config(self, config: LiveConfigRow) -> LiveConfigRow: ...
    async def append_event(self, event: LiveEventRow) -> None: ...
    async def upsert_order(self, order: LiveOrderRow, note: str | None = None) -> LiveOrderRow: ...


class CommandsPort(Protocol):
    """The ``live_commands`` rows (``store.control_commands.ControlCommands``)."""

    async def started(self, request: ControlRequest) -> None: ...
    async def record(self, ack: ControlAck, *, final: bool) -> None: ...


class _Order(msgspec.Struct, frozen=True):
    client_id: str
    symbol: str
    side: str
    type: str
    closing: bool
    """closePosition or reduce-only."""
    algo: bool


class LiveControls:
    def __init__(
        self,
        rest: BinanceRest,
        executor: LiveExecutor,
        follower: LiveConfigFollower,
        records: ControlRecordsPort,
        commands: CommandsPort,
        *,
        clock: Clock | None = None,
        verify_timeout_s: float = 20.0,
        verify_interval_s: float = 0.5,
    ) -> None:
        self._rest = rest
        self._executor = executor
        self._follower = follower
        self._records = records
        self._commands = commands
        self._clock = clock or SystemClock()
        self._verify_timeout_s = verify_timeout_s
        self._verify_interval_s = verify_interval_s
        self._one_at_a_time = asyncio.Lock()
        self._flattening = asyncio.Lock()
        """Held by a flatten from its first order to its verification: a second flatten
        (the CLI's and the API's at once) waits, then finds the position gone."""
        self._stop = asyncio.Event()
        self._verifying: set[asyncio.Task[ControlAck]] = set()
        self._verified_acks: list[ControlAck] = []
        """Completed verifications not yet collected by ``settled``."""
        self._log = get_logger("control")

    # -- entry points ------------------------------------------------------------------

    async def submit(
        self, request: ControlRequest, *, reason: FlattenReason = "manual_flatten"
    ) -> ControlAck:
        """A command asked for in this process (the API, the risk guard): recorded, then
        carried out."""
        await self._commands.started(request)
        return await self.execute(request, reason=reason)

    async def flatten_all(self, reason: FlattenReason, who: str) -> ControlAck:
        """The risk guard's breaker: every position closed at market (its trades' exit
        reason ``reason``); the verification follows as for a person's. Entries are left
        to the guard's state (HALTED refuses them), not paused."""
        return await self.submit(ControlRequest(command="flatten", who=who), reason=reason)

    async def execute(
        self, request: ControlRequest, *, reason: FlattenReason = "manual_flatten"
    ) -> ControlAck:
        """Carry out a command stored as running; its acknowledgement, recorded."""
        started = time.perf_counter()
        async with self._one_at_a_time:
            try:
                ack = await self._carry_out(request, reason)
            except (RetryableError, ExchangeError) as exc:
                ack = self._ack(request, "failed", f"not carried out: {_short(exc)}", None)
        await self._commands.record(ack, final=ack.status != "requested")
        if ack.status != "requested":
            await self._audit(ack)
        self._log.info(
            f"control.{request.command}",
            who=request.who,
            command_id=str(request.command_id),
            symbol=request.symbol,
            trade_id=request.trade_id,
            status=ack.status,
            result=ack.result,
            took_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return ack

    async def settled(self) -> list[ControlAck]:
        """Wait for the verifications under way; every completion since the last call, in
        the order they completed (a flatten's caller in-process, tests)."""
        await asyncio.gather(*self._verifying, return_exceptions=True)
        done, self._verified_acks = self._verified_acks, []
        return done

    async def stop(self) -> None:
        """At shutdown: verifications under way are cancelled (their rows stay
        ``requested``; the positions are the executor's and the reconciler's again)."""
        self._stop.set()
        for task in list(self._verifying):
            task.cancel()
        await asyncio.gather(*self._verifying, return_exceptions=True)

    # -- the commands ------------------------------------------------------------------

    async def _carry_out(self, request: ControlRequest, reason: FlattenReason) -> ControlAck:
        if request.command == "pause":
            changed = await self._set_paused(True, request.who)
            result = "paused: no new entries, open trades still driven" if changed else (
                "already paused")  # fmt: skip
            return self._ack(request, "done", result, await self.state(), {"changed": changed})
        if request.command == "resume":
            changed = await self._set_paused(False, request.who)
            result = "resumed: entries allowed" if changed else "already running (not paused)"
            return self._ack(request, "done", result, await self.state(), {"changed": changed})
        if request.command == "cancel_all":
            return await self._cancel_all(request)
        return await self._flatten(request, reason)

    async def _set_paused(self, paused: bool, who: str) -> bool:
        """A new ``live_config`` row with ``paused`` set, applied now; False when it was so."""
        await self._follower.refresh()
        if self._executor.settings.paused == paused:
            return False
        current = self._follower.config
        if current is None:
            live = self._follower.live
            row = LiveConfigRow(
                strategies=list(live.strategies),
                risk_per_trade_usd=live.risk_per_trade_usd,
                max_positions=live.max_positions,
                paused=paused,
                changed_by=who,
            )
        else:
            row = msgspec.structs.replace(
                current, change_id=uuid.uuid4(), paused=paused, changed_by=who, changed_at=None
            )
        await self._records.set_config(row)
        await self._follower.refresh()
        return True

    async def _cancel_all(self, request: ControlRequest) -> ControlAck:
        paused = await self._set_paused(True, request.who)
        positions = await self._positions()
        held = {p.symbol for p in positions if p.positionAmt != 0}
        owned = self._driven_client_ids()
        cancelled: list[str] = []
        kept: list[str] = []
        failed: list[str] = []
        orders = await self._open_orders()
        for order in orders:
            protects = order.symbol in held and (
                order.client_id in owned or (order.type in _STOPS and order.closing)
            )
            if protects:
                kept.append(order.client_id)
            elif await self._cancel(order):
                cancelled.append(order.client_id)
            else:
                failed.append(order.client_id)
        detail = {"cancelled": cancelled, "kept": kept, "paused_now": paused}
        gone = set(cancelled)
        state = await self.state(positions, [o for o in orders if o.client_id not in gone])
        result = f"cancelled {len(cancelled)} order(s), kept {len(kept)} protecting positions"
        if failed:
            detail["not_cancelled"] = failed
            return self._ack(request, "failed", f"{result}; {len(failed)} could not be "
                             "cancelled", state, detail)  # fmt: skip
        return self._ack(request, "done", result + "; entries paused", state, detail)

    async def _flatten(self, request: ControlRequest, reason: FlattenReason) -> ControlAck:
        executor = self._executor
        trade_id = request.trade_id
        if trade_id is not None:
            trade = executor.trade(trade_id)
            if trade is None:
                return self._ack(
                    request, "failed",
                    f"trade_id: {request.trade_id} is not an open live trade of this daemon's "
                    "executor", None, {"not_found": True},
                )  # fmt: skip
            request = msgspec.structs.replace(request, symbol=trade.signal.symbol)
            trades = [trade_id]
            symbols: set[str] = set()  # verified by the trade's end (an orphan may share it)
            strategy: str | None = trade.signal.strategy
            orphans: dict[str, Decimal] = {}
            state = await self.state()
        else:
            if request.symbol is None and reason == "manual_flatten":
                # A person's flatten of everything pauses entries; the breaker's does not:
                # its HALTED state refuses them and it resumes by itself, which a manual
                # pause would forbid.
                await self._set_paused(True, request.who)
            trades = [
                tid
                for tid in sorted(executor.trade_ids)
                if (t := executor.trade(tid)) is not None
                and request.symbol in (None, t.signal.symbol)
            ]
            driven = {t.signal.symbol for tid in trades if (t := executor.trade(tid))}
            read = await self._positions()
            positions = {
                p.symbol: p.positionAmt
                for p in read
                if p.positionAmt != 0 and request.symbol in (None, p.symbol)
            }
            orphans = {s: a for s, a in positions.items() if s not in driven}
            symbols = set(positions) | driven
            # verified at zero, then tidied of the orders no trade owns
            strategy = None
            state = await self.state(read)
        if not trades and not orphans:
            where = request.symbol or "the account"
            return self._ack(request, "done", f"already flat: no position on {where}", state,
                             {"flat": True, "trades": [], "orphans": []})  # fmt: skip
        detail: dict[str, Any] = {
            "trades": trades,
            "orphans": {s: str(a) for s, a in orphans.items()},
            "reason": reason,
        }
        if strategy is not None:
            detail["strategy"] = strategy
        ack = self._ack(request, "requested", f"closing {len(trades)} trade(s) and "
                        f"{len(orphans)} orphan position(s) at market", state, detail)  # fmt: skip
        task = asyncio.create_task(
            self._flatten_verified(ack, trades, set(orphans), symbols, reason),
            name=f"control.flatten-{request.command_id}",
        )
        self._verifying.add(task)
        task.add_done_callback(self._verified)
        return ack

    async def _flatten_verified(
        self,
        ack: ControlAck,
        trades: list[int],
        orphans: set[str],
        symbols: set[str],
        reason: FlattenReason,
    ) -> ControlAck:
        """Close, verify zero, tidy up, complete the command (its row and its event)."""
        async with self._flattening:
            for trade_id in trades:
                await self._retrying(functools.partial(self._executor.flatten, trade_id, reason))
            sent: dict[str, str | None] = {}
            for symbol in sorted(orphans):
                sent[symbol] = await self._retrying(functools.partial(self._close_orphan, symbol))
            left, positions = await self._retrying(lambda: self._wait_flat(trades, symbols))
            tidied, orders = (
                ([], None) if left else await self._retrying(lambda: self._tidy(symbols))
            )
        state = await self._retrying(lambda: self.state(positions, orders))
        detail = {**ack.detail, "orphan_orders": sent, "cancelled": tidied, "flat": not left}
        if left:
            text = ", ".join(f"{k} {v}" for k, v in left.items())
            done = msgspec.structs.replace(
                ack, status="failed", state=state, detail={**detail, "left": left},
                result=f"not flat after {self._verify_timeout_s:g}s: {text}",
            )  # fmt: skip
        else:
            done = msgspec.structs.replace(
                ack, status="done", state=state, detail=detail, result="flat: verified zero"
            )
        await self._retrying(lambda: self._commands.record(done, final=True))
        await self._retrying(lambda: self._audit(done))
        self._log.info(
            "control.flatten_verified",
            command_id=str(done.command_id),
            who=done.who,
            status=done.status,
            result=done.result,
        )
        return done

    def _verified(self, task: asyncio.Task[ControlAck]) -> None:
        self._verifying.discard(task)
        if task.cancelled():
            return
        if task.exception() is not None:
            self._log.error("control.flatten_failed", error=_short(task.exception()))
        else:
            self._verified_acks.append(task.result())

    async def _close_orphan(self, symbol: str) -> str | None:
        """A reduce-only MARKET order of the position's size, unless it is flat by now (a
        flatten before this one closed it) or a trade of the executor's drives it."""
        if any(
            (t := self._executor.trade(tid)) is not None and t.signal.symbol == symbol
            for tid in self._executor.trade_ids
        ):
            return None
        amount = sum((p.positionAmt for p in await self._positions(symbol)), Decimal(0))
        if amount == 0:
            return None
        order = MarketOrder(
            symbol=symbol,
            side="SELL" if amount > 0 else "BUY",
            quantity=abs(amount),
            reduce_only=True,
            client_order_id=control_id("f", symbol, self._rest.server_time_ms()),
            role="flatten",
        )
        now = self._rest.server_time_ms()
        try:
            reply = await self._rest.post(
                ORDER_PATH, order.params(), reply=OrderReply, signed=True, weight=0,
                order_client_id=order.client_order_id,
            )  # fmt: skip
        except FatalExchangeError as exc:
            if exc.code is None:
                raise
            refused = order_row(order, status="REJECTED", status_time=now, trade_id=None)
            await self._records.upsert_order(refused, str(exc))
            self._log.error("control.orphan_close_refused", symbol=symbol, error=_short(exc))
            return None
        row = order_row(order, status=reply.status, status_time=now, trade_id=None)
        await self._records.upsert_order(
            msgspec.structs.replace(row, exchange_order_id=reply.orderId), "control.flatten"
        )
        return order.client_order_id

    async def _wait_flat(
        self, trades: list[int], symbols: set[str]
    ) -> tuple[dict[str, str], list[PositionRisk]]:
        """Until the trades are closed and the symbols' positions zero (nothing left), or
        what is left when ``verify_timeout_s`` has passed; with the positions last read."""
        deadline = time.monotonic() + self._verify_timeout_s
        while True:
            positions = await self._positions()
            left = {
                p.symbol: str(p.positionAmt)
                for p in positions
                if p.positionAmt != 0 and p.symbol in symbols
            }
            for trade_id in trades:
                if trade_id in self._executor.trade_ids:
                    left.setdefault(f"trade {trade_id}", "open")
            if not left or time.monotonic() >= deadline:
                return left, positions
            if not await self._clock.sleep(self._verify_interval_s, self._stop):
                return left, positions

    async def _tidy(self, symbols: set[str]) -> tuple[list[str], list[_Order]]:
        """Orders left on the flattened symbols that no trade of the executor's owns (an
        orphan's stop, a leftover): cancelled, so flat means no orders either. Those
        cancelled, and the account's open orders left."""
        owned = self._driven_client_ids()
        cancelled = []
        left = []
        for order in await self._open_orders():
            mine = order.symbol in symbols and order.client_id not in owned
            if mine and await self._cancel(order):
                cancelled.append(order.client_id)
            else:
                left.append(order)
        return cancelled, left

    # -- the exchange --------------------------------------------------------------------

    async def state(
        self, positions: list[PositionRisk] | None = None, orders: list[_Order] | None = None
    ) -> ControlState:
        """The account now: what was just read is given (the request weight of an
        account-wide read of open orders is 80), the rest is read."""
        if positions is None:
            positions = await self._positions()
        if orders is None:
            orders = await self._open_orders()
        return ControlState(
            paused=self._executor.settings.paused,
            positions=[
                ControlPosition(p.symbol, str(p.positionAmt))
                for p in sorted(positions, key=lambda p: p.symbol)
                if p.positionAmt != 0
            ],
            open_orders=len(orders),
        )

    async def _positions(self, symbol: str | None = None) -> list[PositionRisk]:
        return await self._rest.get(
            "/fapi/v3/positionRisk", {"symbol": symbol} if symbol else None,
            reply=list[PositionRisk], weight=5, signed=True,
        )  # fmt: skip

    async def _open_orders(self) -> list[_Order]:
        plain = await self._rest.get(
            "/fapi/v1/openOrders", reply=list[OrderReply], weight=40, signed=True
        )
        algos = await self._rest.get(
            "/fapi/v1/openAlgoOrders", reply=list[AlgoOrderReply], weight=40, signed=True
        )
        return [
            _Order(o.clientOrderId, o.symbol, o.side, o.type, o.closePosition or o.reduceOnly,
                   algo=False)
            for o in plain
        ] + [
            _Order(a.clientAlgoId, a.symbol, a.side, a.orderType,
                   a.closePosition or a.reduceOnly, algo=True)
            for a in algos
        ]  # fmt: skip

    async def _cancel(self, order: _Order) -> bool:
        """True when the order is no longer open (cancelled now, or gone already)."""
        try:
            if order.algo:
                await self._rest.delete(
                    ALGO_PATH, {"clientAlgoId": order.client_id}, reply=AlgoCancelReply,
                    signed=True, order_client_id=order.client_id,
                )  # fmt: skip
            else:
                await self._rest.delete(
                    ORDER_PATH, {"symbol": order.symbol, "origClientOrderId": order.client_id},
                    reply=OrderReply, signed=True, order_client_id=order.client_id,
                )  # fmt: skip
        except FatalExchangeError as exc:
            if exc.code in GONE:
                return True
            self._log.error("control.cancel_refused", client_id=order.client_id,
                            error=_short(exc))  # fmt: skip
            return False
        except ExchangeError as exc:
            self._log.warning("control.cancel_unknown", client_id=order.client_id,
                              error=_short(exc))  # fmt: skip
            return False
        return True

    def _driven_client_ids(self) -> set[str]:
        ids: set[str] = set()
        for trade_id in self._executor.trade_ids:
            trade = self._executor.trade(trade_id)
            if trade is not None:
                ids.update(trade.orders)
        return ids

    # -- records -------------------------------------------------------------------------

    async def _retrying(self, call: Callable[[], Awaitable[T]]) -> T:
        """A verification outlives an exchange or database blip: waited out (capped,
        jittered by the clock's sleep), until the daemon stops."""
        attempt = 0
        while True:
            try:
                return await call()
            except (RetryableError, ExchangeError) as exc:
                if isinstance(exc, FatalExchangeError):
                    raise
                attempt += 1
                delay = min(5.0, 0.2 * 2**attempt)
                self._log.warning("control.retrying", error=_short(exc), retry_in_s=delay)
                if not await self._clock.sleep(delay, self._stop):
                    raise

    async def _audit(self, ack: ControlAck) -> None:
        await self._records.append_event(
            LiveEventRow(
                at=datetime.now(UTC),
                level="info" if ack.status != "failed" else "error",
                kind=f"control.{ack.command}",
                symbol=ack.symbol,
                strategy=None,
                detail={
                    "who": ack.who,
                    "command_id": str(ack.command_id),
                    "symbol": ack.symbol,
                    "trade_id": ack.trade_id,
                    "result": ack.result,
                    "status": ack.status,
                    "state": None if ack.state is None else msgspec.to_builtins(ack.state),
                    **{k: v for k, v in ack.detail.items() if k in ("flat", "left", "changed")},
                },
                who=ack.who,
            )
        )

    @staticmethod
    def _ack(
        request: ControlRequest,
        status: AckStatus,
        result: str,
        state: ControlState | None,
        detail: dict[str, Any] | None = None,
    ) -> ControlAck:
        return ControlAck(
            command_id=request.command_id,
            command=request.command,
            who=request.who,
            symbol=request.symbol,
            trade_id=request.trade_id,
            status=status,
            result=result,
            state=state,
            detail=detail or {},
        )


def control_id(code: str, symbol: str, now_ms: int) -> str:
    """``ac<code><ms base 36>-<symbol>``: the controls' own orders, told from the
    executor's (``ae``) and the reconciler's (``ar``)."""
    digits = []
    value = now_ms
    while value:
        value, digit = divmod(value, 36)
        digits.append("0123456789abcdefghijklmnopqrstuvwxyz"[digit])
    return f"{CONTROL_PREFIX}{code}{''.join(reversed(digits))}-{symbol}"[:36]


def _short(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}"[:200]
