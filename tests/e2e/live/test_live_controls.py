"""Emergency controls on a live daemon trading the simulated exchange, as an operator uses
them: ``arbengine live pause|resume|flatten [SYMBOL]|cancel-all`` in its own process
reaching the running daemon through the database, and the admin-only API routes; each
acknowledged with the resulting state, idempotent, audited; a command with no daemon to
take it fails at once and never fires later."""

from __future__ import annotations

import asyncio
import getpass
import sys
from decimal import Decimal
from typing import Any

import aiohttp
import orjson

from arbengine.sim.server import SimServer
from tests.conftest import REPO
from tests.e2e.live.conftest import fetch, open_algo_orders, registered_token, sim_account
from tests.e2e.test_live_cli import Result
from tests.service.sim.simclient import signed
from tests.support.daemon import DaemonProcess
from tests.support.waiting import eventually

CLI_WHO = f"cli:{getpass.getuser()}"
ROUTES = ("/api/live/pause", "/api/live/resume", "/api/live/cancel-all", "/api/live/flatten")


async def cli(env: dict[str, str], *args: str) -> Result:
    """``arbengine live …`` in its own process, while this loop serves the sim."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arbengine", "live", *args, env=env, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def orphan(sim: SimServer, symbol: str = "BTCUSDT") -> None:
    await sim_account(sim, {"orphan": {"symbol": symbol, "side": "BUY", "quantity": "0.010"}})


async def positions(sim: SimServer) -> dict[str, Decimal]:
    async with aiohttp.ClientSession() as http:
        _, rows, _ = await signed(http, sim, "GET", "/fapi/v3/positionRisk")
    return {r["symbol"]: Decimal(r["positionAmt"]) for r in rows if Decimal(r["positionAmt"])}


async def stray_take_profit(sim: SimServer, client_id: str) -> None:
    """A reduce-only take-profit of no trade, far above the price: it protects nothing."""
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sim.rest_url}/fapi/v1/ticker/price?symbol=BTCUSDT") as r:
            price = Decimal((await r.json())["price"])
        status, body, _ = await signed(http, sim, "POST", "/fapi/v1/algoOrder", {
            "algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
            "type": "TAKE_PROFIT_MARKET", "triggerPrice": str(round(price * 2)),
            "quantity": "0.005", "reduceOnly": "true", "clientAlgoId": client_id,
        })  # fmt: skip
    assert status == 200, body


async def closing_orders(sim: SimServer) -> list[Any]:
    async with aiohttp.ClientSession() as http:
        _, rows, _ = await signed(http, sim, "GET", "/fapi/v1/allOrders", {"symbol": "BTCUSDT"})
    return [o for o in rows if o["reduceOnly"] and o["type"] == "MARKET"]


async def post(api: str, path: str, token: str | None, body: Any = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{api}{path}", json=body, headers=headers) as reply,
    ):
        return reply.status, await reply.json()


async def command_row(database_url: str, command_id: str) -> dict[str, Any]:
    [row] = await fetch(database_url, "SELECT * FROM live_commands WHERE id = $1::uuid",
                        command_id)  # fmt: skip
    return dict(row)


async def test_every_control_from_the_cli_and_the_api_on_the_running_daemon(
    live_sim: SimServer,
    live_env: dict[str, str],
    database_url: str,
    spawn_daemon: Any,
) -> None:
    sim = live_sim
    env = {**live_env, "ARB_COLLECT_ENABLED": "false", "ARB_LIVE_ORPHAN_POLICY": "alert"}
    cli_env = {"PATH": "/usr/bin:/bin", **env}

    # No daemon: the command fails in one line, and is marked so that it never fires.
    lonely = await cli(cli_env, "pause")
    assert lonely.returncode == 1, lonely
    assert lonely.stderr.startswith("arbengine: live pause: no daemon acknowledged the command")
    assert len(lonely.stderr.strip().splitlines()) == 1
    [expired] = await fetch(database_url, "SELECT * FROM live_commands")
    assert (expired["status"], expired["who"]) == ("expired", CLI_WHO)

    daemon: DaemonProcess = await spawn_daemon(env)
    api = await daemon.started()
    started = await daemon.wait_for("live.started")
    assert started["paused"] is False
    await daemon.wait_for("control.listening")
    [still] = await fetch(database_url, "SELECT status FROM live_commands")
    assert still["status"] == "expired"  # the daemon did not take it late
    assert await fetch(database_url, "SELECT * FROM live_config") == []

    # pause, pause again, resume from the CLI: acknowledged with the state.
    paused = await cli(cli_env, "pause")
    assert paused.returncode == 0, paused
    assert paused.stdout == (
        "pause done: paused: no new entries, open trades still driven "
        "(paused; positions: none; open orders: 0)\n"
    )
    again = await cli(cli_env, "pause")
    assert again.stdout.startswith("pause done: already paused (paused;"), again
    resumed = await cli(cli_env, "resume", "--json")
    assert resumed.returncode == 0, resumed
    ack = orjson.loads(resumed.stdout)
    assert (ack["status"], ack["state"]["paused"], ack["who"]) == ("done", False, CLI_WHO)
    row = await command_row(database_url, ack["id"])
    assert (row["acked_at"] - row["requested_at"]).total_seconds() < 1.0
    configs = await fetch(database_url, "SELECT paused, changed_by FROM live_config ORDER BY id")
    assert [(c["paused"], c["changed_by"]) for c in configs] == [(True, CLI_WHO), (False, CLI_WHO)]

    # The admin routes: 401 without a token, 403 for a user, before the body is looked at.
    admin = await registered_token(api, database_url, admin=True)
    user = await registered_token(api, database_url)
    for path in ROUTES:
        status, body = await post(api, path, None, {"nonsense": 1})
        assert (status, body["error"]["code"]) == (401, "unauthorized"), path
        status, body = await post(api, path, user, {"nonsense": 1})
        assert (status, body["error"]["code"]) == (403, "forbidden"), path
    status, body = await post(api, "/api/live/flatten", admin, {"symbol": "BTCUSDT", "all": True})
    assert (status, body["error"]["field"]) == (400, "all")

    # cancel-all: the stray order goes, the orphan stays (flatten is for that), paused.
    await orphan(sim)
    await stray_take_profit(sim, "manual-tp-btc")
    status, cancelled = await post(api, "/api/live/cancel-all", admin)
    assert status == 200, cancelled
    assert (cancelled["status"], cancelled["detail"]["cancelled"]) == ("done", ["manual-tp-btc"])
    assert cancelled["state"] == {
        "paused": True, "positions": [{"symbol": "BTCUSDT", "amount": "0.010"}], "open_orders": 0,
    }  # fmt: skip
    assert cancelled["who"].startswith("admin:admin_")
    status, resumed_api = await post(api, "/api/live/resume", admin)
    assert (status, resumed_api["result"]) == (200, "resumed: entries allowed")
    status, again_api = await post(api, "/api/live/resume", admin)
    assert (status, again_api["result"]) == (200, "already running (not paused)")

    # flatten one symbol from the CLI, waiting for the verification: the orphan is closed.
    flat = await cli(cli_env, "flatten", "BTCUSDT", "--wait", "20")
    assert flat.returncode == 0, flat
    assert flat.stdout.startswith("flatten done: flat: verified zero (entries allowed; "
                                  "positions: none; open orders: 0)"), flat  # fmt: skip
    assert await positions(sim) == {}
    [closed] = await closing_orders(sim)
    assert closed["clientOrderId"].startswith("acf")

    # flatten everything, from the CLI and the API at once: one close, both complete.
    await orphan(sim)
    from_cli, (status, from_api) = await asyncio.gather(
        cli(cli_env, "flatten", "--json"), post(api, "/api/live/flatten", admin, {})
    )
    assert from_cli.returncode == 0, from_cli
    assert status in (200, 202), from_api

    async def both_done() -> list:
        rows = await fetch(database_url, "SELECT status FROM live_commands WHERE command = "
                           "'flatten' AND status IN ('done', 'failed')")  # fmt: skip
        return rows if len(rows) == 3 else []

    finished = await eventually(both_done, 30, what="both flattens completed")
    assert {r["status"] for r in finished} == {"done"}
    assert await positions(sim) == {}
    assert len(await closing_orders(sim)) == 2  # one per orphan, never two for one
    assert await open_algo_orders(sim) == []
    # Flattening everything paused entries; when flat it is done at once.
    status, when_flat = await post(api, "/api/live/flatten", admin, {"all": True})
    assert (status, when_flat["status"]) == (200, "done")
    assert when_flat["result"] == "already flat: no position on the account"
    assert when_flat["state"]["paused"] is True
    status, unknown = await post(api, "/api/live/flatten", admin, {"trade_id": 999})
    assert (status, unknown["error"]["code"]) == (404, "not_found")
    cli_ack = orjson.loads(from_cli.stdout)
    # Requested, or done when the API's flatten came first (or was verified by then).
    assert (cli_ack["command"], cli_ack["who"]) == ("flatten", CLI_WHO)
    assert cli_ack["status"] in ("requested", "done")
    assert cli_ack["state"]["positions"] in ([], [{"symbol": "BTCUSDT", "amount": "0.010"}])

    # pause through the API; cancel-all from the CLI.
    await post(api, "/api/live/resume", admin)
    status, paused_api = await post(api, "/api/live/pause", admin)
    assert (status, paused_api["status"], paused_api["state"]["paused"]) == (200, "done", True)
    assert paused_api["result"] == "paused: no new entries, open trades still driven"
    await stray_take_profit(sim, "manual-tp-2")
    swept = await cli(cli_env, "cancel-all")
    assert swept.returncode == 0, swept
    assert swept.stdout == (
        "cancel_all done: cancelled 1 order(s), kept 0 protecting positions; entries paused "
        "(paused; positions: none; open orders: 0)\n"
    )
    assert await open_algo_orders(sim) == []

    # The audit: every command with who, when, what and the result.
    rows = await fetch(database_url, "SELECT * FROM live_commands ORDER BY requested_at")
    assert [(r["command"], r["status"]) for r in rows] == [
        ("pause", "expired"), ("pause", "done"), ("pause", "done"), ("resume", "done"),
        ("cancel_all", "done"), ("resume", "done"), ("resume", "done"), ("flatten", "done"),
        *sorted([("flatten", "done"), ("flatten", "done")]), ("flatten", "done"),
        ("flatten", "failed"), ("resume", "done"), ("pause", "done"), ("cancel_all", "done"),
    ]  # fmt: skip
    assert all(r["result"] and r["requested_at"] for r in rows)
    # Each acknowledged within a second of being asked for.
    took = [(r["command"], (r["acked_at"] - r["requested_at"]).total_seconds()) for r in rows[1:]]
    assert all(s < 1.0 for _, s in took), took
    assert {r["who"] for r in rows} == {CLI_WHO} | {cancelled["who"]}
    events = await fetch(database_url, "SELECT kind, who FROM live_events WHERE kind LIKE "
                         "'control.%'")  # fmt: skip
    kinds = sorted(e["kind"] for e in events)
    assert kinds == sorted(["control.pause"] * 3 + ["control.resume"] * 4
                           + ["control.cancel_all"] * 2 + ["control.flatten"] * 5)  # fmt: skip
