"""The live routes served by a real daemon: rows the executor's store functions wrote are
read back, and the admin-only configuration follows the role the admin command line gives.

The details of each route are tested in-process (tests/service/api/test_live_api.py);
this proves the daemon serves them with its own wiring."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from tests.e2e.api.harness import ApiUnderTest
from tests.e2e.api.live_seed import seed_live_data
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")


async def test_live_rows_are_served_and_the_config_is_for_admins_only(api: ApiUnderTest) -> None:
    conn = await asyncpg.connect(api.db_url)
    try:
        seed = await seed_live_data(conn, int(time.time() * 1000))
    finally:
        await conn.close()
    session = await api.new_user("livereader")
    trades = await api.get("/api/live/trades", session.access)
    assert trades.status == 200, trades.body
    assert [r["id"] for r in trades.body["rows"]] == [
        seed.pending,
        seed.open,
        seed.not_opened,
        seed.lost,
        seed.won,
    ]
    positions = await api.get("/api/live/positions", session.access)
    assert [r["trade"]["id"] for r in positions.body["rows"]] == [seed.open, seed.pending]

    refused = await api.get("/api/live/config", session.access)
    assert (refused.status, refused.error["code"]) == (403, "forbidden")
    code, _, err = await api.admin("set-admin", session.username)
    assert code == 0, err

    async def status() -> int:
        return (await api.get("/api/live/config", session.access)).status

    # The daemon hears of a role change by a database notification: a moment later.
    await eventually(lambda: _is(status, 200), 10, what="the new admin let in")
    allowed = await api.get("/api/live/config", session.access)
    assert allowed.body["current"]["source"] == "settings"
    assert allowed.body["history"] == []
    # The strategies the daemon's engine loaded (the shipped ones), offered for the config.
    assert allowed.body["loaded_strategies"] == ["v51", "v52"]
    code, _, err = await api.admin("set-admin", session.username, "--revoke")
    assert code == 0, err
    await eventually(lambda: _is(status, 403), 10, what="the former admin refused")
    again = await api.get("/api/live/config", session.access)
    assert again.error["code"] == "forbidden"


async def _is(status: Callable[[], Awaitable[int]], expected: int) -> bool:
    return await status() == expected


async def test_live_status_says_live_trading_does_not_run_without_an_error(
    api: ApiUnderTest,
) -> None:
    session = await api.new_user("asker")
    status = await api.get("/api/live/status", session.access)
    assert status.status == 200
    assert status.body == {"enabled": False, "environment": None}
    # The routes that need live trading say so with 409; the status route is how to ask.
    risk = await api.get("/api/risk", session.access)
    assert (risk.status, risk.error["code"]) == (409, "live_off")
    assert (await api.get("/api/live/status")).status == 401
