"""The daemon outlasts exchange outages, bad symbols and firewall blocks; health tells the truth.

A low restart budget (one restart of a failing component per window) makes a daemon that
counted outages as faults give up within a second or two, so each test would see it exit.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from arbengine.sim.server import SimConfig, SimServer
from arbengine.store.market_sql import TRADE_COLUMNS
from arbengine.store.migrations import apply_migrations
from arbengine.store.partitions import ensure_partitions_covering
from tests.conftest import free_port
from tests.e2e.collect.conftest import (
    SYMBOLS,
    Run,
    caught_up,
    collect_env,
    fault,
    last_stored_id,
    sim_tape,
    stored_tape,
)
from tests.support.daemon import DaemonProcess
from tests.support.postgres import PgTestServer
from tests.support.waiting import eventually

STRICT = {
    "ARB_RUNTIME_MAX_RESTARTS": "1",
    "ARB_RUNTIME_RESTART_INITIAL": "50ms",
    "ARB_RUNTIME_RESTART_MAX": "200ms",
}


async def get_json(url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, await response.json(content_type=None)


async def health(daemon: DaemonProcess) -> dict[str, Any]:
    status, body = await get_json(f"{await daemon.started()}/api/health")
    assert status == (503 if body["status"] == "unavailable" else 200), body
    return body


def reasons_of(body: dict[str, Any], component: str) -> list[dict[str, Any]]:
    return [r for r in body["reasons"] if r["component"] == component]


async def bearer(daemon: DaemonProcess, database_url: str) -> str:
    """A registered user's access token (for /api/server)."""
    code = secrets.token_urlsafe(12)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("INSERT INTO invite_codes (code) VALUES ($1)", code)
    finally:
        await conn.close()
    body = {"invite_code": code, "username": f"ops_{code[:6]}", "password": "x" * 12}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{await daemon.started()}/api/register", json=body) as response,
    ):
        assert response.status == 201, await response.text()
        return str((await response.json())["access_token"])


def alive(daemon: DaemonProcess) -> bool:
    return daemon.process is not None and daemon.process.returncode is None


async def test_the_daemon_starts_during_an_exchange_outage_and_outlasts_another(
    daemon_env: dict, database_url: str, spawn_daemon
) -> None:
    port = free_port()
    start = int(time.time() * 1000) // 1000 * 1000
    sim = SimServer(SimConfig(port=port, manual=True, seed=5, symbols=SYMBOLS, trade_rate=40.0,
                              start_ms=start, history_days=2))  # fmt: skip
    # The exchange is unreachable (nothing listens on its port) when the daemon starts.
    env = {
        **collect_env(sim, daemon_env, database_url),
        "ARB_EXCHANGE_REST_URL": f"http://127.0.0.1:{port}",
        "ARB_EXCHANGE_WS_URL": f"ws://127.0.0.1:{port}/market",
        "ARB_EXCHANGE_COINBASE_URL": f"http://127.0.0.1:{port}/coinbase",
        "ARB_COLLECT_RECONNECT_MAX": "300ms",
        **STRICT,
    }
    daemon = await spawn_daemon(env)
    await daemon.started()
    await daemon.wait_for(
        lambda line: line.get("event") == "collect.exchange_info_retry" and line["attempt"] >= 8
    )
    assert alive(daemon)
    body = await health(daemon)
    assert body["status"] == "degraded"
    assert body["database"] == "ok"
    [rest] = reasons_of(body, "rest")
    assert rest["reason"].startswith("exchange REST unreachable: GET /fapi/v1/exchangeInfo")
    [waiting] = reasons_of(body, "collect")
    assert waiting["reason"].startswith("not collecting yet")
    assert not daemon.events("supervisor.gave_up")
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{await daemon.started()}/metrics") as response,
    ):
        metrics = await response.text()
    assert 'arb_degraded{component="rest",subject=""} 1.0' in metrics
    assert 'arb_degraded{component="collect",subject=""} 1.0' in metrics

    # The exchange comes back: collection starts by itself, and health is ok again.
    await sim.start()
    try:
        run = Run(sim, database_url, daemon, spawn_daemon, env)
        await daemon.wait_for("stream.connected")
        await run.advance(3)
        await caught_up(sim, database_url)

        async def healthy() -> bool:
            return (await health(daemon))["status"] == "ok"

        await eventually(healthy, 30, what="health ok once the exchange answers")

        # Then it goes away mid-run: the daemon says so, and carries on when it is back.
        await sim.stop()
        await daemon.wait_for("stream.reconnecting")

        async def stream_down() -> list[dict[str, Any]]:
            return reasons_of(await health(daemon), "stream")

        [down] = await eventually(stream_down, 30, what="the stream reported down")
        assert down["subject"] == "market-0"
        assert down["reason"].startswith("disconnected")
        assert down["since"] <= time.time()
        await sim.start()
        await run.advance(3)
        await caught_up(sim, database_url)
        await eventually(healthy, 30, what="health ok once the exchange is back")
        for symbol in SYMBOLS:
            stored = await stored_tape(database_url, symbol)
            assert stored == sim_tape(sim, symbol, stored[0][0])
        assert alive(daemon)
        assert not daemon.events("supervisor.restarting")
    finally:
        await daemon.stop()
        await sim.stop()


