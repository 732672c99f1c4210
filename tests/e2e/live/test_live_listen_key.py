"""The exchange expires the daemon's listen key while a live position is open: the daemon
makes a new key, resyncs over REST, and a fill after the expiry (the stop, tripped by a
price shock) reaches the trade over the new connection and closes it."""

from __future__ import annotations

import re

import aiohttp

from arbengine.sim.server import SimServer
from tests.e2e.collect.conftest import fault
from tests.e2e.live.conftest import fetch
from tests.support.daemon import DaemonProcess
from tests.support.waiting import eventually


async def stream_events(base: str, kind: str) -> float:
    """The daemon's count of user-stream events of ``kind`` delivered (``/metrics``)."""
    async with aiohttp.ClientSession() as http, http.get(f"{base}/metrics") as response:
        text = await response.text()
    found = re.search(rf'^arb_user_stream_events_total{{kind="{kind}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_after_a_listen_key_expiry_a_fill_still_reaches_its_trade(
    live_sim: SimServer, live_env: dict[str, str], database_url: str, spawn_daemon
) -> None:
    sim = live_sim
    daemon: DaemonProcess = await spawn_daemon(live_env)
    base = await daemon.started()
    await daemon.wait_for("live.started")
    await daemon.wait_for("engine.warm_start")

    async def protected() -> list:
        end = sim.sim_time_ms + 5_000
        while sim.sim_time_ms < end:
            await sim.advance_to(min(end, sim.sim_time_ms + 500))
        return await fetch(
            database_url,
            "SELECT t.* FROM live_trades t WHERE t.status = 'open' AND EXISTS (SELECT 1 FROM "
            "live_orders o WHERE o.trade_id = t.id AND o.role = 'sl' AND o.status = 'NEW')",
        )

    # The first signal waits for the 3 h backfill: seconds at the sim's weight limit
    # (engine_sim_config), longer on a loaded machine.
    [trade, *_] = await eventually(protected, 240, interval=0.5, what="a protected trade")
    await daemon.wait_for("live.resync")  # the first connection's

    await fault(sim, {"expire_listen_key": True})
    await daemon.wait_for("user_stream.listen_key_expired", timeout=30)
    created = await daemon.wait_for(
        lambda line: (
            line.get("event") == "user_stream.listen_key_created"
            and line.get("reason") == "listen_key_expired"
        ),
        timeout=30,
    )
    assert created["n"] == 2
    resync = await daemon.wait_for(
        lambda line: (
            line.get("event") == "live.resync" and line.get("reason") == "listen_key_expired"
        ),
        timeout=30,
    )
    assert resync["connection"] >= 2
    fills_before = await stream_events(base, "OrderTradeUpdate")

    # The stop: a shock well past it, against the trade's direction.
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sim.control_url}/market",
            json={"symbol": trade["symbol"], "shock_bps": -1500 * trade["direction"]},
        ) as response,
    ):
        assert response.status == 200, await response.text()

    async def closed() -> list:
        await sim.advance_to(sim.sim_time_ms + 1_000)
        return await fetch(
            database_url,
            "SELECT * FROM live_trades WHERE id = $1 AND status = 'closed'",
            trade["id"],
        )

    [row] = await eventually(closed, 60, interval=0.2, what="the trade closed by its stop")
    assert row["exit_reason"] == "sl"
    # The stop's fill came over the stream opened with the new key.
    assert await stream_events(base, "OrderTradeUpdate") > fills_before
