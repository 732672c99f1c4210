"""Emergency controls carried out on the simulated exchange (real sockets) with the real
PostgreSQL: each command's answer and resulting state, its ``live_commands`` row and its
``control.*`` event; flatten verified at zero with nothing left open; cancel-all keeping
the stops of open positions; two flattens at once closing each position once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from arbengine.domain.control_rows import ControlAck, ControlCommand, ControlRequest
from arbengine.exchange.rest import BinanceRest
from arbengine.settings import DatabaseSettings, LiveSettings
from arbengine.sim import SimServer
from arbengine.store.control_commands import ControlCommands
from arbengine.store.database import Database, open_database
from arbengine.store.live_records import LiveRecords
from arbengine.trading.live_controls import LiveControls
from arbengine.trading.live_executor import LiveExecutor
from arbengine.trading.live_service import LiveConfigFollower
from tests.service.sim.simclient import control, signed
from tests.service.trading.conftest import a_signal, open_algos, positions

WHO = "cli:tester"
ORPHAN_QTY = "0.100"
"""An ETHUSDT position another client opened (over the 100 USDT minimum notional)."""


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with open_database(DatabaseSettings(url=database_url), owner=False) as database:
        yield database


@pytest.fixture
def controls(
    rest: BinanceRest, executor: LiveExecutor, records: LiveRecords, db: Database
) -> LiveControls:
    live = LiveSettings(strategies=["v52"], risk_per_trade_usd=10.0, max_positions=2)
    follower = LiveConfigFollower(executor, live, records.current_config, None)
    return LiveControls(
        rest, executor, follower, records, ControlCommands(db), verify_timeout_s=10.0
    )


async def run(
    controls: LiveControls, command: ControlCommand, symbol: str | None = None
) -> ControlAck:
    return await controls.submit(ControlRequest(command=command, who=WHO, symbol=symbol))


async def rows(db: Database, query: str, *args: object) -> list[dict[str, Any]]:
    async with db.acquire() as conn:
        return [dict(r) for r in await conn.fetch(query, *args)]


async def orphan(http: aiohttp.ClientSession, sim: SimServer, symbol: str, side: str) -> None:
    await control(http, sim, "account", {"orphan": {"symbol": symbol, "side": side,
                                                    "quantity": ORPHAN_QTY}})  # fmt: skip


async def stray_algo(
    http: aiohttp.ClientSession, sim: SimServer, symbol: str, client_id: str, *,
    away: Decimal = Decimal("0.5"), **extra: Any,
) -> None:  # fmt: skip
    """An algo order of no trade (placed by hand, say): ``away`` times the price."""
    price = Decimal(await sim_price(http, sim, symbol))
    params = {"algoType": "CONDITIONAL", "symbol": symbol, "side": "SELL",
              "type": "STOP_MARKET", "triggerPrice": str(round(price * away)),
              "clientAlgoId": client_id, **extra}  # fmt: skip
    status, body, _ = await signed(http, sim, "POST", "/fapi/v1/algoOrder", params)
    assert status == 200, body


async def sim_price(http: aiohttp.ClientSession, sim: SimServer, symbol: str) -> str:
    async with http.get(f"{sim.rest_url}/fapi/v1/ticker/price", params={"symbol": symbol}) as r:
        return str((await r.json())["price"])


async def closing_orders(http: aiohttp.ClientSession, sim: SimServer, symbol: str) -> list[Any]:
    """The reduce-only MARKET orders the sim has for ``symbol``."""
    _, found, _ = await signed(http, sim, "GET", "/fapi/v1/allOrders", {"symbol": symbol})
    return [o for o in found if o["reduceOnly"] and o["type"] == "MARKET"]


async def test_pause_twice_then_resume_writes_one_pause_and_audits_every_command(
    controls: LiveControls, executor: LiveExecutor, db: Database
) -> None:
    first = await run(controls, "pause")
    again = await run(controls, "pause")
    resumed = await run(controls, "resume")

    assert (first.status, first.result) == (
        "done",
        "paused: no new entries, open trades still driven",
    )
    assert first.state is not None
    assert first.state.paused is True
    assert (again.status, again.result) == ("done", "already paused")
    assert resumed.state is not None
    assert resumed.state.paused is False
    assert executor.settings.paused is False
    configs = await rows(db, "SELECT paused, changed_by FROM live_config ORDER BY id")
    assert configs == [{"paused": True, "changed_by": WHO}, {"paused": False, "changed_by": WHO}]
    commands = await rows(db, "SELECT * FROM live_commands ORDER BY requested_at")
    assert [(c["command"], c["status"], c["who"]) for c in commands] == [
        ("pause", "done", WHO), ("pause", "done", WHO), ("resume", "done", WHO)
    ]  # fmt: skip
    assert all(c["acked_at"] is not None and c["finished_at"] is not None for c in commands)
    assert commands[1]["result"] == "already paused"
    events = await rows(db, "SELECT kind, who, detail FROM live_events WHERE kind LIKE "
                        "'control.%' ORDER BY id")  # fmt: skip
    assert [e["kind"] for e in events] == ["control.pause", "control.pause", "control.resume"]
    assert {e["who"] for e in events} == {WHO}


async def test_flatten_one_symbol_closes_its_trade_and_verifies_zero(
    controls: LiveControls,
    executor: LiveExecutor,
    records: LiveRecords,
    sim: SimServer,
    http: aiohttp.ClientSession,
    db: Database,
) -> None:
    trade_id = await executor.on_signal(await a_signal(http, sim))
    assert trade_id is not None
    await orphan(http, sim, "ETHUSDT", "BUY")

    ack = await run(controls, "flatten", "BTCUSDT")
    assert (ack.status, ack.detail["trades"], ack.detail["orphans"]) == (
        "requested",
        [trade_id],
        {},
    )
    assert ack.state is not None
    assert {p.symbol for p in ack.state.positions} == {"BTCUSDT", "ETHUSDT"}
    [done] = await controls.settled()

    assert (done.status, done.result, done.detail["flat"]) == ("done", "flat: verified zero", True)
    assert await positions(http, sim) == {
        "ETHUSDT": Decimal(ORPHAN_QTY)
    }  # the other symbol's stays
    assert [a for a in await open_algos(http, sim) if a["symbol"] == "BTCUSDT"] == []
    trade = await records.trade(trade_id)
    assert trade is not None
    assert (trade.status, trade.exit_reason) == ("closed", "manual_flatten")
    assert executor.settings.paused is False  # one symbol: entries go on
    [row] = await rows(db, "SELECT * FROM live_commands")
    assert (row["status"], row["symbol"]) == ("done", "BTCUSDT")
    [event] = await rows(db, "SELECT * FROM live_events WHERE kind = 'control.flatten'")
    assert event["who"] == WHO
    assert '"flat": true' in event["detail"]


async def test_flatten_all_closes_an_orphan_and_a_trade_cancels_the_orphans_stop_and_pauses(
    controls: LiveControls,
    executor: LiveExecutor,
    records: LiveRecords,
    sim: SimServer,
    http: aiohttp.ClientSession,
    db: Database,
) -> None:
    trade_id = await executor.on_signal(await a_signal(http, sim))
    assert trade_id is not None
    await orphan(http, sim, "ETHUSDT", "BUY")
    # Its stop, placed by hand as reduce-only (a closePosition one ends with the position).
    await stray_algo(http, sim, "ETHUSDT", "manual-stop-eth", quantity=ORPHAN_QTY,
                     reduceOnly="true")  # fmt: skip

    ack = await run(controls, "flatten")
    assert ack.status == "requested"
    assert ack.detail["orphans"] == {"ETHUSDT": ORPHAN_QTY}
    [done] = await controls.settled()

    assert done.status == "done"
    assert done.state is not None
    assert (done.state.positions, done.state.open_orders, done.state.paused) == ([], 0, True)
    assert await positions(http, sim) == {}
    assert await open_algos(http, sim) == []
    assert done.detail["cancelled"] == ["manual-stop-eth"]
    [close] = await closing_orders(http, sim, "ETHUSDT")
    assert close["clientOrderId"].startswith("acf")
    assert close["side"] == "SELL"
    stored = await records.order(close["clientOrderId"])
    assert stored is not None
    assert (stored.role, stored.status) == ("flatten", "FILLED")
    trade = await records.trade(trade_id)
    assert trade is not None
    assert trade.exit_reason == "manual_flatten"

    # Idempotent: flat already, nothing sent.
    again = await run(controls, "flatten")
    assert (again.status, again.result) == ("done", "already flat: no position on the account")
    assert len(await closing_orders(http, sim, "ETHUSDT")) == 1


async def test_the_breakers_flatten_all_says_risk_halt_and_does_not_pause(
    controls: LiveControls, executor: LiveExecutor, records: LiveRecords, sim: SimServer,
    http: aiohttp.ClientSession,
) -> None:  # fmt: skip
    trade_id = await executor.on_signal(await a_signal(http, sim))
    assert trade_id is not None

    ack = await controls.flatten_all("risk_halt", "risk")
    [done] = await controls.settled()

    assert (ack.who, done.status) == ("risk", "done")
    trade = await records.trade(trade_id)
    assert trade is not None
    assert trade.exit_reason == "risk_halt"
    # The guard's HALTED state holds entries and resumes by itself: no manual pause set.
    assert executor.settings.paused is False


async def test_two_flattens_at_once_send_one_close_per_position(
    controls: LiveControls, executor: LiveExecutor, sim: SimServer, http: aiohttp.ClientSession,
    db: Database,
) -> None:  # fmt: skip
    trade_id = await executor.on_signal(await a_signal(http, sim))
    assert trade_id is not None
    await orphan(http, sim, "ETHUSDT", "SELL")
    # Orders held for a second: each later flatten reads the position still open while
    # the first one's close is on its way.
    await control(
        http, sim, "faults", {"hang": {"seconds": 1, "scope": "rest", "path": "/fapi/v1/order"}}
    )

    acks = await asyncio.gather(run(controls, "flatten", "ETHUSDT"), run(controls, "flatten"),
                                run(controls, "flatten", "ETHUSDT"),
                                run(controls, "flatten", "BTCUSDT"))  # fmt: skip
    assert [a.status for a in acks] == ["requested"] * 4
    finished = await controls.settled()

    assert [f.status for f in finished] == ["done"] * 4
    assert await positions(http, sim) == {}
    assert len(await closing_orders(http, sim, "ETHUSDT")) == 1
    assert len(await closing_orders(http, sim, "BTCUSDT")) == 1
    # Nothing more was even sent (a second reduce-only close would be refused, not filled).
    sent = await rows(db, "SELECT client_order_id, status FROM live_orders WHERE role = "
                      "'flatten'")  # fmt: skip
    assert [r["status"] for r in sent] == ["FILLED", "FILLED"], sent


async def test_cancel_all_cancels_what_protects_no_position_and_keeps_the_stops(
    controls: LiveControls, executor: LiveExecutor, sim: SimServer, http: aiohttp.ClientSession,
    db: Database,
) -> None:  # fmt: skip
    trade_id = await executor.on_signal(await a_signal(http, sim))
    trade = executor.trade(trade_id or 0)
    assert trade is not None
    await orphan(http, sim, "ETHUSDT", "BUY")
    await stray_algo(http, sim, "ETHUSDT", "manual-stop-eth", closePosition="true")
    await stray_algo(http, sim, "ETHUSDT", "manual-tp-eth", type="TAKE_PROFIT_MARKET",
                     quantity="0.050", reduceOnly="true", away=Decimal(2))  # fmt: skip
    # A take-profit on BTCUSDT of no trade: no stop, it protects nothing.
    await stray_algo(http, sim, "BTCUSDT", "leftover-btc", type="TAKE_PROFIT_MARKET",
                     quantity="0.002", reduceOnly="true", away=Decimal(2))  # fmt: skip
    before = {a["clientAlgoId"] for a in await open_algos(http, sim)}

    ack = await run(controls, "cancel_all")

    left = {a["clientAlgoId"] for a in await open_algos(http, sim)}
    assert left == set(trade.orders) & before | {"manual-stop-eth"}
    assert sorted(ack.detail["cancelled"]) == ["leftover-btc", "manual-tp-eth"]
    assert ack.status == "done"
    assert ack.state is not None
    assert (ack.state.paused, ack.state.open_orders) == (True, len(left))
    assert await positions(http, sim) == {
        "BTCUSDT": trade.sized.qty,
        "ETHUSDT": Decimal(ORPHAN_QTY),
    }
    again = await run(controls, "cancel_all")
    assert again.detail["cancelled"] == []
    assert again.result.startswith("cancelled 0 order(s)")
    [row, _] = await rows(db, "SELECT * FROM live_commands ORDER BY requested_at")
    assert (row["command"], row["status"], row["who"]) == ("cancel_all", "done", WHO)
