"""The risk guard's place in the daemon: the gate before the executor, the monitor every
``check_interval`` (a thin service around ``risk_rules``).

Each round builds the view the gate reads: positions and the USDT balance from the user
data stream (``on_event``), read over REST every ``rest_check_interval`` (and at every
round while the stream and REST disagree); the UTC day's realised result from the closed
live trades; the data's freshness from the collectors' tap (``MarketFreshness``); the
tape's unrepaired holes within the traded strategies' longest window. It then applies
what ``evaluate`` decides: the new state is stored (``risk_state``) and written as a
``risk.state_changed`` event (``risk.auto_resumed`` on a resume); a circuit break
flattens every position (``flatten_on_halt``) through ``BreakerActions``. A trade held
past ``hold_timeout`` is closed at market (``risk.hold_timeout``).

The user stream is *in step* while connected and, at the last REST read, reporting the
positions REST shows (a stream event that brings them level again ends a disagreement;
a stream event never starts one, REST being the older of the two then). Out of step for
longer than ``max_user_stream_age``: REDUCING.

The exchange or the database being away is reported (``risk.check_failed``, the health
board's ``risk``) and waited out: the state in force stays, the gate keeps reading the
last view (whose data grows old, so entries are soon refused).
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import msgspec

from arbengine.domain.control_rows import FlattenReason
from arbengine.domain.errors import RetryableError
from arbengine.domain.events import Signal
from arbengine.domain.live_rows import EventLevel, LiveEventRow, LiveTradeRow
from arbengine.domain.risk_rows import RiskState
from arbengine.exchange.replies import AccountBalance, PositionRisk
from arbengine.exchange.rest import BinanceRest
from arbengine.exchange.user_events import AccountUpdate, Resync, UserEvent
from arbengine.logs import get_logger
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.runtime.health import HealthBoard
from arbengine.trading.risk_inputs import MarketFreshness
from arbengine.trading.risk_rules import (
    TAPE_INPUT,
    Allowed,
    EntryIntent,
    Refused,
    RiskLimits,
    RiskView,
    Transition,
    check_entry,
    day_start_ms,
    evaluate,
    held_too_long,
    refused,
)

MARGIN_ASSET = "USDT"
DEFAULT_INPUTS = frozenset({TAPE_INPUT})
"""What a strategy the last round did not know of reads at least."""
TRANSITIONS_KEPT = 20
WHO = "risk"


@dataclass(frozen=True, slots=True)
class TradedStrategy:
    """What the guard needs of a strategy traded live."""

    name: str
    symbols: frozenset[str]
    inputs: frozenset[str]
    """The collected inputs it reads (``Strategy.inputs``): their age is checked."""
    longest_window_ms: int
    """A tape hole within this much of now refuses its entries."""


class RiskRecordsPort(Protocol):
    """``store.risk_records.RiskRecords``, bound by app.py."""

    async def load_state(self) -> RiskState | None: ...
    async def save_state(self, state: RiskState) -> None: ...
    async def realised_since(self, since_ms: int) -> tuple[float, float]: ...
    async def holes_since(self, symbols: Sequence[str], since_ms: int) -> dict[str, int]: ...


class LiveEventsPort(Protocol):
    """What the guard reads and writes of live trading's records (``LiveRecords``)."""

    async def append_event(self, event: LiveEventRow) -> None: ...
    async def open_trades(self) -> list[LiveTradeRow]: ...
    async def events_between(
        self, start: datetime, end: datetime, symbol: str | None = None, limit: int | None = None
    ) -> list[LiveEventRow]: ...


class ExecutorPort(Protocol):
    """What the guard asks of the live executor."""

    @property
    def trade_ids(self) -> frozenset[int]: ...
    async def flatten(self, trade_id: int, reason: FlattenReason = "flatten") -> None: ...


class BreakerActions(Protocol):
    """What a circuit break does beyond refusing entries."""

    async def flatten_all(self, reason: str) -> None: ...


class FlattenDrivenTrades:
    """Flatten-all over the executor: each trade it drives closed at market (reduce-only,
    its protection cancelled) under the trade's own lock. Positions no trade drives are
    the reconciler's (``[live] orphan_policy``)."""

    def __init__(self, executor: ExecutorPort) -> None:
        self._executor = executor

    async def flatten_all(self, reason: str) -> None:
        await asyncio.gather(
            *(self._executor.flatten(t, "risk_halt") for t in self._executor.trade_ids)
        )


