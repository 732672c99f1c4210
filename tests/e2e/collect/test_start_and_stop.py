"""A collecting daemon's first seconds and its last: logs from the start, rows at the stop."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import orjson

from arbengine.app import EXIT_ROWS_NOT_WRITTEN
from arbengine.runtime.hard_stop import SHUTDOWN_MARGIN_S
from tests.e2e.collect.conftest import (
    SYMBOLS,
    Run,
    caught_up,
    collect_env,
    fault,
    sim_tape,
    stored_tape,
)
from tests.support.daemon import DaemonProcess
from tests.support.postgres import PgTestServer, frozen


async def test_a_rest_retry_in_the_first_seconds_is_a_json_line(
    sim, database_url: str, daemon_env: dict, spawn_daemon
) -> None:
    # The start-up backfill's first aggTrades calls fail: the retry is logged at once.
    await fault(sim, {"http_5xx": {"count": 2, "status": 503, "path": "/fapi/v1/aggTrades"}})
    env = {**collect_env(sim, daemon_env, database_url), "ARB_COLLECT_INITIAL_BACKFILL": "1h"}
    daemon: DaemonProcess = await spawn_daemon(env)
    retry = await daemon.wait_for("collector.rest_retry")
    assert (retry["level"], retry["component"]) == ("warning", "collector")
    assert "503" in retry["error"]
    await daemon.wait_for("daemon.started")
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(timeout=30) == 0
    for text in daemon.raw:
        line = orjson.loads(text)
        assert {"timestamp", "level", "event", "component"} <= line.keys(), text


async def test_sigterm_while_the_database_is_down_exits_3_and_the_next_start_repairs_the_tape(
    sim, daemon_env: dict, spawn_daemon, tmp_path: Path
) -> None:
    data_dir = tmp_path / "own-pg"
    server = await asyncio.to_thread(PgTestServer, data_dir)
    env = {**collect_env(sim, daemon_env, server.url), "ARB_RUNTIME_SHUTDOWN_DEADLINE": "4s"}
    daemon: DaemonProcess = await spawn_daemon(env)
    run = Run(sim, server.url, daemon, spawn_daemon, env)
    try:
        await daemon.started()
        await daemon.wait_for("stream.connected")
        await run.advance(3)
        await caught_up(sim, server.url)

        await asyncio.to_thread(server.stop)
        await run.advance(2)  # trades the writer can no longer store
        await daemon.wait_for("writer.db_unavailable")
        daemon.send(signal.SIGTERM)
        assert await daemon.wait_exit(timeout=30) == 3
        lost = daemon.events("writer.rows_not_written")
        assert len(lost) == 1
        assert lost[0]["level"] == "error"
        assert lost[0]["trades"] > 0
        assert "fetched again over REST at the next start" in lost[0]["recovery"]
        assert daemon.events("daemon.stopped")[-1]["exit_code"] == 3

        # The next start resumes after the last stored id: what was lost comes back.
        server = await asyncio.to_thread(PgTestServer, data_dir)
        await run.advance(2)
        run.daemon = await spawn_daemon(env)
        await run.daemon.started()
        await run.daemon.wait_for("stream.connected")
        await run.advance(2)
        await caught_up(sim, server.url)
        for symbol in SYMBOLS:
            stored = await stored_tape(server.url, symbol)
            assert stored == sim_tape(sim, symbol, stored[0][0]), symbol
    finally:
        await run.daemon.stop()  # before its database goes
        server.stop()


async def test_sigterm_with_the_writer_stuck_on_a_frozen_database_exits_within_the_bound(
    sim, daemon_env: dict, spawn_daemon, tmp_path: Path
) -> None:
    # A real fault: PostgreSQL frozen (every process stopped), so the writer's last flush is
    # never answered and write_timeout (a minute here) does not come to the rescue.
    server = await asyncio.to_thread(PgTestServer, tmp_path / "own-pg")
    deadline_s = 6.0
    env = {
        **collect_env(sim, daemon_env, server.url),
        "ARB_RUNTIME_SHUTDOWN_DEADLINE": f"{deadline_s:g}s",
        "ARB_DATABASE_WRITE_TIMEOUT": "1m",
    }
    daemon: DaemonProcess = await spawn_daemon(env)
    run = Run(sim, server.url, daemon, spawn_daemon, env)
    try:
        await daemon.started()
        await daemon.wait_for("stream.connected")
        await run.advance(2)
        await caught_up(sim, server.url)
        async with frozen(server):
            await run.advance(2)  # trades the writer takes and cannot store
            began = time.monotonic()
            daemon.send(signal.SIGTERM)
            code = await daemon.wait_exit(timeout=60)
            elapsed = time.monotonic() - began
        assert elapsed <= deadline_s + SHUTDOWN_MARGIN_S
        assert code == EXIT_ROWS_NOT_WRITTEN  # rows lost says more than "abandoned"
        (abandoned,) = daemon.events("daemon.abandoned")
        assert "writer" in abandoned["components"]
        assert abandoned["still_running"] == []
        assert daemon.events("writer.rows_not_written")[0]["trades"] > 0
    finally:
        await daemon.stop()
        server.stop()
