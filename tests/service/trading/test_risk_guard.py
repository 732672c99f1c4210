"""The risk guard in front of the live executor, on the simulated exchange (real sockets,
manual clock) and the real PostgreSQL: each account limit trips with its reason from what
the exchange shows, the gate refuses the next entry, a breaker flattens, auto-resume
waits for the cooldown and for the admin's pause, a new process keeps the breaker."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from arbengine.domain.events import Signal
from arbengine.domain.live_rows import LiveEventRow, LiveTradeRow
from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.channels import Channel, OverflowPolicy
from arbengine.runtime.clock import ManualClock
from arbengine.settings import DatabaseSettings, LiveSettings
from arbengine.sim import SimServer
from arbengine.store.control_commands import ControlCommands
from arbengine.store.database import open_database
from arbengine.store.live_records import LiveRecords
from arbengine.store.risk_records import RiskRecords
from arbengine.trading.live_controls import LiveControls
from arbengine.trading.live_executor import LiveExecutor
from arbengine.trading.live_service import LiveConfigFollower, trade_signals
from arbengine.trading.live_trade import TradeState
from arbengine.trading.risk_inputs import MarketFreshness
from arbengine.trading.risk_rules import RiskLimits
from arbengine.trading.risk_service import (
    BreakerActions,
    FlattenThroughControls,
    LiveEventsPort,
    RiskService,
    TradedStrategy,
)
from tests.service.sim.simclient import control, signed
from tests.service.trading.conftest import a_signal, advance, open_algos, positions

LIMITS = RiskLimits(
    max_positions=3,
    max_positions_per_symbol=1,
    daily_loss_r=0.0,
    daily_loss_usd=0.0,
    unrealised_loss_usd=0.0,
    balance_floor_usd=0.0,
    max_user_stream_age_ms=10**12,  # no user stream here unless a test starts one
    cooldown_ms=10_000,
)
V52 = TradedStrategy("v52", frozenset({"BTCUSDT"}), frozenset(), 4 * 3_600_000)


@pytest.fixture
async def risk_records(database_url: str) -> AsyncIterator[RiskRecords]:
    async with open_database(DatabaseSettings(url=database_url), owner=False) as db:
        yield RiskRecords(db)


@dataclasses.dataclass
class Pause:
    """The admin's pause as the executor's settings hold it (``live_config``)."""

    on: bool = False


def guard(
    rest: BinanceRest,
    executor: LiveExecutor,
    records: LiveEventsPort,
    risk_records: RiskRecords,
    clock: ManualClock,
    *,
    pause: Pause | None = None,
    strategies: Iterable[TradedStrategy] = (V52,),
    freshness: MarketFreshness | None = None,
    actions: BreakerActions | None = None,
    **limits: Any,
) -> RiskService:
    pause = pause or Pause()
    return RiskService(
        rest,
        executor,
        records,
        risk_records,
        dataclasses.replace(LIMITS, **limits),
        strategies=lambda: strategies,
        paused=lambda: pause.on,
        freshness=freshness,
        rest_check_interval_s=0.0,  # REST at every round: the tests do not wait a minute
        clock=clock,
        actions=actions,
    )


async def risk_events(records: LiveRecords, kind: str | None = None) -> list[LiveEventRow]:
    events = await records.events_between(
        datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC)
    )
    return [e for e in events if e.kind.startswith("risk.") and kind in (None, e.kind)]


async def open_orders(http: aiohttp.ClientSession, sim: SimServer) -> list[dict[str, Any]]:
    _, rows, _ = await signed(http, sim, "GET", "/fapi/v1/openOrders")
    assert isinstance(rows, list)
    return rows


async def opened(executor: LiveExecutor, http: aiohttp.ClientSession, sim: SimServer) -> int:
    trade_id = await executor.on_signal(await a_signal(http, sim))
    assert trade_id is not None
    trade = executor.trade(trade_id)
    assert trade is not None
    assert trade.state == TradeState.PROTECTED
    return trade_id


async def move(
    sim: SimServer, http: aiohttp.ClientSession, market_time: ManualClock, bps: int
) -> None:
    await control(http, sim, "market", {"symbol": "BTCUSDT", "shock_bps": bps})
    await advance(sim, market_time, 2_000)


async def refused_entry(
    risk: RiskService, records: LiveRecords, signal: Signal, rule: str
) -> LiveEventRow:
    """The gate refuses ``signal`` by ``rule`` and records it."""
    assert not await risk.admit(signal)
    refusal = (await risk_events(records, "risk.entry_refused"))[-1]
    assert refusal.detail["rule"] == rule
    assert refusal.detail["tick"] == signal.tick_ms
    assert refusal.symbol == signal.symbol
    return refusal


async def test_daily_loss_from_a_losing_trade_halts_until_the_next_utc_day(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    risk_records: RiskRecords,
    executor: LiveExecutor,
) -> None:
    risk = guard(rest, executor, records, risk_records, market_time, daily_loss_r=0.9)
    await risk.load()
    assert await risk.check_once() is None
    signal = await a_signal(http, sim)
    assert await risk.admit(signal)  # the fault below is what trips it

    trade_id = await opened(executor, http, sim)
    await move(sim, http, market_time, -300)  # through the stop
    await executor.poll_once()
    stored = await records.trade(trade_id)
    assert stored is not None
    assert stored.exit_reason == "sl"
    assert stored.realised_r is not None
    assert stored.realised_r <= -0.9

    transition = await risk.check_once()
    assert transition is not None
    assert transition.breaks
    state = risk.state
    assert (state.state, state.rule) == ("HALTED", "daily_loss_r")
    assert state.values["lost"] == pytest.approx(-stored.realised_r)
    day = 86_400_000
    assert state.resume_after_ms == (market_time.time_ms() // day + 1) * day
    [changed] = await risk_events(records, "risk.state_changed")
    assert changed.level == "error"
    assert changed.detail["from"] == "ACTIVE"
    assert changed.detail["to"] == "HALTED"
    assert changed.detail["rule"] == "daily_loss_r"
    assert changed.detail["reason"]

    refusal = await refused_entry(risk, records, await a_signal(http, sim), "halted")
    assert refusal.detail["values"]["rule"] == "daily_loss_r"
    assert risk.state.refusals == {"halted": 1}
    stored_state = await risk_records.load_state()
    assert stored_state is not None
    assert stored_state.refusals == {"halted": 1}

    # A cooldown later the loss is still the day's: the breaker holds.
    await advance(sim, market_time, 20_000)
    assert await risk.check_once() is None
    assert risk.state.state == "HALTED"


async def test_unrealised_loss_from_a_moving_price_breaks_and_flattens_everything(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    risk_records: RiskRecords,
    executor: LiveExecutor,
) -> None:
    risk = guard(rest, executor, records, risk_records, market_time, unrealised_loss_usd=4.0)
    await risk.load()
    trade_id = await opened(executor, http, sim)
    assert await risk.check_once() is None
    assert risk.view.positions == {"BTCUSDT": 1}
    assert await open_algos(http, sim)  # its protection stands

    await move(sim, http, market_time, -50)  # a loss of about 2/3 R, short of the stop
    assert await positions(http, sim)
    transition = await risk.check_once()
    assert transition is not None
    assert (risk.state.state, risk.state.rule) == ("HALTED", "unrealised_loss_usd")
    assert risk.state.values["lost"] >= 4.0
    assert risk.view.unrealised_usd <= -4.0

    await executor.poll_once()
    assert await positions(http, sim) == {}
    assert await open_algos(http, sim) == []
    assert await open_orders(http, sim) == []
    assert executor.trade_ids == frozenset()
    stored = await records.trade(trade_id)
    assert stored is not None
    assert (stored.status, stored.exit_reason) == ("closed", "risk_halt")
    await refused_entry(risk, records, await a_signal(http, sim), "halted")


async def test_the_daemons_breaker_flattens_through_the_controls_orphans_included(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    risk_records: RiskRecords,
    executor: LiveExecutor,
    database_url: str,
) -> None:
    """As the daemon wires it: the break flattens through the emergency controls, so a
    position no trade drives is closed too, verified at zero and audited as ``risk``,
    and entries are left to the guard's state (no manual pause that would bar resuming)."""
    live = LiveSettings(strategies=["v52"], risk_per_trade_usd=10.0, max_positions=2)
    follower = LiveConfigFollower(executor, live, records.current_config, None)
    async with open_database(DatabaseSettings(url=database_url), owner=False) as db:
        controls = LiveControls(
            rest, executor, follower, records, ControlCommands(db), verify_timeout_s=10.0
        )
        risk = guard(rest, executor, records, risk_records, market_time,
                     actions=FlattenThroughControls(controls), balance_floor_usd=1000)  # fmt: skip
        await risk.load()
        trade_id = await opened(executor, http, sim)
        await control(http, sim, "account", {"orphan": {"symbol": "ETHUSDT", "side": "SELL",
                                                        "quantity": "0.500"}})  # fmt: skip
        assert set(await positions(http, sim)) == {"BTCUSDT", "ETHUSDT"}

        await control(http, sim, "account", {"balance": "900"})
        transition = await risk.check_once()
        assert transition is not None
        assert transition.breaks
        [verified] = await controls.settled()

        assert (verified.who, verified.status, verified.detail["flat"]) == ("risk", "done", True)
        assert await positions(http, sim) == {}
        assert await open_orders(http, sim) == []
        assert await open_algos(http, sim) == []
        stored = await records.trade(trade_id)
        assert stored is not None
        assert (stored.status, stored.exit_reason) == ("closed", "risk_halt")
        assert executor.settings.paused is False
        async with db.acquire() as conn:
            [command] = await conn.fetch("SELECT who, command, status FROM live_commands")
        assert tuple(command) == ("risk", "flatten", "done")
        await controls.stop()


