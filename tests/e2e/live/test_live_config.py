"""The live configuration changed while the daemon trades: an admin's ``PUT
/api/live/config`` is in force from the next signal (a pause stops new entries and says
so; new strategies and risk size the next entry), and SIGHUP reloads ``[live]`` of the
settings file (a file naming an unknown strategy is refused, the previous kept)."""

from __future__ import annotations

import secrets
import signal
from pathlib import Path
from typing import Any

import aiohttp

from arbengine.sim.server import SimServer
from tests.conftest import REPO
from tests.e2e.engine.conftest import write_strategy
from tests.e2e.live.conftest import LIVE_PROBE, LIVE_STRATEGY, fetch
from tests.support.daemon import DaemonProcess
from tests.support.waiting import eventually

OTHER_STRATEGY = "probe-twin"
"""The probe under another name: it fires on the same ticks."""


def settings_file(path: Path, live: str) -> Path:
    """The repository's settings with a ``[live]`` section of the test's own."""
    shipped = (REPO / "config" / "arbengine.toml").read_text()
    path.write_text(shipped[: shipped.index("[live]")] + "[live]\n" + live)
    return path


async def admin_token(api: str, database_url: str) -> str:
    """A user registered through the API and made admin in the database."""
    code, username = secrets.token_urlsafe(12), f"admin_{secrets.token_hex(4)}"
    await fetch(database_url, "INSERT INTO invite_codes (code) VALUES ($1)", code)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{api}/api/register",
            json={"invite_code": code, "username": username, "password": "a long passphrase!"},
        ) as reply,
    ):
        assert reply.status == 201, await reply.text()
        token: str = (await reply.json())["access_token"]
    await fetch(database_url, "UPDATE users SET role = 'admin' WHERE username = $1", username)
    return token


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
    config = settings_file(
        tmp_path / "arbengine.toml",
        f'enabled = true\nstrategies = ["{LIVE_STRATEGY}"]\nrisk_per_trade_usd = 10.0\n',
    )
    env = {k: v for k, v in live_env.items() if k != "ARB_LIVE_STRATEGIES"}
    env["ARB_CONFIG"] = str(config)
    daemon: DaemonProcess = await spawn_daemon(env)
    api = await daemon.started()
    started = await daemon.wait_for("live.started")
    assert (started["strategies"], started["paused"]) == ([LIVE_STRATEGY], False)
    await daemon.wait_for("engine.warm_start")

    # SIGHUP: a [live] naming a strategy the engine does not run is refused ...
    settings_file(config, 'enabled = true\nstrategies = ["nosuch"]\n')
    daemon.send(signal.SIGHUP)
    refused = await daemon.wait_for("live.reload_failed")
    assert refused["error"].startswith("live.strategies: nosuch not among the loaded strategies")
    # ... a valid one is in force at once.
    settings_file(
        config, f'enabled = true\nstrategies = ["{LIVE_STRATEGY}"]\nrisk_per_trade_usd = 15.0\n'
    )
    daemon.send(signal.SIGHUP)
    reloaded = await daemon.wait_for(lambda e: e.get("event") == "live.config_applied")
    assert (reloaded["cause"], reloaded["source"]) == ("file", "file")
    assert (reloaded["risk_per_trade_usd"], reloaded["strategies"]) == (15.0, [LIVE_STRATEGY])

    # An admin pauses: the next signal of the live strategy is not traded, and says why.
    token = await admin_token(api, database_url)
    paused = {
        "strategies": [LIVE_STRATEGY], "risk_per_trade_usd": 10.0, "max_positions": 1,
        "paused": True,
    }  # fmt: skip

    async def accepted(body: dict[str, Any]) -> bool:
        return await put_config(api, token, body) == 200

    await eventually(lambda: accepted(paused), 10, what="the admin's PUT accepted")

    async def skipped() -> list:
        await _advance(sim, 5_000)
        return await fetch(
            database_url,
            "SELECT * FROM live_events WHERE kind = 'signal.skipped' "
            "AND detail->>'reason' = 'paused'",
        )

    skip = (await eventually(skipped, 120, interval=0.2, what="a paused signal"))[0]
    assert skip["strategy"] == LIVE_STRATEGY
    assert await fetch(database_url, "SELECT * FROM live_trades") == []
    applied = [e for e in daemon.events("live.config_applied") if e["cause"] == "live_config"]
    assert applied[0]["paused"] is True
    assert applied[0]["changed_by"].startswith("admin_")

    # Another strategy and risk, not paused: the next entry is that strategy's, sized by it.
    await eventually(
        lambda: accepted(
            {"strategies": [OTHER_STRATEGY], "risk_per_trade_usd": 25.0, "max_positions": 1,
             "paused": False}
        ),
        10,
    )  # fmt: skip

    async def traded() -> list:
        await _advance(sim, 5_000)
        return await fetch(database_url, "SELECT * FROM live_trades ORDER BY id")

    trade = (await eventually(traded, 120, interval=0.2, what="a live trade"))[0]
    assert trade["strategy"] == OTHER_STRATEGY
    assert 15.0 < trade["risk_usd"] <= 25.0, trade["risk_usd"]
    trades = await fetch(database_url, "SELECT strategy FROM live_trades")
    assert {t["strategy"] for t in trades} == {OTHER_STRATEGY}


async def _advance(sim: SimServer, ms: int) -> None:
    end = sim.sim_time_ms + ms
    while sim.sim_time_ms < end:
        await sim.advance_to(min(end, sim.sim_time_ms + 500))