@pytest.mark.settings({"ARB_COLLECT_SYMBOLS": "BTCUSDT,NOPEUSDT,ETHUSDT", **STRICT})
async def test_an_unknown_symbol_is_skipped_and_the_others_are_collected(run: Run) -> None:
    unknown = await run.daemon.wait_for("collect.symbol_unknown")
    assert (unknown["symbol"], unknown["reason"]) == ("NOPEUSDT", "not listed by the exchange")
    assert unknown["level"] == "error"
    await run.advance(4)
    await caught_up(run.sim, run.url)
    for symbol in SYMBOLS:
        stored = await stored_tape(run.url, symbol)
        assert stored == sim_tape(run.sim, symbol, stored[0][0])
    await run.advance(4)  # pollers and the continuity check have had several rounds
    await caught_up(run.sim, run.url)
    assert alive(run.daemon)

    body = await health(run.daemon)
    assert body["status"] == "degraded"
    assert [(r["subject"], r["reason"]) for r in body["reasons"]] == [
        ("NOPEUSDT", "skipped: not listed by the exchange")
    ]
    token = await bearer(run.daemon, run.url)
    status, server = await get_json(f"{await run.daemon.started()}/api/server", token)
    assert status == 200
    symbols = server["symbols"]
    assert symbols["configured"] == ["BTCUSDT", "NOPEUSDT", "ETHUSDT"]
    assert symbols["collecting"] == ["BTCUSDT", "ETHUSDT"]
    assert [(s["symbol"], s["reason"]) for s in symbols["skipped"]] == [
        ("NOPEUSDT", "not listed by the exchange")
    ]
    assert server["degraded"] == body["reasons"]
    assert {t["name"]: t["restarts"] for t in server["tasks"]}["market-stream"] == 0


@pytest.mark.settings({"ARB_COLLECT_SYMBOLS_REFRESH_INTERVAL": "1h", **STRICT})
async def test_a_symbol_delisted_while_running_stops_alone(run: Run) -> None:
    await run.advance(3)
    await caught_up(run.sim, run.url)
    eth_before = await last_stored_id(run.url, "ETHUSDT")
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{run.sim.control_url}/market", json={"symbol": "ETHUSDT", "delist": True}
        ) as response,
    ):
        assert response.status == 200
    # No refresh is due for an hour: the first -1121 (a poller's) stops the symbol.
    stopped = await run.daemon.wait_for("collect.symbol_stopped")
    assert stopped["symbol"] == "ETHUSDT"
    assert "-1121" in stopped["reason"]
    btc_before = await last_stored_id(run.url, "BTCUSDT")
    await run.advance(6)
    btc_target = run.sim.tape("BTCUSDT").last_id
    assert btc_target is not None
    assert btc_before is not None
    assert btc_target > btc_before

    async def btc_collected() -> bool:
        return await last_stored_id(run.url, "BTCUSDT") == btc_target

    await eventually(btc_collected, 30, what="BTCUSDT still collected")
    stored = await stored_tape(run.url, "BTCUSDT")
    assert stored == sim_tape(run.sim, "BTCUSDT", stored[0][0])
    assert await last_stored_id(run.url, "ETHUSDT") == eth_before  # it was silent since
    assert alive(run.daemon)
    body = await health(run.daemon)
    assert body["status"] == "degraded"
    [eth] = reasons_of(body, "collect")
    assert eth["subject"] == "ETHUSDT"
    assert eth["reason"].startswith("stopped: the exchange answered")
    assert not run.daemon.events("supervisor.restarting")


