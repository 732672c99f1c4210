"""The live configuration changed while the daemon trades: an admin's ``PUT
/api/live/config`` is in force from the next signal (a pause stops new entries and says
so, an open trade stays protected; new strategies and risk size the next entry), and
SIGHUP reloads ``[live]`` of the settings file, ``live_config`` still overriding it (a
file naming an unknown strategy is refused, the previous kept). Then the admin flattens
the open trade through the API, as the README's walk-through does."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import aiohttp

from arbengine.domain.live_rows import LiveConfigRow
from arbengine.settings import DatabaseSettings
from arbengine.sim.server import SimServer
from arbengine.store.database import open_database
from arbengine.store.live_records import LiveRecords
from tests.conftest import REPO
from tests.e2e.engine.conftest import write_strategy
from tests.e2e.live.conftest import (
    LIVE_PROBE,
    LIVE_STRATEGY,
    fetch,
    open_algo_orders,
    registered_token,
)
from tests.service.sim.simclient import signed
from tests.support.daemon import DaemonProcess
from tests.support.waiting import eventually

OTHER_STRATEGY = "probe-twin"
"""The probe under another name: it fires on the same ticks."""


def settings_file(path: Path, live: str) -> Path:
    """The repository's settings with a ``[live]`` section of the test's own."""
    shipped = (REPO / "config" / "arbengine.toml").read_text()
    path.write_text(shipped[: shipped.index("[live]")] + "[live]\n" + live)
    return path


async def get_json(api: str, path: str, token: str) -> Any:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{api}{path}", headers={"Authorization": f"Bearer {token}"}) as reply,
    ):
        assert reply.status == 200, await reply.text()
        return await reply.json()


async def post_json(api: str, path: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{api}{path}", json=body, headers={"Authorization": f"Bearer {token}"}) as reply,
    ):
        return reply.status, await reply.json()


async def put_config(api: str, token: str, body: dict[str, Any]) -> int:
    async with (
        aiohttp.ClientSession() as http,
        http.put(
            f"{api}/api/live/config", json=body, headers={"Authorization": f"Bearer {token}"}
        ) as reply,
    ):
        return reply.status


async def test_the_live_config_applies_from_the_next_signal_and_sighup_reloads_the_file(
    live_sim: SimServer,
    live_env: dict[str, str],
    database_url: str,
    spawn_daemon,
    tmp_path: Path,
) -> None:
    sim = live_sim
    write_strategy(
        Path(live_env["ARB_ENGINE_STRATEGIES_DIR"]),
        {**LIVE_PROBE, "name": OTHER_STRATEGY},
        f"{OTHER_STRATEGY}.json",
    )
    async with open_database(DatabaseSettings(url=database_url), owner=False) as db:
        await LiveRecords(db).set_config(
            LiveConfigRow(
                strategies=[LIVE_STRATEGY], risk_per_trade_usd=10.0, max_positions=1,
                paused=True, changed_by="admin:setup",
            )
        )  # fmt: skip
    config = settings_file(tmp_path / "arbengine.toml", live_section(risk=10, leverage=20))
    env = {
        k: v for k, v in live_env.items() if k not in ("ARB_LIVE_STRATEGIES", "ARB_LIVE_LEVERAGE")
    }
    env["ARB_CONFIG"] = str(config)
    daemon: DaemonProcess = await spawn_daemon(env)
    api = await daemon.started()
    started = await daemon.wait_for("live.started")
    assert (started["strategies"], started["paused"]) == ([LIVE_STRATEGY], True)
    # The collectors and the executor talk to one host (the sim): one set of limits.
    assert started["rest_limits"] == "shared with the collectors"
    await daemon.wait_for("engine.warm_start")

    # SIGHUP: a [live] naming a strategy the engine does not run is refused ...
    settings_file(config, live_section(risk=10, leverage=20, strategy="nosuch"))
    daemon.send(signal.SIGHUP)
    refused = await daemon.wait_for("live.reload_failed")
    assert refused["error"].startswith("live.strategies: nosuch not among the loaded strategies")
    # ... a valid one is in force at once, the admin's live_config still overriding it.
    settings_file(config, live_section(risk=15, leverage=10))
    daemon.send(signal.SIGHUP)
    reloaded = await daemon.wait_for("live.config_applied")
    assert (reloaded["cause"], reloaded["source"]) == ("file", "live_config")
    assert (reloaded["leverage"], reloaded["risk_per_trade_usd"]) == (10, 10.0)
    assert reloaded["paused"] is True

    # Paused: the next signal of the live strategy is not traded, and says why.
    skip = (await eventually(lambda: paused_skips(sim, database_url), 120, interval=0.2,
                             what="a paused signal"))[0]  # fmt: skip
    assert skip["strategy"] == LIVE_STRATEGY
    assert await fetch(database_url, "SELECT * FROM live_trades") == []

    # An admin names another strategy and risk, not paused: the next entry is that
    # strategy's, sized by that risk (at the reloaded leverage).
    token = await registered_token(api, database_url, admin=True)
    body = {"strategies": [OTHER_STRATEGY], "risk_per_trade_usd": 25.0, "max_positions": 1,
            "paused": False}  # fmt: skip
    await eventually(lambda: accepted(api, token, body), 10, what="the admin's PUT accepted")
    applied = await daemon.wait_for(
        lambda e: e.get("event") == "live.config_applied" and e["cause"] == "live_config"
    )
    assert applied["changed_by"].startswith("admin_")
    assert (applied["strategies"], applied["paused"]) == ([OTHER_STRATEGY], False)

    async def traded() -> list:
        await _advance(sim, 5_000)
        return await fetch(database_url, "SELECT * FROM live_trades ORDER BY id")

    trade = (await eventually(traded, 120, interval=0.2, what="a live trade"))[0]
    assert trade["strategy"] == OTHER_STRATEGY
    assert 15.0 < trade["risk_usd"] <= 25.0, trade["risk_usd"]
    trades = await fetch(database_url, "SELECT strategy FROM live_trades")
    assert {t["strategy"] for t in trades} == {OTHER_STRATEGY}
    # The symbol was set to the reloaded leverage before the entry.
    async with aiohttp.ClientSession() as http:
        status, rows, _ = await signed(http, sim, "GET", "/fapi/v2/positionRisk")
    assert status == 200, rows
    [position] = [r for r in rows if r["symbol"] == trade["symbol"]]
    assert position["leverage"] == "10"

    # The admin pauses through the API: new entries stop, the open trade stays protected.
    await eventually(lambda: accepted(api, token, {**body, "paused": True}), 10)
    skips = await eventually(
        lambda: paused_skips(sim, database_url, OTHER_STRATEGY), 120, interval=0.2,
        what="a paused signal of the new strategy",
    )  # fmt: skip
    assert skips[0]["at"] > trade["created_at"]
    [still] = await fetch(database_url, "SELECT * FROM live_trades")
    assert (still["id"], still["status"]) == (trade["id"], "open")
    stops = [a for a in await open_algo_orders(sim)
             if a["symbol"] == trade["symbol"] and a["orderType"] == "STOP_MARKET"]  # fmt: skip
    assert len(stops) == 1

    # The admin flattens it: closed at market, its protection cancelled, who asked recorded.
    unknown = await post_json(api, "/api/live/flatten", token, {"trade_id": trade["id"] + 100})
    assert (unknown[0], unknown[1]["error"]["code"]) == (404, "not_found")
    status, reply = await post_json(api, "/api/live/flatten", token, {"trade_id": trade["id"]})
    assert (status, reply["status"], reply["symbol"]) == (202, "requested", trade["symbol"])

    async def flattened() -> list:
        return await fetch(
            database_url, "SELECT * FROM live_trades WHERE id = $1 AND status = 'closed'",
            trade["id"],
        )  # fmt: skip

    [closed] = await eventually(flattened, 30, what="the flattened trade closed")
    assert closed["exit_reason"] == "manual_flatten"
    # The executor's orders are counted in the limits the collectors' client shows (the
    # flatten's, just sent: the window slides on the sim's clock, which stands still here).
    server = await get_json(api, "/api/server", token)
    [minute] = [o for o in server["rest"]["orders"] if o["interval_s"] == 60]
    assert minute["used"] >= 1
    assert [a for a in await open_algo_orders(sim) if a["symbol"] == trade["symbol"]] == []
    [asked] = await fetch(
        database_url,
        "SELECT who FROM live_events WHERE kind = 'control.flatten' AND detail->>'status' = 'done'",
    )
    assert asked["who"].startswith("admin:admin_")


def live_section(risk: float, leverage: int, strategy: str = LIVE_STRATEGY) -> str:
    return (
        f'enabled = true\nstrategies = ["{strategy}"]\nrisk_per_trade_usd = {risk}\n'
        f"leverage = {leverage}\n"
    )


async def paused_skips(sim: SimServer, database_url: str, strategy: str = LIVE_STRATEGY) -> list:
    await _advance(sim, 5_000)
    return await fetch(
        database_url,
        "SELECT * FROM live_events WHERE kind = 'signal.skipped' "
        "AND detail->>'reason' = 'paused' AND strategy = $1 ORDER BY id",
        strategy,
    )


async def accepted(api: str, token: str, body: dict[str, Any]) -> bool:
    return await put_config(api, token, body) == 200


async def _advance(sim: SimServer, ms: int) -> None:
    end = sim.sim_time_ms + ms
    while sim.sim_time_ms < end:
        await sim.advance_to(min(end, sim.sim_time_ms + 500))