class ControlsPort(Protocol):
    """The emergency controls' flatten of everything (``LiveControls``)."""

    async def flatten_all(self, reason: FlattenReason, who: str) -> object: ...


class FlattenThroughControls:
    """The daemon's breaker: everything flattened by the emergency controls, positions no
    trade drives (orphans) included, and verified at zero; a ``live_commands`` row by
    ``risk``, as a person's flatten is audited."""

    def __init__(self, controls: ControlsPort) -> None:
        self._controls = controls

    async def flatten_all(self, reason: str) -> None:
        await self._controls.flatten_all("risk_halt", "risk")


class RiskService:
    def __init__(
        self,
        rest: BinanceRest,
        executor: ExecutorPort,
        live_records: LiveEventsPort,
        records: RiskRecordsPort,
        limits: RiskLimits,
        *,
        strategies: Callable[[], Iterable[TradedStrategy]],
        paused: Callable[[], bool],
        freshness: MarketFreshness | None = None,
        stream_connected: Callable[[], bool] = lambda: True,
        actions: BreakerActions | None = None,
        check_interval_s: float = 5.0,
        rest_check_interval_s: float = 60.0,
        clock: Clock | None = None,
        health: HealthBoard | None = None,
    ) -> None:
        """``clock``: what data ages, the cooldown and the hold are measured on; the
        freshness board's (the daemon's own clock)."""
        self._rest = rest
        self._executor = executor
        self._live = live_records
        self._records = records
        self.limits = limits
        self._strategies = strategies
        self._paused = paused
        self._freshness = freshness
        self.stream_connected = stream_connected
        """Whether the user data stream has a connection open now."""
        self._again = FlattenDrivenTrades(executor)
        self._actions = actions or self._again
        self._check_interval_s = check_interval_s
        self._rest_check_ms = int(rest_check_interval_s * 1000)
        self._clock = clock or SystemClock()
        self._health = health
        self._log = get_logger("risk")
        self.state = RiskState()
        self._changing = asyncio.Lock()
        """Held from reading ``state`` to storing and setting its successor: a refusal counted
        while a round stores a break would otherwise store the state before the break over
        it (the break in force here, gone at the next start)."""
        self.view = RiskView()
        self.transitions: deque[dict[str, Any]] = deque(maxlen=TRANSITIONS_KEPT)
        self._stop = asyncio.Event()
        self._loaded = False
        # The account as last known (stream and REST): symbol → (amount, entry price).
        self._account: dict[str, tuple[Decimal, Decimal]] = {}
        self._stream_positions: dict[str, Decimal] = {}
        self._rest_positions: dict[str, Decimal] | None = None
        self._rest_unrealised = 0.0
        self._balance: float | None = None
        self._rest_at: int | None = None
        self._out_of_step_since: int | None = None
        self._rebase = True
        self._disconnected_since: int | None = None
        self._held: set[int] = set()
        self._inputs: dict[str, frozenset[str]] = {}
        """Strategy → the inputs it reads, as of the last round."""
        self._flattening: set[asyncio.Task[None]] = set()
        self._unavailable = False

    # -- start ------------------------------------------------------------------------------

    async def load(self) -> None:
        """The state an earlier process left (a breaker stays a breaker), and the recent
        transitions; stored at once when there was none."""
        stored = await self._records.load_state()
        now = self._clock.time_ms()
        if stored is None:
            stored = RiskState(since_ms=now, breaks_day_ms=day_start_ms(now))
            await self._records.save_state(stored)
        self.state = stored
        # Events are stamped with our own clock, as the executor's are.
        end = datetime.now(UTC) + timedelta(seconds=1)
        for event in await self._live.events_between(end - timedelta(days=1), end):
            if event.kind in ("risk.state_changed", "risk.auto_resumed"):
                self.transitions.appendleft(_shown(event))
        self._loaded = True
        self._log.info(
            "risk.loaded",
            state=stored.state,
            rule=stored.rule,
            reason=stored.reason,
            resume_after_ms=stored.resume_after_ms,
        )

    # -- the gate -----------------------------------------------------------------------------

    def check(self, signal: Signal) -> Allowed | Refused:
        """The gate's decision on an entry of ``signal`` now (no I/O: the view and the
        strategies' inputs as the last round left them, each input's age as of now)."""
        inputs = self._inputs.get(signal.strategy, DEFAULT_INPUTS)
        intent = EntryIntent(signal.symbol, signal.strategy, signal.tick_ms, inputs)
        return check_entry(intent, self.view, self.state, self.limits, self._clock.time_ms())

    async def admit(self, signal: Signal) -> bool:
        """May ``signal`` be traded? A refusal is counted, logged and recorded
        (``risk.entry_refused``) with the rule and the values."""
        decision = self.check(signal)
        if isinstance(decision, Allowed):
            return True
        values = _plain(decision.values)
        self._log.warning(
            "risk.entry_refused",
            rule=decision.rule,
            symbol=signal.symbol,
            strategy=signal.strategy,
            tick=signal.tick_ms,
            values=values,
        )
        await self._event(
            "risk.entry_refused",
            {"rule": decision.rule, "values": values, "tick": signal.tick_ms},
            level="warning",
            symbol=signal.symbol,
            strategy=signal.strategy,
        )
        async with self._changing:
            counted = refused(self.state, decision.rule)
            await self._records.save_state(counted)
            self.state = counted
        return False

    # -- the user data stream -----------------------------------------------------------------

    async def on_event(self, event: UserEvent) -> None:
        """The user stream's positions and USDT balance, as they change."""
        if isinstance(event, Resync):
            # What happened while no connection was open is known only over REST: the
            # stream's reports start again from what the next read shows.
            self._rest_at = None
            self._rebase = True
            return
        if not isinstance(event, AccountUpdate):
            return
        for balance in event.account.balances:
            if balance.asset == MARGIN_ASSET:
                self._balance = float(balance.wallet_balance)
        for p in event.account.positions:
            if p.position_side != "BOTH":
                continue
            self._stream_positions[p.symbol] = p.amount
            if p.amount:
                self._account[p.symbol] = (p.amount, p.entry_price)
            else:
                self._account.pop(p.symbol, None)
        if self._rest_positions is not None and _nonzero(self._stream_positions) == (
            self._rest_positions
        ):
            self._out_of_step_since = None

    # -- the monitor ----------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        """A round every ``check_interval`` until ``request_stop``."""
        if not self._loaded:
            await self._retrying(self.load)
        while not self._stop.is_set():
            await self._retrying(self.check_once)
            await self._clock.sleep(self._check_interval_s, self._stop)

    async def _retrying(self, work: Callable[[], Any]) -> None:
        try:
            await work()
        except RetryableError as exc:
            self._log.warning("risk.check_failed", error=str(exc)[:200], state=self.state.state)
            if self._health is not None:
                self._health.report("risk", f"checks failing: {str(exc)[:120]}")
            self._unavailable = True
            return
        if self._unavailable and self._health is not None:
            self._health.clear("risk")
        self._unavailable = False

    async def check_once(self) -> Transition | None:
        """One round: the view anew, the state it calls for, the hold timeouts."""
        now = self._clock.time_ms()
        if (
            self._rest_at is None
            or now - self._rest_at >= self._rest_check_ms
            or (self._out_of_step_since is not None)
        ):
            await self._read_account(now)
        trades = await self._live.open_trades()
        self.view = await self._build_view(now, trades)
        async with self._changing:
            transition = evaluate(self.view, self.state, self.limits, now)
            if transition is not None:
                await self._apply(transition)
            elif self.state.breaks_day_ms != day_start_ms(now):
                rolled = msgspec.structs.replace(
                    self.state, breaks_day_ms=day_start_ms(now), breaks_today=0
                )
                await self._records.save_state(rolled)
                self.state = rolled
        driven = self._executor.trade_ids
        if self.state.state == "HALTED" and self.limits.flatten_on_halt:
            if transition is not None and transition.breaks:
                # At the break: everything, by the breaker's actions.
                self._log.warning("risk.flatten_all", trades=len(driven), reason=self.state.reason)
                await self._actions.flatten_all(self.state.reason or "circuit break")
            elif driven:
                # Each round after while a trade is still driven: a close that failed is
                # asked again (one under way sends nothing more).
                await self._again.flatten_all(self.state.reason or "circuit break")
        await self._hold_timeouts(trades, now)
        return transition

    async def _read_account(self, now: int) -> None:
        rows = await self._rest.get(
            "/fapi/v3/positionRisk", reply=list[PositionRisk], weight=5, signed=True
        )
        balances = await self._rest.get(
            "/fapi/v3/balance", reply=list[AccountBalance], weight=5, signed=True
        )
        positions = {r.symbol: r.positionAmt for r in rows if r.positionSide == "BOTH"}
        self._rest_positions = _nonzero(positions)
        self._rest_unrealised = sum(r.unRealizedProfit for r in rows)
        self._account = {
            r.symbol: (r.positionAmt, r.entryPrice)
            for r in rows
            if r.positionSide == "BOTH" and r.positionAmt
        }
        for row in balances:
            if row.asset == MARGIN_ASSET:
                self._balance = float(row.balance)
        self._rest_at = now
        if self._rebase:
            # The stream reports changes only: its starting point is what REST shows.
            self._stream_positions = dict(self._rest_positions)
            self._rebase = False
        if _nonzero(self._stream_positions) == self._rest_positions:
            self._out_of_step_since = None
        elif self._out_of_step_since is None:
            self._out_of_step_since = now
            self._log.info(
                "risk.user_stream_behind",
                stream={s: str(a) for s, a in _nonzero(self._stream_positions).items()},
                rest={s: str(a) for s, a in self._rest_positions.items()},
            )

    async def _build_view(self, now: int, trades: Sequence[LiveTradeRow]) -> RiskView:
        day_r, day_usd = await self._records.realised_since(day_start_ms(now))
        traded = list(self._strategies())
        self._inputs = {t.name: t.inputs for t in traded}
        symbols = sorted({s for t in traded for s in t.symbols})
        window = max((t.longest_window_ms for t in traded), default=0)
        holes = await self._records.holes_since(symbols, now - window) if symbols else {}
        positions: dict[str, int] = {s: 1 for s in self._account}
        driven: dict[str, int] = {}
        for trade in trades:
            driven[trade.symbol] = driven.get(trade.symbol, 0) + 1
        for symbol, count in driven.items():
            positions[symbol] = max(positions.get(symbol, 0), count)
        if self.stream_connected():
            self._disconnected_since = None
        elif self._disconnected_since is None:
            self._disconnected_since = now
        behind = [t for t in (self._out_of_step_since, self._disconnected_since) if t is not None]
        return RiskView(
            positions=positions,
            daily_realised_r=day_r,
            daily_realised_usd=day_usd,
            unrealised_usd=self._unrealised(),
            balance_usd=self._balance,
            # The board itself, not a copy: the gate reads each input's age as of now.
            inputs_at=self._freshness.inputs_at if self._freshness is not None else {},
            user_stream_behind_since=min(behind) if behind else None,
            holes=holes,
            paused=self._paused(),
        )

    def _unrealised(self) -> float:
        """At the latest mark price where the collectors give one, else REST's figure."""
        marks = self._freshness.marks if self._freshness is not None else {}
        if not self._account or not all(s in marks for s in self._account):
            return self._rest_unrealised
        return sum(
            float(amount) * (marks[symbol] - float(entry))
            for symbol, (amount, entry) in self._account.items()
        )

    async def _apply(self, transition: Transition) -> None:
        """Stored first, then in force: a write the database refuses leaves the state as
        it was, and the next round decides (and writes) the change again."""
        before, after = transition.before, transition.after
        detail: dict[str, object] = {
            "from": before.state,
            "to": after.state,
            "reason": after.reason or before.reason,
            "rule": after.rule or before.rule,
            "values": _plain(after.values or before.values),
        }
        level: EventLevel = "error" if after.state == "HALTED" else "warning"
        if after.state == "ACTIVE":
            level = "info"
        await self._records.save_state(after)
        kind = "risk.auto_resumed" if transition.auto_resumed else "risk.state_changed"
        event = await self._event(kind, detail, level=level)
        self.state = after
        self.transitions.appendleft(_shown(event))
        getattr(self._log, level)(
            "risk.circuit_break" if transition.breaks else kind,
            **{k if k not in ("from", "to") else f"state_{k}": v for k, v in detail.items()},
            resume_after_ms=after.resume_after_ms,
        )

    async def _hold_timeouts(self, trades: Sequence[LiveTradeRow], now: int) -> None:
        driven = self._executor.trade_ids
        for trade in trades:
            if trade.id is None or trade.id not in driven or trade.id in self._held:
                continue
            # Held since its signal's tick (the entry's fill time is stamped by the REST
            # client's clock, which a manual sim's time leaves behind).
            if trade.status != "open" or not held_too_long(trade.signal_tick, self.limits, now):
                continue
            self._held.add(trade.id)
            held_s = round((now - trade.signal_tick) / 1000, 1)
            self._log.warning(
                "risk.hold_timeout", trade_id=trade.id, symbol=trade.symbol, held_s=held_s
            )
            await self._event(
                "risk.hold_timeout",
                {"trade_id": trade.id, "held_s": held_s},
                level="warning",
                symbol=trade.symbol,
                strategy=trade.strategy,
            )
            task = asyncio.create_task(
                self._executor.flatten(trade.id, "hold_timeout"),
                name=f"risk.hold-timeout-{trade.id}",
            )
            self._flattening.add(task)
            task.add_done_callback(functools.partial(self._flatten_done, trade.id))

    def _flatten_done(self, trade_id: int, task: asyncio.Task[None]) -> None:
        self._flattening.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # The executor's poll goes on driving the trade; the next round asks again.
            self._held.discard(trade_id)
            self._log.error(
                "risk.flatten_failed", trade_id=trade_id, error=str(task.exception())[:200]
            )

    async def wait_flattened(self) -> None:
        """Until the closes the hold timeout started have been placed (or failed)."""
        await asyncio.gather(*self._flattening, return_exceptions=True)

    async def _event(
        self,
        kind: str,
        detail: dict[str, object],
        *,
        level: EventLevel = "info",
        symbol: str | None = None,
        strategy: str | None = None,
    ) -> LiveEventRow:
        event = LiveEventRow(
            at=datetime.now(UTC),
            level=level,
            kind=kind,
            symbol=symbol,
            strategy=strategy,
            detail=detail,
            who=WHO,
        )
        await self._live.append_event(event)
        return event

    # -- the API's view -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """State, limits, the values the last round saw, the last transitions."""
        now = self._clock.time_ms()
        state, view, limits = self.state, self.view, self.limits
        ages = {
            f"{symbol}:{name}": now - at for (symbol, name), at in sorted(view.inputs_at.items())
        }
        return {
            "state": state.state,
            "paused": self._paused(),
            "rule": state.rule,
            "reason": state.reason,
            "values": _plain(state.values),
            "since_ms": state.since_ms,
            "resume_after_ms": state.resume_after_ms,
            "breaks_today": state.breaks_today,
            "refusals": dict(state.refusals),
            "limits": {
                "max_positions": limits.max_positions,
                "max_positions_per_symbol": limits.max_positions_per_symbol,
                "daily_loss_r": limits.daily_loss_r,
                "daily_loss_usd": limits.daily_loss_usd,
                "unrealised_loss_usd": limits.unrealised_loss_usd,
                "balance_floor_usd": limits.balance_floor_usd,
                "reduce_at": limits.reduce_at,
                "max_tape_age_ms": limits.max_tape_age_ms,
                "max_premium_index_age_ms": limits.max_premium_index_age_ms,
                "max_indicator_age_ms": limits.max_indicator_age_ms,
                "max_user_stream_age_ms": limits.max_user_stream_age_ms,
                "hold_timeout_ms": limits.hold_timeout_ms,
                "cooldown_ms": limits.cooldown_ms,
                "flatten_on_halt": limits.flatten_on_halt,
            },
            "current": {
                "open_positions": view.open_positions,
                "positions": dict(view.positions),
                "daily_realised_r": view.daily_realised_r,
                "daily_realised_usd": view.daily_realised_usd,
                "unrealised_usd": view.unrealised_usd,
                "balance_usd": view.balance_usd,
                "user_stream_behind_ms": (
                    0
                    if view.user_stream_behind_since is None
                    else now - view.user_stream_behind_since
                ),
                "input_ages_ms": ages,
                "tape_holes": dict(view.holes),
            },
            "transitions": list(self.transitions),
        }


def _nonzero(positions: Mapping[str, Decimal]) -> dict[str, Decimal]:
    return {s: a for s, a in positions.items() if a}


def _plain(values: Mapping[str, object]) -> dict[str, object]:
    return {k: (float(v) if isinstance(v, Decimal) else v) for k, v in values.items()}


def _shown(event: LiveEventRow) -> dict[str, Any]:
    return {"at": event.at.isoformat(), "kind": event.kind, **event.detail}