async def test_balance_floor_halts_then_resumes_after_the_cooldown_not_during_a_pause(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    risk_records: RiskRecords,
    executor: LiveExecutor,
) -> None:
    pause = Pause()
    risk = guard(
        rest, executor, records, risk_records, market_time, pause=pause, balance_floor_usd=1000
    )
    await risk.load()
    assert await risk.check_once() is None

    await control(http, sim, "account", {"balance": "900"})
    transition = await risk.check_once()
    assert transition is not None
    assert (risk.state.state, risk.state.rule) == ("HALTED", "balance_floor")
    assert risk.state.values == {"balance": 900.0, "floor": 1000.0}
    since = risk.state.since_ms
    assert risk.state.resume_after_ms == since + 10_000
    await refused_entry(risk, records, await a_signal(http, sim), "halted")

    # Cleared, but within the cooldown: still halted.
    await control(http, sim, "account", {"balance": "5000"})
    await advance(sim, market_time, 5_000)
    assert await risk.check_once() is None
    # The cooldown over, but the admin has paused: still halted.
    pause.on = True
    await advance(sim, market_time, 6_000)
    assert await risk.check_once() is None
    assert risk.state.state == "HALTED"
    assert await risk_events(records, "risk.auto_resumed") == []
    # The pause lifted: resumed, and entries pass again.
    pause.on = False
    transition = await risk.check_once()
    assert transition is not None
    assert transition.auto_resumed
    assert risk.state.state == "ACTIVE"
    [resumed] = await risk_events(records, "risk.auto_resumed")
    assert resumed.detail["from"] == "HALTED"
    assert resumed.detail["to"] == "ACTIVE"
    assert resumed.detail["rule"] == "balance_floor"
    assert await risk.admit(await a_signal(http, sim))
    assert risk.state.breaks_today == 1


