"""``arbengine run --sim``: one command shows the whole system working offline."""

from __future__ import annotations

import signal

import aiohttp
import asyncpg

from tests.support.daemon import BTC_STRATEGIES, DaemonProcess
from tests.support.waiting import eventually


async def test_run_sim_collects_from_the_inprocess_exchange(
    spawn_daemon, daemon_env: dict[str, str], database_url: str
) -> None:
    env = {
        **daemon_env,
        "ARB_DATABASE_URL": database_url,
        "ARB_COLLECT_SYMBOLS": "BTCUSDT",
        "ARB_ENGINE_STRATEGIES_DIR": str(BTC_STRATEGIES),
    }
    daemon: DaemonProcess = await spawn_daemon(
        env, ["run", "--sim", "--sim-speed", "5", "--sim-trade-rate", "50"]
    )
    base = await daemon.started()
    started = daemon.events("daemon.sim_started")[0]
    assert started["rest"].startswith("http://127.0.0.1:")
    await daemon.wait_for("stream.connected")

    async def trades_stored() -> int:
        conn = await asyncpg.connect(database_url)
        try:
            return int(await conn.fetchval("SELECT count(*) FROM agg_trades") or 0)
        finally:
            await conn.close()

    assert await eventually(trades_stored, 30, what="trades stored") > 0
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as resp:
        metrics = await resp.text()
    assert 'arb_component_state{component="sim",state="running"} 1.0' in metrics
    assert 'arb_component_state{component="market-stream",state="running"} 1.0' in metrics
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(30) == 0
