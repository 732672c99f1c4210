"""The risk guard in the daemon: ``GET /api/risk`` for a signed-in user shows the breaker
the sim's balance drop trips, and a restart mid-breaker keeps it (the balance restored,
the cooldown not over: still HALTED, for the same reason)."""

from __future__ import annotations

import json
import signal
from typing import Any

import aiohttp
import pytest

from arbengine.sim.server import SimServer
from tests.e2e.live.conftest import fetch, registered_token, sim_account
from tests.support.daemon import DaemonProcess
from tests.support.waiting import eventually


async def risk_of(api: str, token: str | None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as http, http.get(f"{api}/api/risk", headers=headers) as r:
        return r.status, await r.json()


async def test_a_breaker_shows_in_the_api_and_outlives_a_restart(
    live_sim: SimServer, live_env: dict[str, str], database_url: str, spawn_daemon
) -> None:
    env = {
        **live_env,
        "ARB_RISK_BALANCE_FLOOR_USD": "1000",
        "ARB_RISK_CHECK_INTERVAL": "1s",
        "ARB_RISK_REST_CHECK_INTERVAL": "1s",
        "ARB_RISK_COOLDOWN": "1d",
    }
    first: DaemonProcess = await spawn_daemon(env)
    api = await first.started()
    await first.wait_for("risk.loaded")
    token = await registered_token(api, database_url)
    assert (await risk_of(api, None))[0] == 401

    async def state_is(state: str) -> dict[str, Any] | None:
        status, body = await risk_of(api, token)
        assert status == 200, body
        return body if body["state"] == state else None

    active = await eventually(lambda: state_is("ACTIVE"), 60, interval=0.2, what="ACTIVE")
    assert active["limits"]["balance_floor_usd"] == 1000
    assert active["current"]["balance_usd"] > 1000

    await sim_account(live_sim, {"balance": "900"})
    halted = await eventually(lambda: state_is("HALTED"), 30, interval=0.2, what="HALTED")
    assert halted["rule"] == "balance_floor"
    assert halted["values"]["floor"] == 1000.0
    # 900, less the fees of a trade the probe may have opened meanwhile.
    assert halted["values"]["balance"] == pytest.approx(900.0, abs=20.0)
    assert halted["breaks_today"] == 1
    assert halted["transitions"][0]["to"] == "HALTED"
    assert halted["transitions"][0]["rule"] == "balance_floor"
    await first.wait_for("risk.circuit_break")
    rows = await fetch(
        database_url, "SELECT detail FROM live_events WHERE kind = 'risk.state_changed'"
    )
    assert [json.loads(r["detail"])["to"] for r in rows] == ["HALTED"]

    first.send(signal.SIGTERM)
    assert await first.wait_exit(60) == 0
    await sim_account(live_sim, {"balance": "5000"})  # cleared; the cooldown (a day) is not

    second: DaemonProcess = await spawn_daemon(env)
    api = await second.started()
    loaded = await second.wait_for("risk.loaded")
    assert (loaded["state"], loaded["rule"]) == ("HALTED", "balance_floor")

    async def seen_the_balance() -> dict[str, Any] | None:
        status, body = await risk_of(api, token)
        assert status == 200, body
        return body if body["current"]["balance_usd"] == 5000 else None

    after = await eventually(seen_the_balance, 60, interval=0.2, what="a round after restart")
    assert (after["state"], after["rule"]) == ("HALTED", "balance_floor")
    assert after["resume_after_ms"] == halted["resume_after_ms"]
    assert after["transitions"][0]["to"] == "HALTED"  # read back from live_events