async def test_a_new_process_keeps_the_breaker(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    risk_records: RiskRecords,
    executor: LiveExecutor,
) -> None:
    first = guard(rest, executor, records, risk_records, market_time, balance_floor_usd=1000)
    await first.load()
    await control(http, sim, "account", {"balance": "900"})
    await first.check_once()
    assert first.state.state == "HALTED"
    await control(http, sim, "account", {"balance": "5000"})  # cleared, within the cooldown

    second = guard(rest, executor, records, risk_records, market_time, balance_floor_usd=1000)
    await second.load()
    assert second.state == first.state
    assert [t["to"] for t in second.transitions] == ["HALTED"]
    assert await second.check_once() is None
    assert second.state.state == "HALTED"
    await refused_entry(second, records, await a_signal(http, sim), "halted")


async def test_the_gate_stands_before_the_executor(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    risk_records: RiskRecords,
    executor: LiveExecutor,
) -> None:
    risk = guard(rest, executor, records, risk_records, market_time, balance_floor_usd=1000)
    await risk.load()
    await control(http, sim, "account", {"balance": "900"})
    await risk.check_once()
    signals: Channel[Signal] = Channel("live-signals", 4, OverflowPolicy.DROP_OLDEST)
    signal = await a_signal(http, sim)
    await signals.put(signal)
    signals.close()
    await asyncio.wait_for(trade_signals(signals, executor, gate=risk), 10)

    assert executor.trade_ids == frozenset()
    assert await positions(http, sim) == {}
    assert await records.trade_for_signal("v52", "BTCUSDT", signal.tick_ms) is None
    [refusal] = await risk_events(records, "risk.entry_refused")
    assert refusal.detail["rule"] == "halted"


