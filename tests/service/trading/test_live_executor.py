"""The live executor on the simulated exchange: a signal becomes one protected position,
and an order fault never makes it two; the records say what happened."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import aiohttp
import msgspec
import pytest

from arbengine.domain.live_rows import LiveEventRow, LiveOrderRow
from arbengine.exchange.rest import BinanceRest
from arbengine.sim import SimServer
from arbengine.store.live_records import LiveRecords
from arbengine.trading.live_executor import LiveExecutor
from arbengine.trading.live_trade import TradeState
from tests.service.sim.simclient import control
from tests.service.trading.conftest import (
    a_signal,
    entry_orders,
    make_executor,
    open_algos,
    positions,
)


async def events_of(records: LiveRecords) -> list[LiveEventRow]:
    now = datetime.now(UTC)
    return await records.events_between(now - timedelta(hours=1), now + timedelta(hours=1))


def by_role(orders: list[LiveOrderRow]) -> dict[str, LiveOrderRow]:
    return {o.role: o for o in orders}


def history(order: LiveOrderRow) -> list[str]:
    return [change.status for change in order.status_history]


async def test_a_signal_becomes_a_position_protected_on_the_algo_endpoint(
    sim: SimServer, http: aiohttp.ClientSession, records: LiveRecords, executor: LiveExecutor
) -> None:
    signal = await a_signal(http, sim)
    trade_id = await executor.on_signal(signal)

    assert trade_id is not None
    trade = executor.trade(trade_id)
    assert trade is not None
    assert trade.state == TradeState.PROTECTED
    assert trade.plan is not None
    qty = trade.sized.qty
    assert await positions(http, sim) == {"BTCUSDT": qty}
    algos = {a["clientAlgoId"]: a for a in await open_algos(http, sim)}
    stop = algos[trade.stop_id or ""]
    assert (stop["orderType"], stop["side"], stop["closePosition"]) == (
        "STOP_MARKET",
        "SELL",
        True,
    )
    assert Decimal(stop["triggerPrice"]) == trade.plan.stop_loss
    kinds = sorted((a["orderType"], a["closePosition"]) for a in algos.values())
    assert kinds == [
        ("STOP_MARKET", True),
        ("TAKE_PROFIT_MARKET", False),  # TP1: half the position
        ("TAKE_PROFIT_MARKET", True),  # TP2: the rest
    ]

    orders = by_role(await records.orders_of_trade(trade_id))
    assert set(orders) == {"entry", "sl", "tp1", "tp2"}
    assert history(orders["entry"]) == ["PENDING", "FILLED"]
    assert orders["entry"].filled_quantity == float(qty)
    assert all(history(orders[r]) == ["PENDING", "NEW"] for r in ("sl", "tp1", "tp2"))
    stored = await records.trade(trade_id)
    assert stored is not None
    assert stored.status == "open"
    assert stored.entry_price == float(trade.orders[trade.entry_id].avg_price)
    kinds_logged = [e.kind for e in await events_of(records)]
    assert "trade.opened" in kinds_logged
    assert "trade.protected" in kinds_logged


async def test_the_same_signal_again_opens_nothing(
    sim: SimServer, http: aiohttp.ClientSession, records: LiveRecords, executor: LiveExecutor
) -> None:
    signal = await a_signal(http, sim)
    first = await executor.on_signal(signal)
    again = await executor.on_signal(signal)

    assert first is not None
    assert again is None
    assert len(await entry_orders(http, sim)) == 1


@pytest.mark.parametrize("fault", ["order_5xx", "order_drop"])
@pytest.mark.parametrize("execute", [True, False])
async def test_an_entry_of_unknown_outcome_is_asked_for_and_opens_one_position(
    sim: SimServer,
    http: aiohttp.ClientSession,
    records: LiveRecords,
    executor: LiveExecutor,
    fault: str,
    execute: bool,
) -> None:
    await control(http, sim, "faults", {fault: {"count": 1, "execute": execute}})
    signal = await a_signal(http, sim)
    trade_id = await executor.on_signal(signal)

    assert trade_id is not None
    trade = executor.trade(trade_id)
    assert trade is not None
    assert trade.state == TradeState.PROTECTED
    assert await positions(http, sim) == {"BTCUSDT": trade.sized.qty}
    assert len(await entry_orders(http, sim)) == 1
    entry = by_role(await records.orders_of_trade(trade_id))["entry"]
    if execute:  # it was placed: the query finds it filled, nothing is sent again
        assert history(entry) == ["PENDING", "UNKNOWN", "FILLED"]
    else:  # it never was: the query says so, and only then is it sent again, same id
        assert history(entry) == ["PENDING", "UNKNOWN", "NOT_FOUND", "PENDING", "FILLED"]
    kinds = [e.kind for e in await events_of(records)]
    assert kinds.count("order.outcome_unknown") == 1
    assert kinds.count("order.not_found") == (0 if execute else 1)


@pytest.mark.parametrize("code", [-2019, -4164, -1111])
async def test_a_refused_entry_opens_nothing_and_says_why(
    sim: SimServer,
    http: aiohttp.ClientSession,
    records: LiveRecords,
    executor: LiveExecutor,
    code: int,
) -> None:
    await control(http, sim, "faults", {"order_reject": {"count": 1, "code": code}})
    trade_id = await executor.on_signal(await a_signal(http, sim))

    assert trade_id is not None
    assert executor.trade(trade_id) is None  # over: nothing left to drive
    assert await positions(http, sim) == {}
    assert await open_algos(http, sim) == []
    orders = await records.orders_of_trade(trade_id)
    assert [(o.role, history(o)) for o in orders] == [("entry", ["PENDING", "REJECTED"])]
    assert str(code) in (orders[0].status_history[-1].note or "")
    stored = await records.trade(trade_id)
    assert stored is not None
    assert (stored.status, stored.exit_reason) == ("not_opened", "entry_rejected")
    rejected = [e for e in await events_of(records) if e.kind == "order.rejected"]
    assert [e.detail["code"] for e in rejected] == [code]


async def test_a_clock_refusal_resyncs_and_places_the_entry_once(
    sim: SimServer, http: aiohttp.ClientSession, records: LiveRecords, executor: LiveExecutor
) -> None:
    await control(http, sim, "faults", {"order_reject": {"count": 1, "code": -1021}})
    trade_id = await executor.on_signal(await a_signal(http, sim))

    assert trade_id is not None
    trade = executor.trade(trade_id)
    assert trade is not None
    assert trade.state == TradeState.PROTECTED
    assert await positions(http, sim) == {"BTCUSDT": trade.sized.qty}
    assert len(await entry_orders(http, sim)) == 1
    kinds = [e.kind for e in await events_of(records)]
    assert kinds.count("order.clock_resync") == 1


async def test_a_signal_too_small_to_trade_is_skipped_with_its_reason(
    sim: SimServer, http: aiohttp.ClientSession, records: LiveRecords, executor: LiveExecutor
) -> None:
    signal = await a_signal(http, sim)
    # R = 1.5 · atr = 0.75 · price: 10 USD of risk is under one lot step of 0.001.
    wide = msgspec.structs.replace(signal, atr=signal.price / 2)

    assert await executor.on_signal(wide) is None
    assert await positions(http, sim) == {}
    skipped = [e for e in await events_of(records) if e.kind == "signal.skipped"]
    assert [e.detail["reason"] for e in skipped] == ["below_min_qty"]
    assert await records.trade_for_signal("v52", "BTCUSDT", signal.tick_ms) is None


async def test_an_entry_the_exchange_never_gets_is_given_up_after_its_attempts(
    sim: SimServer, http: aiohttp.ClientSession, records: LiveRecords, executor: LiveExecutor
) -> None:
    await control(http, sim, "faults", {"order_5xx": {"count": 3, "execute": False}})
    trade_id = await executor.on_signal(await a_signal(http, sim))

    assert trade_id is not None
    assert executor.trade(trade_id) is None
    assert await positions(http, sim) == {}
    assert await entry_orders(http, sim) == []
    entry = by_role(await records.orders_of_trade(trade_id))["entry"]
    assert history(entry) == ["PENDING", "UNKNOWN", "NOT_FOUND"] * 3
    stored = await records.trade(trade_id)
    assert stored is not None
    assert (stored.status, stored.exit_reason) == ("not_opened", "entry_failed")


@pytest.mark.parametrize("fault", ["order_5xx", "order_drop"])
async def test_protective_orders_of_unknown_outcome_are_found_not_doubled(
    sim: SimServer,
    http: aiohttp.ClientSession,
    records: LiveRecords,
    executor: LiveExecutor,
    fault: str,
) -> None:
    # The entry and its three algo orders: each placed, each unanswered (503, or cut).
    await control(http, sim, "faults", {fault: {"count": 4, "execute": True}})
    trade_id = await executor.on_signal(await a_signal(http, sim))

    assert trade_id is not None
    trade = executor.trade(trade_id)
    assert trade is not None
    assert trade.state == TradeState.PROTECTED
    assert len(await open_algos(http, sim)) == 3
    orders = by_role(await records.orders_of_trade(trade_id))
    assert history(orders["entry"]) == ["PENDING", "UNKNOWN", "FILLED"]
    for role in ("sl", "tp1", "tp2"):
        assert history(orders[role]) == ["PENDING", "UNKNOWN", "NEW"]


async def test_a_stop_the_exchange_never_got_is_placed_again_under_its_id(
    sim: SimServer, http: aiohttp.ClientSession, records: LiveRecords, executor: LiveExecutor
) -> None:
    await control(
        http, sim, "faults", {"http_5xx": {"count": 1, "status": 503, "path": "/fapi/v1/algoOrder"}}
    )
    trade_id = await executor.on_signal(await a_signal(http, sim))

    assert trade_id is not None
    trade = executor.trade(trade_id)
    assert trade is not None
    assert trade.state == TradeState.PROTECTED
    stops = [a for a in await open_algos(http, sim) if a["orderType"] == "STOP_MARKET"]
    assert [s["clientAlgoId"] for s in stops] == [trade.stop_id]
    sl = by_role(await records.orders_of_trade(trade_id))["sl"]
    assert history(sl) == ["PENDING", "UNKNOWN", "NOT_FOUND", "PENDING", "NEW"]


async def test_a_restarted_executor_does_not_trade_a_signal_again(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    signal = await a_signal(http, sim)
    assert await executor.on_signal(signal) is not None
    restarted = make_executor(rest, records)

    assert await restarted.on_signal(signal) is None
    assert len(await entry_orders(http, sim)) == 1
    assert "signal.already_traded" in [e.kind for e in await events_of(records)]


async def test_one_trade_per_symbol_and_no_more_than_max_positions(
    sim: SimServer, http: aiohttp.ClientSession, rest: BinanceRest, records: LiveRecords
) -> None:
    executor = make_executor(rest, records, max_positions=1)
    btc = await a_signal(http, sim)
    assert await executor.on_signal(btc) is not None

    later = msgspec.structs.replace(btc, tick_ms=btc.tick_ms + 60_000)
    assert await executor.on_signal(later) is None
    assert await executor.on_signal(await a_signal(http, sim, symbol="ETHUSDT")) is None

    assert set(await positions(http, sim)) == {"BTCUSDT"}
    assert len(await entry_orders(http, sim)) == 1
    skipped = [e for e in await events_of(records) if e.kind == "signal.skipped"]
    assert [(e.symbol, e.detail["reason"]) for e in skipped] == [
        ("BTCUSDT", "symbol_has_open_trade"),
        ("ETHUSDT", "max_positions"),
    ]


async def test_a_restarted_executor_leaves_a_symbol_with_a_trade_open_in_the_records(
    sim: SimServer,
    http: aiohttp.ClientSession,
    rest: BinanceRest,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    signal = await a_signal(http, sim)
    assert await executor.on_signal(signal) is not None
    restarted = make_executor(rest, records, max_positions=2)

    # A later signal on the symbol: the open trade of the first process holds it.
    later = msgspec.structs.replace(signal, tick_ms=signal.tick_ms + 60_000)
    assert await restarted.on_signal(later) is None
    assert len(await entry_orders(http, sim)) == 1
    # It counts towards max_positions as well.
    small = make_executor(rest, records, max_positions=1)
    assert await small.on_signal(await a_signal(http, sim, symbol="ETHUSDT")) is None
    assert set(await positions(http, sim)) == {"BTCUSDT"}
    skipped = [e for e in await events_of(records) if e.kind == "signal.skipped"]
    assert [(e.symbol, e.detail["reason"], e.detail["tick"]) for e in skipped] == [
        ("BTCUSDT", "symbol_has_open_trade", later.tick_ms),
        ("ETHUSDT", "max_positions", signal.tick_ms),
    ]
