"""The stored tape equals the exchange's tape after every kind of trouble."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.collect.conftest import (
    SYMBOLS,
    Run,
    caught_up,
    collect_env,
    fault,
    meta,
    sim_tape,
    stored_tape,
)
from tests.support.postgres import PgTestServer
from tests.support.waiting import eventually


async def assert_tape_equal(run: Run, from_ids: dict[str, int] | None = None) -> None:
    await caught_up(run.sim, run.url)
    for symbol in SYMBOLS:
        stored = await stored_tape(run.url, symbol)
        assert stored, f"nothing stored for {symbol}"
        expected = sim_tape(run.sim, symbol, stored[0][0])
        assert stored == expected, f"{symbol}: stored tape differs from the exchange's"


async def test_clean_run_stores_the_exact_tape(run: Run) -> None:
    await run.advance(10)
    await assert_tape_equal(run)
    row = await meta(run.url, "BTCUSDT")
    assert row["rows"] == len(await stored_tape(run.url, "BTCUSDT"))
    assert row["last_id"] == run.sim.tape("BTCUSDT").last_id
    assert (row["gaps_seen"], row["holes_left"]) == (0, 0)


async def test_withheld_ids_are_repaired_over_rest(run: Run) -> None:
    await run.advance(3)
    last = run.sim.tape("BTCUSDT").last_id
    await fault(
        run.sim, {"withhold": {"symbol": "BTCUSDT", "from_id": last + 20, "to_id": last + 40}}
    )
    await run.advance(6)
    await assert_tape_equal(run)
    await run.daemon.wait_for("collector.gap_repaired")
    row = await meta(run.url, "BTCUSDT")
    assert row["gaps_seen"] >= 1
    assert row["gaps_repaired"] == row["gaps_seen"]
    assert row["holes_left"] == 0


async def rest_trades(run: Run) -> float:
    """Trades the daemon's tapes have fetched over REST so far (its metrics)."""
    base = await run.daemon.started()
    async with aiohttp.ClientSession() as session, session.get(f"{base}/metrics") as response:
        text = await response.text()
    for family in text_string_to_metric_families(text):
        if family.name == "arb_tape_rest_trades":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    raise AssertionError("no arb_tape_rest_trades in the metrics")


async def test_dropped_connections_lose_nothing(run: Run) -> None:
    await run.advance(3)
    await caught_up(run.sim, run.url)
    before = await rest_trades(run)
    await fault(run.sim, {"drop_ws": {"which": "market", "mode": "abort"}})
    await run.advance(3)  # trades published while the collector reconnects
    await run.daemon.wait_for(
        lambda line: line.get("event") == "stream.connected" and line.get("n") == 2
    )
    await run.advance(3)
    await assert_tape_equal(run)
    assert run.daemon.events("stream.reconnecting")
    # What passed while it was away came over REST (the stream never sent it again).
    assert await rest_trades(run) > before


async def test_duplicated_and_reordered_frames_are_stored_once_in_order(run: Run) -> None:
    await run.advance(2)
    # One symbol each: a reorder applied to a duplicated pair would swap two equal copies.
    await fault(
        run.sim,
        {
            "duplicate": {"count": 40, "symbol": "BTCUSDT"},
            "reorder": {"count": 40, "symbol": "ETHUSDT"},
        },
    )
    await run.advance(6)
    await assert_tape_equal(run)
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{run.sim.control_url}/state") as response,
    ):
        faults = (await response.json())["faults"]
    assert (faults["duplicate"], faults["reorder"]) == (0, 0)  # every one served
    assert faults["injected"]["duplicated"] == 40
    assert faults["injected"]["reordered"] > 0


async def test_malformed_frames_are_skipped_and_counted(run: Run) -> None:
    await run.advance(2)
    await fault(run.sim, {"malformed": {"count": 3, "kind": "json"}})
    await run.advance(4)
    await run.daemon.wait_for("stream.malformed_frame")
    await fault(run.sim, {"malformed": {"count": 1, "kind": "frame"}})  # a protocol error
    await run.advance(4)
    await assert_tape_equal(run)
    assert len(run.daemon.events("stream.malformed_frame")) >= 3


# Coinbase is another exchange with its own limits: keep its poller out of this exchange's ban.
@pytest.mark.settings({"ARB_COLLECT_COINBASE_INTERVAL": "1h"})
async def test_429_then_418_are_waited_out(run: Run) -> None:
    await run.advance(2)
    last = run.sim.tape("ETHUSDT").last_id
    await fault(
        run.sim,
        {
            "rest_429": {"count": 2, "retry_after": 1},
            "rest_418": {"count": 1, "retry_after": 2},
            "withhold": {"symbol": "ETHUSDT", "from_id": last + 5, "to_id": last + 15},
        },
    )
    await run.advance(6)
    await assert_tape_equal(run)
    await run.daemon.wait_for("rest.ip_banned")
    assert run.daemon.events("rest.rate_limited")


async def test_sigterm_then_restart_resumes_without_gap_or_duplicate(run: Run) -> None:
    await run.advance(4)
    await caught_up(run.sim, run.url)
    run.daemon.send(signal.SIGTERM)
    assert await run.daemon.wait_exit(timeout=30) == 0
    await run.advance(5)  # the market goes on while the daemon is down
    daemon = await run.spawn(run.env)
    await daemon.started()
    run.daemon = daemon
    await daemon.wait_for("stream.connected")
    await run.advance(3)
    await assert_tape_equal(run)
    row = await meta(run.url, "BTCUSDT")
    assert row["rows"] == len(await stored_tape(run.url, "BTCUSDT"))
    assert row["holes_left"] == 0


async def test_postgres_stopped_for_5_seconds_mid_stream(
    sim, daemon_env: dict, spawn_daemon, tmp_path: Path
) -> None:
    data_dir = tmp_path / "own-pg"
    server = await asyncio.to_thread(PgTestServer, data_dir)
    env = collect_env(sim, daemon_env, server.url)
    daemon = await spawn_daemon(env)
    try:
        await daemon.started()
        await daemon.wait_for("stream.connected")
        run = Run(sim, server.url, daemon, spawn_daemon, env)
        await run.advance(3)
        await caught_up(sim, server.url)

        await asyncio.to_thread(server.stop)
        # The outage lasts five seconds, and at least until the daemon has noticed it; the
        # market does not wait for the database.
        clock = asyncio.get_running_loop()
        back_at = clock.time() + 5
        while clock.time() < back_at or not daemon.events("writer.db_unavailable"):
            await run.advance(0.5)
            await asyncio.sleep(0.1)
        server = await asyncio.to_thread(PgTestServer, data_dir)
        await run.advance(3)
        await assert_tape_equal(run)
        await daemon.wait_for("writer.db_recovered")
    finally:
        await daemon.stop()  # before its database goes
        server.stop()


@pytest.mark.settings({"ARB_COLLECT_MAX_CONNECTION_AGE": "2s"})
async def test_connections_are_rotated_before_their_age_limit_without_a_gap(run: Run) -> None:
    async def rotated_twice() -> bool:
        await run.advance(0.5)  # the market goes on while the connections age
        return len(run.daemon.events("stream.rotating")) >= 2

    await eventually(rotated_twice, what="two hand-overs")
    await run.advance(1)
    await assert_tape_equal(run)
    assert not run.daemon.events("collector.gap_detected")
    # Handed over, never dropped: no reconnect, and no hand-over that failed.
    assert not run.daemon.events("stream.reconnecting")
    assert not run.daemon.events("stream.hand_over_failed")