async def test_the_position_limits_refuse_with_the_counts(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    risk_records: RiskRecords,
    executor: LiveExecutor,
) -> None:
    risk = guard(rest, executor, records, risk_records, market_time)
    await risk.load()
    await opened(executor, http, sim)
    await risk.check_once()
    refusal = await refused_entry(
        risk, records, await a_signal(http, sim), "max_positions_per_symbol"
    )
    assert refusal.detail["values"] == {"symbol": "BTCUSDT", "open": 1, "limit": 1}
    one = guard(rest, executor, records, risk_records, market_time, max_positions=1)
    await one.load()
    await one.check_once()
    refusal = await refused_entry(
        one, records, await a_signal(http, sim, symbol="ETHUSDT"), "max_positions"
    )
    assert refusal.detail["values"] == {"open": 1, "limit": 1}


async def test_a_trade_held_past_the_hold_timeout_is_closed_at_market(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    risk_records: RiskRecords,
    executor: LiveExecutor,
) -> None:
    risk = guard(rest, executor, records, risk_records, market_time, hold_timeout_ms=60_000)
    await risk.load()
    trade_id = await opened(executor, http, sim)
    stored = await records.trade(trade_id)
    assert stored is not None
    # Held 58 s since its signal's tick (the hold counts as the executor's max_hold does).
    await advance(sim, market_time, stored.signal_tick + 58_000 - market_time.time_ms())
    await risk.check_once()
    await risk.wait_flattened()
    assert await risk_events(records, "risk.hold_timeout") == []
    assert executor.trade(trade_id) is not None  # not yet

    await advance(sim, market_time, 3_000)
    await risk.check_once()
    await risk.wait_flattened()
    [timeout] = await risk_events(records, "risk.hold_timeout")
    assert timeout.detail["trade_id"] == trade_id
    assert timeout.detail["held_s"] >= 60
    await executor.poll_once()
    assert await positions(http, sim) == {}
    assert await open_algos(http, sim) == []
    assert await open_orders(http, sim) == []
    stored = await records.trade(trade_id)
    assert stored is not None
    assert (stored.status, stored.exit_reason) == ("closed", "hold_timeout")
    await risk.check_once()  # closed: no second timeout
    assert len(await risk_events(records, "risk.hold_timeout")) == 1


class RefusalFirst:
    """``LiveRecords`` whose write of a transition's event waits for a refusal's to be written:
    the round stands between storing its new state and putting it in force while the gate
    refuses an entry (as a signal arriving mid-round makes it)."""

    def __init__(self, records: LiveRecords) -> None:
        self._records = records
        self.transition_held = asyncio.Event()
        self._refusal_written = asyncio.Event()

    async def append_event(self, event: LiveEventRow) -> None:
        if event.kind == "risk.state_changed":
            self.transition_held.set()
            await self._refusal_written.wait()
        await self._records.append_event(event)
        if event.kind == "risk.entry_refused":
            self._refusal_written.set()

    async def open_trades(self) -> list[LiveTradeRow]:
        return await self._records.open_trades()

    async def events_between(
        self, start: datetime, end: datetime, symbol: str | None = None, limit: int | None = None
    ) -> list[LiveEventRow]:
        return await self._records.events_between(start, end, symbol, limit)


async def test_a_refusal_during_a_round_that_breaks_leaves_the_breaker_stored(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    market_time: ManualClock,
    records: LiveRecords,
    risk_records: RiskRecords,
    executor: LiveExecutor,
) -> None:
    events = RefusalFirst(records)
    first = guard(rest, executor, events, risk_records, market_time, balance_floor_usd=1000)
    await first.load()
    assert await first.check_once() is None
    await control(http, sim, "account", {"balance": "900"})

    round_ = asyncio.create_task(first.check_once())
    await asyncio.wait_for(events.transition_held.wait(), 10)
    # The round's view has the balance under the floor; the gate refuses by it.
    assert not await asyncio.wait_for(first.admit(await a_signal(http, sim)), 10)
    transition = await asyncio.wait_for(round_, 10)
    assert transition is not None
    assert transition.breaks

    stored = await risk_records.load_state()
    assert stored == first.state
    assert (stored.state, stored.rule) == ("HALTED", "balance_floor")
    assert stored.refusals == {"balance_floor": 1}
    second = guard(rest, executor, records, risk_records, market_time, balance_floor_usd=1000)
    await second.load()
    assert second.state == first.state
