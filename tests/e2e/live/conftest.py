"""A daemon trading live on the simulated exchange: the engine tests' probe strategy
(its signals fire within a minute of market) with exits wide enough that a position
outlives the moments between its signal, its entry and its protection, traded live
with the sim's own keys."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from arbengine.sim.server import SimServer
from tests.e2e.collect.conftest import collect_env
from tests.e2e.engine.conftest import PROBE, engine_sim_config, write_strategy
from tests.service.sim.simclient import signed

LIVE_PROBE = {
    **PROBE,
    "exit": {"sl_atr": 4.0, "tp1_atr": 4.0, "tp1_fraction": 0.5, "tp2_atr": 8.0,
             "max_hold": "30m"},
}  # fmt: skip
LIVE_STRATEGY = LIVE_PROBE["name"]


@pytest.fixture
async def live_sim() -> AsyncIterator[SimServer]:
    now = int(time.time() * 1000) // 1000 * 1000
    async with SimServer(engine_sim_config()) as sim:
        await sim.advance_to(now + 120_000)
        yield sim


@pytest.fixture
def live_env(
    live_sim: SimServer, daemon_env: dict[str, str], database_url: str, tmp_path: Path
) -> dict[str, str]:
    strategies = tmp_path / "strategies"
    strategies.mkdir()
    write_strategy(strategies, LIVE_PROBE, f"{LIVE_STRATEGY}.json")
    return {
        **collect_env(live_sim, daemon_env, database_url),
        "ARB_ENGINE_STRATEGIES_DIR": str(strategies),
        "ARB_COLLECT_INITIAL_BACKFILL": "3h",
        # The product's poll rates, not the collection tests' faster ones.
        "ARB_COLLECT_PREMIUM_INDEX_INTERVAL": "2s",
        "ARB_COLLECT_OPEN_INTEREST_INTERVAL": "10s",
        "ARB_EXCHANGE_API_KEY": live_sim.config.api_key,
        "ARB_EXCHANGE_API_SECRET": live_sim.config.api_secret,
        "ARB_LIVE_ENABLED": "true",
        "ARB_LIVE_STRATEGIES": LIVE_STRATEGY,
        "ARB_LIVE_LEVERAGE": "20",
        "ARB_LIVE_REST_URL": live_sim.rest_url,
        "ARB_LIVE_PRIVATE_WS_URL": live_sim.private_ws_url,
    }


async def sim_account(sim: SimServer, body: dict[str, Any]) -> dict[str, Any]:
    """Change the sim's account behind the client's back (``POST /_sim/account``)."""
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{sim.control_url}/account", json=body) as response,
    ):
        assert response.status == 200, await response.text()
        reply: dict[str, Any] = await response.json()
        return reply


async def open_algo_orders(sim: SimServer) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as http:
        status, body, _ = await signed(http, sim, "GET", "/fapi/v1/openAlgoOrders")
    assert status == 200, body
    assert isinstance(body, list)
    return body


async def fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def registered_token(api: str, database_url: str, *, admin: bool = False) -> str:
    """The access token of a user registered through the API (with an invite code stored
    for it), made admin in the database when ``admin`` (named ``admin_…``, else ``user_…``)."""
    prefix = "admin" if admin else "user"
    code, username = secrets.token_urlsafe(12), f"{prefix}_{secrets.token_hex(4)}"
    await fetch(database_url, "INSERT INTO invite_codes (code) VALUES ($1)", code)
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{api}/api/register",
            json={"invite_code": code, "username": username, "password": "a long passphrase!"},
        ) as reply,
    ):
        assert reply.status == 201, await reply.text()
        token = str((await reply.json())["access_token"])
    if admin:
        await fetch(database_url, "UPDATE users SET role = 'admin' WHERE username = $1", username)
    return token
