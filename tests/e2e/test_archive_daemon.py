"""The daemon seals the days the continuity check has proven complete, in a supervised
component: an archive it cannot write is waited out (degraded, never a stop), and once it
can write, every ready day is sealed."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest

from arbengine.store.migrations import apply_migrations
from tests.support.daemon import DaemonProcess
from tests.support.tape import D0, DAY_MS, Tape, count_days, store_trades
from tests.support.waiting import eventually


async def health(daemon: DaemonProcess) -> dict[str, Any]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"{await daemon.started()}/api/health") as response,
    ):
        body: dict[str, Any] = await response.json()
        return body


async def test_the_daemon_seals_ready_days_and_waits_out_an_archive_it_cannot_write(
    database_url: str, daemon_env: dict[str, str], spawn_daemon: Any, tmp_path: Path
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        for tape in (Tape("BTCUSDT", 60_000.0, 31), Tape("ETHUSDT", 3_000.0, 32)):
            batches = [tape.day(D0 + k * DAY_MS, 1_000) for k in range(3)]
            batches.append(tape.day(D0 + 3 * DAY_MS, 10, span_ms=60_000))
            await store_trades(conn, batches)
        await count_days(conn, ["BTCUSDT", "ETHUSDT"], D0, D0 + 4 * DAY_MS)
    finally:
        await conn.close()
    taken = tmp_path / "taken"
    taken.write_text("a file where the archive's directory should be")
    env = {
        **daemon_env,
        "ARB_DATABASE_URL": database_url,
        "ARB_ARCHIVE_DIR": str(taken / "archive"),
        "ARB_ARCHIVE_SEAL_INTERVAL": "1s",
        "ARB_COLLECT_SYMBOLS": "BTCUSDT,ETHUSDT",  # not collected here: sealed all the same
        "ARB_ENGINE_ENABLED": "false",
        "ARB_RUNTIME_RESTART_MAX": "2s",
        "ARB_RUNTIME_HEALTHY_AFTER": "3s",  # recovered once it has run this long
    }
    daemon = await spawn_daemon(env)
    await daemon.started()

    def refused(line: dict[str, Any]) -> bool:
        return line.get("event") == "supervisor.retrying" and line.get("task") == "archive"

    retrying = await daemon.wait_for(refused, 60)
    assert retrying["error"].startswith(
        "ArchiveUnavailable: cannot write agg_trades/symbol=BTCUSDT/2026-01-01.parquet "
        f"in the tape archive ({taken / 'archive'}): "
    ), retrying
    body = await health(daemon)
    assert [r["component"] for r in body["reasons"]] == ["archive"], body
    assert not daemon.events("archive.sealed")

    taken.unlink()  # the storage is back

    async def all_sealed() -> bool:
        return len(daemon.events("archive.sealed")) == 6

    await eventually(all_sealed, 60, what="six days sealed")
    sealed = sorted((e["symbol"], e["day"], e["trades"]) for e in daemon.events("archive.sealed"))
    assert sealed == [
        (symbol, day, 1_000)
        for symbol in ("BTCUSDT", "ETHUSDT")
        for day in ("2026-01-01", "2026-01-02", "2026-01-03")
    ]
    root = taken / "archive"
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.parquet")) == [
        f"agg_trades/symbol={symbol}/{day}.parquet"
        for symbol in ("BTCUSDT", "ETHUSDT")
        for day in ("2026-01-01", "2026-01-02", "2026-01-03")
    ]

    async def recovered() -> bool:
        return (await health(daemon))["reasons"] == []

    await eventually(recovered, 30, what="the archive component healthy again")
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(60) == 0


pytestmark = pytest.mark.timeout(240)
