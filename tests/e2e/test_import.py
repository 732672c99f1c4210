"""``arbengine import aggtrades`` on generated files in Binance's format."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import asyncpg
import pytest

from tests.conftest import REPO

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker\n"


def rows(first_id: int, n: int) -> list[str]:
    return [
        f"{first_id + i},{90000 + i * 0.1:.1f},{0.001 * (i + 1):.3f},{10 * i},{10 * i + 2},"
        f"{T0 + i * 250},{'true' if i % 3 == 0 else 'false'}\n"
        for i in range(n)
    ]


def run_import(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "arbengine", "import", "aggtrades", *args],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "ARB_DATABASE_URL": database_url},
        cwd=REPO,
        timeout=120,
    )


async def stored(database_url: str) -> list[tuple]:
    conn = await asyncpg.connect(database_url)
    try:
        records = await conn.fetch(
            "SELECT symbol, agg_id, ts, price, qty, first_trade_id, last_trade_id, is_buyer_maker "
            "FROM agg_trades ORDER BY symbol, agg_id"
        )
        return [tuple(r) for r in records]
    finally:
        await conn.close()


async def vacuums(database_url: str) -> int:
    conn = await asyncpg.connect(database_url)
    try:
        count = await conn.fetchval(
            "SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'agg_trades_202601'"
        )
        return int(count)
    finally:
        await conn.close()


@pytest.fixture
async def migrated(database_url: str) -> str:
    from arbengine.store.migrations import apply_migrations

    conn = await asyncpg.connect(database_url)
    await apply_migrations(conn)
    await conn.close()
    return database_url


async def test_header_plain_and_zipped_files_import_exactly_and_idempotently(
    migrated: str, tmp_path: Path
) -> None:
    with_header = tmp_path / "BTCUSDT-aggTrades-2026-01-01.csv"
    with_header.write_text(HEADER + "".join(rows(100, 50)))
    without_header = tmp_path / "ETHUSDT-aggTrades-2026-01-01.csv"
    without_header.write_text("".join(rows(7, 20)))
    zipped = tmp_path / "SOLUSDT-aggTrades-2026-01-01.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("SOLUSDT-aggTrades-2026-01-01.csv", "".join(rows(1, 30)))

    result = run_import(migrated, str(with_header), str(without_header), str(zipped))
    assert result.returncode == 0, result.stderr
    assert "BTCUSDT 50 rows (ids 100..149), 50 new" in result.stdout
    assert "SOLUSDT 30 rows (ids 1..30), 30 new" in result.stdout

    first = await stored(migrated)
    assert len(first) == 100
    # New rows are vacuumed at once, so the first backtest does not pay for it.
    assert "vacuuming agg_trades" in result.stdout
    assert await vacuums(migrated) == 1
    btc = [r for r in first if r[0] == "BTCUSDT"]
    assert btc[0] == ("BTCUSDT", 100, T0, 90000.0, 0.001, 0, 2, True)
    assert btc[49] == ("BTCUSDT", 149, T0 + 49 * 250, 90004.9, 0.05, 490, 492, False)

    again = run_import(migrated, str(with_header), str(zipped))
    assert again.returncode == 0
    assert "BTCUSDT 50 rows (ids 100..149), 0 new" in again.stdout
    assert await stored(migrated) == first
    assert "vacuuming" not in again.stdout
    assert await vacuums(migrated) == 1


async def test_a_malformed_row_names_file_and_line_and_writes_nothing_of_that_file(
    migrated: str, tmp_path: Path
) -> None:
    good = tmp_path / "BTCUSDT-aggTrades-2026-01-01.csv"
    good.write_text("".join(rows(1, 5)))
    bad_rows = rows(1, 10)
    bad_rows[6] = "7,90000.6,abc,60,62,1767225601500,false\n"
    bad = tmp_path / "ETHUSDT-aggTrades-2026-01-01.csv"
    bad.write_text(HEADER + "".join(bad_rows))

    result = run_import(migrated, str(good), str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"arbengine: {bad}:8: not a valid aggTrade row: "
        "['7', '90000.6', 'abc', '60', '62', '1767225601500', 'false']"
    )
    symbols = {r[0] for r in await stored(migrated)}
    assert symbols == {"BTCUSDT"}  # the good file went in whole, the bad one not at all


def test_a_file_whose_name_does_not_tell_the_symbol_needs_one(tmp_path: Path) -> None:
    path = tmp_path / "trades.csv"
    path.write_text("".join(rows(1, 2)))
    result = run_import("postgresql://unused", str(path))
    assert result.returncode == 2
    assert "cannot tell the symbol from the file name; pass --symbol" in result.stderr
