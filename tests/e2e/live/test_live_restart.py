"""Restarts with a live trade open. The daemon is killed (SIGKILL) after its entry filled
and before its stop stands: the next daemon resumes the trade and protects the position
at the trade's own stop under the stop's own id, the records say so, and the signal is
never entered again. The daemon is stopped (SIGTERM, a deploy) with a protected trade:
the next one resumes it and closes it by its stop."""

from __future__ import annotations

import json
import signal
from decimal import Decimal
from typing import Any

import aiohttp

from arbengine.sim.server import SimServer
from tests.e2e.collect.conftest import fault
from tests.e2e.live.conftest import fetch
from tests.service.sim.simclient import control, signed
from tests.support.daemon import DaemonProcess
from tests.support.waiting import eventually

ALGO_ORDER = "/fapi/v1/algoOrder"


async def sim_positions(sim: SimServer) -> dict[str, Decimal]:
    async with aiohttp.ClientSession() as http:
        status, rows, _ = await signed(http, sim, "GET", "/fapi/v3/positionRisk")
    assert status == 200, rows
    return {r["symbol"]: Decimal(r["positionAmt"]) for r in rows if Decimal(r["positionAmt"])}


async def algos_of(sim: SimServer, symbol: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        status, rows, _ = await signed(
            http, sim, "GET", "/fapi/v1/openAlgoOrders", {"symbol": symbol}
        )
    assert status == 200, rows
    assert isinstance(rows, list)
    return rows


async def entries_of(sim: SimServer, symbol: str) -> list[dict[str, Any]]:
    """The orders that opened rather than reduced, as the sim has them."""
    async with aiohttp.ClientSession() as http:
        status, rows, _ = await signed(http, sim, "GET", "/fapi/v1/allOrders", {"symbol": symbol})
    assert status == 200, rows
    return [r for r in rows if not r["reduceOnly"] and not r["closePosition"]]


async def test_a_position_left_unprotected_by_a_kill_is_protected_when_resumed(
    live_sim: SimServer, live_env: dict[str, str], database_url: str, spawn_daemon
) -> None:
    sim = live_sim
    # The executor's own one-trade-a-symbol check is what this test watches: the risk
    # guard's per-symbol limit (which would refuse the later signal first) is set above it.
    env = {**live_env, "ARB_RISK_MAX_POSITIONS_PER_SYMBOL": "2"}
    first: DaemonProcess = await spawn_daemon(env)
    await first.started()
    await first.wait_for("live.started")
    await first.wait_for("engine.warm_start")
    # Every algo order is held unanswered: the entry fills, its stop never gets there.
    await fault(sim, {"hang": {"seconds": 600, "scope": "rest", "path": ALGO_ORDER}})

    async def filled_and_bare() -> dict[str, Decimal]:
        end = sim.sim_time_ms + 5_000
        while sim.sim_time_ms < end:
            await sim.advance_to(min(end, sim.sim_time_ms + 500))
        # The records first (the sim's request weight is the daemon's, backfilling): the
        # entry filled, its stop written PENDING, so on its way (and held).
        if not await fetch(
            database_url,
            "SELECT 1 FROM live_orders e JOIN live_orders s USING (trade_id) WHERE e.role = "
            "'entry' AND e.status = 'FILLED' AND s.role = 'sl' AND s.status = 'PENDING'",
        ):
            return {}
        held = await sim_positions(sim)
        return held if held and all([await algos_of(sim, s) == [] for s in held]) else {}

    # The first signal waits for the 3 h backfill: seconds at the sim's weight limit
    # (engine_sim_config), longer on a loaded machine.
    held = await eventually(filled_and_bare, 240, interval=0.5, what="an entry filled, no stop")
    [(symbol, amount)] = held.items()
    await first.kill()
    # The held stop is let go now, and cut unplaced: the exchange never got it.
    await fault(sim, {"clear": True, "order_drop": {"count": 1, "execute": False, "on": "algo"}})

    async def drop_served() -> bool:
        return (await fault(sim, {}))["order_drop"] == 0

    await eventually(drop_served, 10, what="the held stop cut")
    assert await algos_of(sim, symbol) == []
    [trade] = await fetch(database_url, "SELECT * FROM live_trades")
    assert trade["symbol"] == symbol

    [first_stop] = await fetch(
        database_url,
        "SELECT client_order_id, trigger_price FROM live_orders WHERE role = 'sl' ORDER BY id",
    )  # the stop the first daemon sent, written PENDING, cut before it got there

    second: DaemonProcess = await spawn_daemon(env)
    await second.started()
    # The new executor drives the trade again from its records: the stop it left under
    # way is asked for by its id, not found, and placed (with the take-profits).
    resumed = await second.wait_for("live.trade.resumed", timeout=60)
    assert (resumed["trade_id"], resumed["state"]) == (trade["id"], "open_unprotected")
    protected = await second.wait_for("live.trade.protected", timeout=60)
    assert (protected["trade_id"], protected["stop"]) == (
        trade["id"],
        first_stop["client_order_id"],
    )

    # On the exchange: the one position, under one stop at the trade's own stop price.
    assert await sim_positions(sim) == {symbol: amount}
    algos = await algos_of(sim, symbol)
    [stop] = [a for a in algos if a["orderType"] == "STOP_MARKET"]
    exit_side = "SELL" if amount > 0 else "BUY"
    assert (stop["symbol"], stop["side"], stop["closePosition"]) == (symbol, exit_side, True)
    assert stop["clientAlgoId"] == first_stop["client_order_id"]
    assert Decimal(stop["triggerPrice"]) == Decimal(str(first_stop["trigger_price"]))

    async def written_open() -> list[Any]:
        # The row follows the log line: wait for the executor to have written it.
        return await fetch(database_url, "SELECT * FROM live_trades WHERE status = 'open'")

    [trade] = await eventually(written_open, 10, what="the trade written open")
    assert trade["stop_price"] == float(stop["triggerPrice"])  # the plan's stop, on the tick
    # The records: the trade is open with its entry; the stop that never got there was
    # known as such before it was placed under the same id.
    assert trade["status"] == "open"
    assert Decimal(str(trade["quantity"])) == abs(amount)
    assert trade["entry_price"] is not None
    orders = await fetch(
        database_url,
        "SELECT client_order_id, role, status, status_history::text AS history "
        "FROM live_orders WHERE trade_id = $1 ORDER BY id",
        trade["id"],
    )
    by_id = {o["client_order_id"]: o for o in orders}
    sl = by_id[stop["clientAlgoId"]]
    assert (sl["role"], sl["status"]) == ("sl", "NEW")
    statuses = [c["status"] for c in json.loads(sl["history"])]
    assert statuses == ["PENDING", "NOT_FOUND", "PENDING", "NEW"]
    assert [o["status"] for o in orders if o["role"] == "entry"] == ["FILLED"]
    assert sorted(o["role"] for o in orders) == ["entry", "sl", "tp1", "tp2"]
    # Reconciliation left the trade to the executor: it restored nothing.
    restored = await fetch(
        database_url, "SELECT kind FROM live_events WHERE kind = 'reconcile.stop_restored'"
    )
    assert restored == []

    # The new daemon's later signals on the symbol are not entered while the trade it
    # did not open itself is open there: never a second entry, never two trades netted.
    restart_ms = sim.sim_time_ms

    async def a_later_signal_handled() -> list:
        end = sim.sim_time_ms + 5_000
        while sim.sim_time_ms < end:
            await sim.advance_to(min(end, sim.sim_time_ms + 500))
        return await fetch(
            database_url,
            "SELECT detail->>'reason' AS reason FROM live_events WHERE kind = 'signal.skipped' "
            "AND symbol = $1 AND (detail->>'tick')::bigint > $2",
            symbol, restart_ms,
        )  # fmt: skip

    skipped = await eventually(a_later_signal_handled, 120, interval=0.5, what="a later signal")
    assert skipped[0]["reason"] == "symbol_has_open_trade"
    assert len(await entries_of(sim, symbol)) == 1
    assert (
        len(await fetch(database_url, "SELECT id FROM live_trades WHERE symbol = $1", symbol)) == 1
    )


async def test_a_protected_trade_left_by_a_deploy_is_resumed_and_closed_by_its_stop(
    live_sim: SimServer, live_env: dict[str, str], database_url: str, spawn_daemon
) -> None:
    sim = live_sim
    first: DaemonProcess = await spawn_daemon(live_env)
    await first.started()
    await first.wait_for("live.started")

    async def a_protected_trade() -> list:
        end = sim.sim_time_ms + 5_000
        while sim.sim_time_ms < end:
            await sim.advance_to(min(end, sim.sim_time_ms + 500))
        return await fetch(
            database_url,
            "SELECT t.id, t.symbol, t.direction, e.client_order_id AS entry_id "
            "FROM live_trades t JOIN live_orders s ON s.trade_id = t.id AND s.role = 'sl' "
            "JOIN live_orders e ON e.trade_id = t.id AND e.role = 'entry' "
            "WHERE t.status = 'open' AND s.status = 'NEW'",
        )

    # The first signal waits for the backfill: up to minutes on a loaded machine.
    [trade, *_] = await eventually(a_protected_trade, 240, interval=0.5, what="a protected trade")
    first.send(signal.SIGTERM)  # the trade stays on the exchange as it is
    assert await first.wait_exit(30) == 0  # every component ended in time, nothing unwritten
    symbol = trade["symbol"]
    assert len(await algos_of(sim, symbol)) == 3  # a deploy leaves the stop and take-profits

    second: DaemonProcess = await spawn_daemon(live_env)
    await second.started()
    resumed = await second.wait_for(
        lambda line: (
            line.get("event") == "live.trade.resumed" and line.get("trade_id") == trade["id"]
        ),
        timeout=60,
    )
    assert resumed["state"] == "protected"
    async with aiohttp.ClientSession() as http:  # the market goes through the stop
        await control(
            http, sim, "market", {"symbol": symbol, "shock_bps": -1000 * trade["direction"]}
        )

    async def closed() -> list:
        await sim.advance_to(sim.sim_time_ms + 1_000)
        return await fetch(
            database_url,
            "SELECT exit_reason, exit_fills::text AS fills FROM live_trades "
            "WHERE id = $1 AND status = 'closed'",
            trade["id"],
        )

    [row] = await eventually(closed, 120, interval=0.5, what="the resumed trade closed")
    assert row["exit_reason"] == "sl"
    assert [f["reason"] for f in json.loads(row["fills"])] == ["sl"]
    await second.wait_for("live.trade.closed")
    entries = [e for e in await entries_of(sim, symbol) if e["clientOrderId"] == trade["entry_id"]]
    assert len(entries) == 1