# Long enough for the block to be seen in health however loaded the machine is.
@pytest.mark.settings({"ARB_EXCHANGE_FORBIDDEN_BACKOFF": "8s", **STRICT})
async def test_a_firewall_block_is_waited_out_and_said(run: Run) -> None:
    await run.advance(2)
    last = run.sim.tape("BTCUSDT").last_id
    assert last is not None
    await fault(
        run.sim,
        {
            "http_5xx": {"count": 3, "status": 403, "path": "/fapi/v1/"},
            # A gap only REST can repair, so the tape depends on REST during the block.
            "withhold": {"symbol": "BTCUSDT", "from_id": last + 5, "to_id": last + 15},
        },
    )
    await run.advance(4)
    blocked = await run.daemon.wait_for("rest.waf_blocked")
    assert blocked["retry_after_s"] == 8
    assert blocked["body"] == "HTML page 'ERROR: The request could not be satisfied'"

    async def blocked_in_health() -> dict[str, Any] | None:
        body = await health(run.daemon)
        return body if reasons_of(body, "rest") else None

    # Every call waits out the block (8 s); until a call succeeds after it, health says so.
    body = await eventually(blocked_in_health, 8, what="the firewall block in health")
    assert body["status"] == "degraded"
    [rest] = reasons_of(body, "rest")
    assert "firewall (HTTP 403)" in rest["reason"]
    await caught_up(run.sim, run.url, timeout=90)  # every fault served and waited out
    for symbol in SYMBOLS:
        stored = await stored_tape(run.url, symbol)
        assert stored == sim_tape(run.sim, symbol, stored[0][0])

    async def healthy() -> bool:
        return (await health(run.daemon))["status"] == "ok"

    await eventually(healthy, 30, what="health ok after the block")
    assert alive(run.daemon)
    assert not run.daemon.events("supervisor.restarting")


@pytest.mark.settings(STRICT)
async def test_giving_up_names_the_component_and_the_cause_in_one_line(run: Run) -> None:
    await run.advance(2)
    await caught_up(run.sim, run.url)
    last = run.sim.tape("BTCUSDT").last_id
    assert last is not None
    await fault(
        run.sim,
        {
            "http_5xx": {"count": 1000, "status": 404, "path": "/fapi/v1/aggTrades"},
            "withhold": {"symbol": "BTCUSDT", "from_id": last + 5, "to_id": last + 15},
        },
    )
    await run.advance(2)
    assert await run.daemon.wait_exit(timeout=60) == 1
    [line] = run.daemon.events("daemon.giving_up")
    assert line["task"] == "market-stream"
    assert line["error"].startswith("UnexpectedStatus: GET /fapi/v1/aggTrades: HTTP 404")
    assert line["reason"] == (
        f"component 'market-stream' failed 2 times within 300s; last error: {line['error']}"
    )
    assert "ExceptionGroup" not in line["reason"]
    [gave_up] = run.daemon.events("supervisor.gave_up")
    assert gave_up["error"] == line["error"]


async def test_trade_ids_going_backwards_are_reported_and_never_stored(
    sim: SimServer, daemon_env: dict, spawn_daemon, database_url: str
) -> None:
    # The database holds another venue's BTCUSDT tape: ids far above this exchange's, ending
    # just before its first trade.
    first_ts = sim.start_ms - 60_000
    foreign = [
        ("BTCUSDT", 10**12 + i, first_ts + i, 100.0, 1.0, 10**12 + i, 10**12 + i, False)
        for i in range(50)
    ]
    conn = await asyncpg.connect(database_url)
    await apply_migrations(conn)
    await ensure_partitions_covering(conn, first_ts, sim.start_ms + 3_600_000)
    await conn.copy_records_to_table("agg_trades", records=foreign, columns=TRADE_COLUMNS)
    await conn.close()

    daemon = await spawn_daemon(collect_env(sim, daemon_env, database_url))
    await daemon.started()
    await daemon.wait_for("stream.connected")
    run = Run(sim, database_url, daemon, spawn_daemon, {})
    await run.advance(3)
    line = await daemon.wait_for("collector.trade_ids_backwards")
    assert line["level"] == "error"
    assert line["symbol"] == "BTCUSDT"
    assert (line["last_id"], line["last_ts"]) == (foreign[-1][1], foreign[-1][2])
    assert line["received_id"] < line["last_id"]
    assert line["received_ts"] > line["last_ts"]

    body = await health(daemon)
    assert body["status"] == "degraded"
    [backwards] = reasons_of(body, "collector")
    assert backwards["subject"] == "BTCUSDT"
    assert backwards["reason"].startswith(
        f"trade ids went backwards: received id {line['received_id']}"
    )
    # ETHUSDT is collected as usual; the stored BTCUSDT tape is left exactly as it was.
    target = sim.tape("ETHUSDT").last_id

    async def eth_collected() -> bool:
        return await last_stored_id(database_url, "ETHUSDT") == target

    await eventually(eth_collected, 30, what="ETHUSDT collected")
    assert await stored_tape(database_url, "BTCUSDT") == [r[1:] for r in foreign]
    assert len(daemon.events("collector.trade_ids_backwards")) == 1  # once, not per trade


