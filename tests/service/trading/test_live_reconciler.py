"""Reconciliation on the simulated exchange: orphans under each policy, a position of
ours whose stop went missing, a trade the exchange closed while nobody was driving it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import msgspec
import pytest

from arbengine.domain.live_rows import LiveEventRow
from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.clock import ManualClock
from arbengine.sim import SimServer
from arbengine.store.live_records import LiveRecords
from arbengine.trading.live_executor import LiveExecutor
from arbengine.trading.live_ids import parse_client_id
from arbengine.trading.live_reconcile import (
    AlertOrphan,
    CloseWithFills,
    FlattenOrphan,
    MarkOrderGone,
    OpenPending,
    OrphanPolicy,
    ProtectOrphan,
    RestoreStop,
    SettlePending,
)
from arbengine.trading.live_reconciler import LiveReconciler, ReconcileSettings
from arbengine.trading.live_trade import TradeState
from tests.service.sim.simclient import control, signed
from tests.service.trading.conftest import (
    RISK_USD,
    a_signal,
    advance,
    make_executor,
    open_algos,
    positions,
)
from tests.support.waiting import eventually


async def events_of(records: LiveRecords) -> list[LiveEventRow]:
    now = datetime.now(UTC)
    return await records.events_between(now - timedelta(hours=1), now + timedelta(hours=1))


def reconciler(
    rest: BinanceRest, records: LiveRecords, policy: OrphanPolicy = "protect"
) -> LiveReconciler:
    return LiveReconciler(rest, records, ReconcileSettings(policy, RISK_USD))


async def orphan(http: aiohttp.ClientSession, sim: SimServer, side: str, qty: str) -> None:
    await control(
        http, sim, "account", {"orphan": {"symbol": "BTCUSDT", "side": side, "quantity": qty}}
    )


async def killed_while_sending(
    http: aiohttp.ClientSession,
    sim: SimServer,
    executor: LiveExecutor,
    on: str,
    until: Callable[[], Awaitable[object]],
) -> None:
    """The executor trades a signal and its process ends while an order (``on``: the
    entry's ``order``, or an ``algo`` order) is on its way, once ``until`` holds: the
    call is held unanswered, the executor stopped there, the call then cut unplaced."""
    path = "/fapi/v1/order" if on == "order" else "/fapi/v1/algoOrder"
    await control(http, sim, "faults", {"hang": {"seconds": 60, "scope": "rest", "path": path}})
    driving = asyncio.create_task(executor.on_signal(await a_signal(http, sim)))
    await eventually(until, 10, what="the executor stopped where wanted")
    driving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await driving
    await control(http, sim, "faults", {"clear": True, "order_drop": {"execute": False, "on": on}})

    async def cut() -> bool:
        return bool((await control(http, sim, "faults", {}))["order_drop"] == 0)

    await eventually(cut, 10, what="the held call cut")


async def entry_price(http: aiohttp.ClientSession, sim: SimServer) -> Decimal:
    _, rows, _ = await signed(http, sim, "GET", "/fapi/v3/positionRisk", {"symbol": "BTCUSDT"})
    return Decimal(rows[0]["entryPrice"])


async def test_an_orphan_under_protect_gets_a_stop_at_the_risk_distance_once(
    sim: SimServer, http: aiohttp.ClientSession, rest: BinanceRest, records: LiveRecords
) -> None:
    await orphan(http, sim, "BUY", "0.010")
    entry = await entry_price(http, sim)
    recon = reconciler(rest, records)

    [decision] = await recon.reconcile_once()

    assert isinstance(decision, ProtectOrphan)
    [stop] = await open_algos(http, sim)
    assert (stop["orderType"], stop["side"], stop["closePosition"]) == ("STOP_MARKET", "SELL", True)
    # 10 USD of loss on 0.010 BTC: 1 000 below the entry, up onto the 0.1 tick.
    assert Decimal(stop["triggerPrice"]) - (entry - 1000) < Decimal("0.1")
    assert Decimal(stop["triggerPrice"]) >= entry - 1000
    assert await positions(http, sim) == {"BTCUSDT": Decimal("0.010")}
    [event] = [e for e in await events_of(records) if e.kind.startswith("reconcile.")]
    assert (event.kind, event.detail["outcome"]) == ("reconcile.orphan_protected", "placed")
    stored = await records.order(stop["clientAlgoId"])
    assert stored is not None
    assert (stored.trade_id, stored.status) == (None, "NEW")
    assert await recon.reconcile_once() == []  # protected now: nothing more to do


async def test_an_orphan_under_flatten_is_closed_at_market(
    sim: SimServer, http: aiohttp.ClientSession, rest: BinanceRest, records: LiveRecords
) -> None:
    await orphan(http, sim, "SELL", "0.010")

    [decision] = await reconciler(rest, records, "flatten").reconcile_once()

    assert isinstance(decision, FlattenOrphan)
    assert await positions(http, sim) == {}
    kinds = [e.kind for e in await events_of(records)]
    assert kinds == ["reconcile.orphan_flattened"]


async def test_an_orphan_under_alert_is_only_reported(
    sim: SimServer, http: aiohttp.ClientSession, rest: BinanceRest, records: LiveRecords
) -> None:
    await orphan(http, sim, "BUY", "0.010")

    [decision] = await reconciler(rest, records, "alert").reconcile_once()

    assert isinstance(decision, AlertOrphan)
    assert await positions(http, sim) == {"BTCUSDT": Decimal("0.010")}
    assert await open_algos(http, sim) == []
    [event] = await events_of(records)
    assert (event.kind, event.level) == ("reconcile.orphan_found", "error")


async def test_dry_run_says_what_it_would_do_and_does_nothing(
    sim: SimServer, http: aiohttp.ClientSession, rest: BinanceRest, records: LiveRecords
) -> None:
    await orphan(http, sim, "BUY", "0.010")

    [decision] = await reconciler(rest, records, "flatten").reconcile_once(dry_run=True)

    assert isinstance(decision, FlattenOrphan)
    assert await positions(http, sim) == {"BTCUSDT": Decimal("0.010")}
    assert await events_of(records) == []


async def test_a_position_of_ours_whose_stop_is_gone_is_protected_again(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    trade_id = await executor.on_signal(await a_signal(http, sim))
    assert trade_id is not None
    trade = executor.trade(trade_id)
    assert trade is not None
    assert trade.stop_id is not None
    # The stop is cancelled behind our back (say, in the web UI) while nobody drives it.
    status, _, _ = await signed(
        http, sim, "DELETE", "/fapi/v1/algoOrder", {"clientAlgoId": trade.stop_id}
    )
    assert status == 200

    decisions = await reconciler(rest, records).reconcile_once()

    restored = [d for d in decisions if isinstance(d, RestoreStop)]
    assert [d.trade_id for d in restored] == [trade_id]
    stops = [a for a in await open_algos(http, sim) if a["orderType"] == "STOP_MARKET"]
    assert [s["clientAlgoId"] for s in stops] == [restored[0].order.client_algo_id]
    parsed = parse_client_id(stops[0]["clientAlgoId"])
    assert parsed is not None
    assert (parsed.role, parsed.replacement) == ("sl", 1)
    assert trade.plan is not None
    assert Decimal(stops[0]["triggerPrice"]) == trade.plan.stop_loss
    old = await records.order(trade.stop_id)
    assert old is not None
    assert old.status == "CANCELED"


@pytest.mark.parametrize("driven", [False, True])
async def test_a_trade_the_exchange_closed_is_closed_with_its_fills(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    records: LiveRecords,
    executor: LiveExecutor,
    driven: bool,
) -> None:
    trade_id = await executor.on_signal(await a_signal(http, sim))
    assert trade_id is not None
    trade = executor.trade(trade_id)
    assert trade is not None
    # Closed by hand on the exchange.
    await orphan(http, sim, "SELL", str(trade.sized.qty))
    recon = LiveReconciler(
        rest,
        records,
        ReconcileSettings("protect", RISK_USD),
        driven=lambda: executor.trade_ids if driven else frozenset(),
    )

    decisions = await recon.reconcile_once()

    stored = await records.trade(trade_id)
    assert stored is not None
    if driven:  # the executor's own: left to it
        assert decisions == []
        assert stored.status == "open"
        return
    assert CloseWithFills(trade_id, "BTCUSDT") in decisions
    assert stored.status == "closed"
    assert stored.exit_reason == "exchange"
    assert sum(f.quantity for f in stored.exit_fills) == pytest.approx(float(trade.sized.qty))
    assert stored.realised_usd is not None
    assert stored.fees > 0
    assert await open_algos(http, sim) == []  # its stop and take-profits cancelled
    assert await records.open_orders() == []


async def test_run_reconciles_at_start_and_again_every_interval(
    sim: SimServer, http: aiohttp.ClientSession, rest: BinanceRest, records: LiveRecords
) -> None:
    await orphan(http, sim, "BUY", "0.010")
    recon = LiveReconciler(rest, records, ReconcileSettings("protect", RISK_USD, interval_s=0.05))
    stop = asyncio.Event()
    task = asyncio.create_task(recon.run(stop))

    async def protections() -> list[LiveEventRow]:
        return [e for e in await events_of(records) if e.kind == "reconcile.orphan_protected"]

    try:
        [first] = await eventually(protections, what="the start-up round")
        # Its stop removed behind our back: a later round gives it one again.
        status, _, _ = await signed(
            http, sim, "DELETE", "/fapi/v1/algoOrder", {"clientAlgoId": first.detail["client_id"]}
        )
        assert status == 200
        await eventually(lambda: _at_least(protections, 2), what="a later round")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    assert len(await open_algos(http, sim)) == 1


async def _at_least(check: Callable[[], Awaitable[list[LiveEventRow]]], n: int) -> bool:
    return len(await check()) >= n


async def test_after_tp1_the_breakeven_stop_is_restored(
    sim: SimServer,
    http: aiohttp.ClientSession,
    market_time: ManualClock,
    rest: BinanceRest,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    trade_id = await executor.on_signal(await a_signal(http, sim))
    assert trade_id is not None
    await control(http, sim, "market", {"symbol": "BTCUSDT", "shock_bps": 100})  # past TP1
    await advance(sim, market_time, 2_000)
    await executor.poll_once()
    trade = executor.trade(trade_id)
    assert trade is not None
    assert trade.state == TradeState.BREAKEVEN
    assert trade.plan is not None
    assert trade.stop_id is not None
    status, _, _ = await signed(
        http, sim, "DELETE", "/fapi/v1/algoOrder", {"clientAlgoId": trade.stop_id}
    )
    assert status == 200

    [restored] = [
        d for d in await reconciler(rest, records).reconcile_once() if isinstance(d, RestoreStop)
    ]

    [stop] = [a for a in await open_algos(http, sim) if a["orderType"] == "STOP_MARKET"]
    assert stop["clientAlgoId"] == restored.order.client_algo_id
    assert Decimal(stop["triggerPrice"]) == trade.plan.breakeven_stop
    assert stop["closePosition"] is False
    assert Decimal(stop["quantity"]) == trade.position
    assert await positions(http, sim) == {"BTCUSDT": trade.position}


async def test_a_pending_trade_with_a_position_is_protected_and_written_open(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    # The executor's process ends between the entry's fill and its stop.
    await killed_while_sending(http, sim, executor, "algo", lambda: positions(http, sim))
    [pending] = await records.open_trades()
    assert pending.status == "pending"
    assert pending.id is not None
    assert await open_algos(http, sim) == []

    decisions = await reconciler(rest, records).reconcile_once()

    assert [type(d) for d in decisions if not isinstance(d, MarkOrderGone)] == [RestoreStop]
    [stop] = await open_algos(http, sim)
    orders = {o.role: o for o in await records.orders_of_trade(pending.id) if o.role != "sl"}
    first_stop = next(o for o in await records.orders_of_trade(pending.id) if o.role == "sl")
    assert Decimal(stop["triggerPrice"]) == Decimal(str(first_stop.trigger_price))
    opened = await records.trade(pending.id)
    assert opened is not None
    entry = orders["entry"]
    assert (opened.status, opened.quantity, opened.entry_price) == (
        "open",
        entry.filled_quantity,
        entry.average_price,
    )
    assert opened.stop_price == first_stop.trigger_price
    assert [f.client_order_id for f in opened.entry_fills] == [entry.client_order_id]
    assert opened.opened_at is not None
    [restored] = [e for e in await events_of(records) if e.kind == "reconcile.stop_restored"]
    assert (restored.detail["trade_id"], restored.detail["opened"]) == (pending.id, True)


async def test_a_pending_trade_whose_stop_stands_is_written_open(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    trade_id = await executor.on_signal(await a_signal(http, sim))
    assert trade_id is not None
    trade = executor.trade(trade_id)
    assert trade is not None
    assert trade.plan is not None
    # As a process killed after protecting the position, before writing it open, left it.
    written = await records.trade(trade_id)
    assert written is not None
    await records.upsert_trade(
        msgspec.structs.replace(
            written, status="pending", entry_price=None, entry_fills=[], opened_at=None
        )
    )

    decisions = await reconciler(rest, records).reconcile_once()

    assert [type(d) for d in decisions] == [OpenPending]
    opened = await records.trade(trade_id)
    assert opened is not None
    assert (opened.status, opened.entry_price, opened.stop_price) == (
        "open",
        float(trade.orders[trade.entry_id].avg_price),
        float(trade.plan.stop_loss),
    )
    assert len(opened.entry_fills) == 1
    assert len(await open_algos(http, sim)) == 3  # nothing placed or cancelled


async def test_a_pending_trade_whose_entry_never_got_there_is_not_opened(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    async def entry_sent() -> bool:
        return bool(await records.open_trades())

    await killed_while_sending(http, sim, executor, "order", entry_sent)
    [pending] = await records.open_trades()
    assert pending.id is not None

    decisions = await reconciler(rest, records).reconcile_once()

    assert SettlePending(pending.id, "BTCUSDT") in decisions
    settled = await records.trade(pending.id)
    assert settled is not None
    assert (settled.status, settled.exit_reason) == ("not_opened", "entry_failed")
    [entry] = await records.orders_of_trade(pending.id)
    assert entry.status == "NOT_FOUND"
    assert await positions(http, sim) == {}
    # The symbol is free again for the next signal.
    later = msgspec.structs.replace(await a_signal(http, sim), tick_ms=pending.signal_tick + 60_000)
    assert await make_executor(rest, records).on_signal(later) is not None


async def test_a_pending_trade_opened_and_ended_while_nobody_drove_it_is_closed(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    await killed_while_sending(http, sim, executor, "algo", lambda: positions(http, sim))
    [pending] = await records.open_trades()
    assert pending.id is not None
    # Closed by hand (the web UI) before any reconciliation.
    [(symbol, amount)] = (await positions(http, sim)).items()
    close = {"symbol": symbol, "side": "SELL", "type": "MARKET", "quantity": str(amount),
             "reduceOnly": "true"}  # fmt: skip
    assert (await signed(http, sim, "POST", "/fapi/v1/order", close))[0] == 200

    decisions = await reconciler(rest, records).reconcile_once()

    assert SettlePending(pending.id, symbol) in decisions
    closed = await records.trade(pending.id)
    assert closed is not None
    assert (closed.status, closed.exit_reason) == ("closed", "exchange")
    assert closed.entry_price is not None
    assert [f.quantity for f in closed.exit_fills] == [float(amount)]
    assert closed.realised_usd is not None


async def test_a_stop_while_a_round_reads_ends_it_at_once_with_nothing_done(
    sim: SimServer, http: aiohttp.ClientSession, rest: BinanceRest, records: LiveRecords
) -> None:
    await orphan(http, sim, "BUY", "0.010")
    # The exchange holds the round's first read (as it would wait for the next minute's
    # request weight): a shutdown must not wait the read out.
    hang = {"seconds": 600, "scope": "rest", "path": "/fapi/v3/positionRisk"}
    await control(http, sim, "faults", {"hang": hang})
    recon = LiveReconciler(rest, records, ReconcileSettings("protect", RISK_USD))
    stop = asyncio.Event()
    task = asyncio.create_task(recon.run(stop))

    async def reading() -> bool:
        return rest.budget.inflight > 0

    try:
        await eventually(reading, what="the read on its way")
        stop.set()
        await asyncio.wait_for(task, timeout=10)  # the held read is 600 s
    finally:
        await control(http, sim, "faults", {"clear": True})
        task.cancel()
    assert await open_algos(http, sim) == []  # the orphan was not acted on
    assert [e for e in await events_of(records) if e.kind.startswith("reconcile.")] == []