async def test_a_long_database_outage_is_waited_out_by_every_component(
    sim: SimServer, daemon_env: dict, spawn_daemon, tmp_path: Path
) -> None:
    data_dir = tmp_path / "own-pg"
    server = await asyncio.to_thread(PgTestServer, data_dir)
    env = {
        **collect_env(sim, daemon_env, server.url),
        # The continuity check and the partition upkeep go to the database every 200 ms.
        "ARB_COLLECT_CONTINUITY_CHECK_INTERVAL": "200ms",
        "ARB_DATABASE_PARTITION_CHECK_INTERVAL": "200ms",
        **STRICT,
    }
    daemon = await spawn_daemon(env)
    try:
        await daemon.started()
        await daemon.wait_for("stream.connected")
        run = Run(sim, server.url, daemon, spawn_daemon, env)
        await run.advance(2)
        await caught_up(sim, server.url)

        await asyncio.to_thread(server.stop)

        def retried(line: dict[str, Any]) -> bool:
            return (
                line.get("event") == "supervisor.retrying"
                and line["task"] == "continuity"
                and line["attempt"] >= 4
                and line["error"].startswith("DatabaseUnavailable: PostgreSQL unavailable")
            )

        await run.advance(2)  # the market goes on meanwhile
        await daemon.wait_for(retried)
        assert alive(daemon)
        body = await health(daemon)
        assert body["status"] == "unavailable"
        assert any(r["component"] == "continuity" for r in body["reasons"])

        server = await asyncio.to_thread(PgTestServer, data_dir)
        await run.advance(2)
        await caught_up(sim, server.url)
        for symbol in SYMBOLS:
            stored = await stored_tape(server.url, symbol)
            assert stored == sim_tape(sim, symbol, stored[0][0])

        async def healthy() -> bool:
            return (await health(daemon))["status"] in ("ok", "degraded")

        await eventually(healthy, 30, what="serving again")
        assert not daemon.events("supervisor.gave_up")
    finally:
        await daemon.stop()  # before its database goes
        server.stop()


@pytest.mark.settings({"ARB_DATABASE_WRITE_TIMEOUT": "1s"})
async def test_a_stalled_writer_makes_health_degraded_and_clears_when_writes_pass(
    run: Run,
) -> None:
    await run.advance(2)
    await caught_up(run.sim, run.url)
    assert (await health(run.daemon))["status"] == "ok"

    # The database answers, but nothing can be written to the tape: a lock holds every write.
    blocker = await asyncpg.connect(run.url)
    try:
        async with blocker.transaction():
            await blocker.execute("LOCK TABLE agg_trades IN ACCESS EXCLUSIVE MODE")
            await run.advance(2)

            async def writer_reported() -> list[dict[str, Any]]:
                return reasons_of(await health(run.daemon), "writer")

            (reason,) = await eventually(writer_reported, 30, what="the writer in health")
            await run.daemon.wait_for(
                lambda line: (
                    line.get("event") == "writer.db_unavailable" and line.get("reason") == "timeout"
                )
            )
            body = await health(run.daemon)
            assert body["status"] == "degraded", body
            assert body["database"] == "ok", body
            assert reason["reason"].startswith("database writes failing: WriteTimeout"), reason
    finally:
        await blocker.close()

    async def cleared() -> bool:
        return not reasons_of(await health(run.daemon), "writer")

    await eventually(cleared, 30, what="the writer cleared once writes pass")
    await caught_up(run.sim, run.url)
