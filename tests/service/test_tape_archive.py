"""The tape archive on a real PostgreSQL: which days are sealed, files identical to the table,
a repaired day read from the table then sealed again, a write racing a seal, a corrupted
file refused and its day read from the table with a warning."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import asyncpg
import pyarrow.parquet as pq
import pytest
from structlog.testing import capture_logs

from arbengine.domain.market import MarketEvent, TradeBatch
from arbengine.pipeline.replay import replay_history
from arbengine.store.archive_sealer import seal_ready_days
from arbengine.store.migrations import apply_migrations
from arbengine.store.tape_archive import TapeArchive, difference
from arbengine.store.trade_reader import read_sealed, read_trades_of, sealed_days_of
from tests.support.tape import D0, DAY_MS, Tape, count_days, store_trades, without
from tests.support.waiting import eventually

DAYS = [date(2026, 1, 1), date(2026, 1, 2), date(2026, 1, 3), date(2026, 1, 4)]


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    await apply_migrations(connection)
    yield connection
    await connection.close()


async def three_days(conn: asyncpg.Connection) -> None:
    """BTCUSDT: three whole days and the first hour of a fourth. ETHUSDT: a day, a day with a
    hole the continuity check could not fill, and a third day with nothing after it."""
    btc, eth = Tape("BTCUSDT", 60_000.0, 1), Tape("ETHUSDT", 3_000.0, 2)
    batches = [btc.day(D0 + k * DAY_MS, 3_000) for k in range(3)]
    batches.append(btc.day(D0 + 3 * DAY_MS, 50, span_ms=3_600_000))
    batches += [eth.day(D0, 2_000), without(eth.day(D0 + DAY_MS, 2_000), range(3_000, 3_010))]
    batches.append(eth.day(D0 + 2 * DAY_MS, 2_000))
    await store_trades(conn, batches)
    await count_days(conn, ["BTCUSDT", "ETHUSDT"], D0, D0 + 4 * DAY_MS)


async def table_day(conn: asyncpg.Connection, symbol: str, day: date) -> TradeBatch:
    start = (day - date(1970, 1, 1)).days * DAY_MS
    return (await read_trades_of(conn, [symbol], start, start + DAY_MS))[symbol]


async def test_days_proven_complete_are_sealed_and_read_back_as_the_table_holds_them(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await three_days(conn)
    archive = TapeArchive(str(tmp_path / "archive"))

    outcomes = await seal_ready_days(conn, archive)

    # BTCUSDT's fourth day has no day after it; ETHUSDT's second has a hole and its third
    # nothing after it.
    assert [(o.symbol, o.day, o.rows, o.resealed) for o in outcomes] == [
        ("BTCUSDT", DAYS[0], 3_000, False),
        ("ETHUSDT", DAYS[0], 2_000, False),
        ("BTCUSDT", DAYS[1], 3_000, False),
        ("BTCUSDT", DAYS[2], 3_000, False),
    ]
    files = sorted(p.relative_to(tmp_path / "archive").as_posix()
                   for p in (tmp_path / "archive").rglob("*") if p.is_file())  # fmt: skip
    assert files == [
        "agg_trades/symbol=BTCUSDT/2026-01-01.parquet",
        "agg_trades/symbol=BTCUSDT/2026-01-02.parquet",
        "agg_trades/symbol=BTCUSDT/2026-01-03.parquet",
        "agg_trades/symbol=ETHUSDT/2026-01-01.parquet",
    ]
    sealed = await sealed_days_of(conn, ["BTCUSDT", "ETHUSDT"], D0, D0 + 4 * DAY_MS)
    assert len(sealed) == 4
    for (symbol, day), item in sealed.items():
        start = (day - date(1970, 1, 1)).days * DAY_MS
        from_file = read_sealed(archive, item, start, start + DAY_MS)
        assert difference(await table_day(conn, symbol, day), from_file) is None
        assert (item.rows, item.bytes) == (len(from_file), (tmp_path / "archive" / item.path)
                                           .stat().st_size)  # fmt: skip
    # Part of a day, as a backtest's first chunk reads it: what the table gives for it.
    item = sealed[("BTCUSDT", DAYS[1])]
    part = read_sealed(archive, item, D0 + DAY_MS + 6 * 3_600_000, D0 + DAY_MS + 18 * 3_600_000)
    table = await read_trades_of(
        conn, ["BTCUSDT"], D0 + DAY_MS + 6 * 3_600_000, D0 + DAY_MS + 18 * 3_600_000
    )
    assert 0 < len(part) < 3_000
    assert difference(table["BTCUSDT"], part) is None

    # Any Parquet reader opens the files: the replay's columns, zstd, the day in the metadata.
    parquet = pq.ParquetFile(tmp_path / "archive" / item.path)
    assert parquet.schema_arrow.names == ["agg_id", "ts", "price", "qty", "is_buyer_maker"]
    assert parquet.metadata.row_group(0).column(2).compression == "ZSTD"
    assert parquet.schema_arrow.metadata[b"arbengine.day"] == b"2026-01-02"

    assert await seal_ready_days(conn, archive) == []  # written once


async def test_a_repaired_day_is_read_from_the_table_until_it_is_sealed_again(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    await three_days(conn)
    archive = TapeArchive(str(tmp_path / "archive"))
    await seal_ready_days(conn, archive)
    day_start = D0 + DAY_MS
    before = await table_day(conn, "BTCUSDT", DAYS[1])

    # Trades of a sealed day lost from the table, and repaired with corrected prices.
    lost = before.take(slice(100, 110))
    await conn.execute(
        "DELETE FROM agg_trades WHERE symbol = 'BTCUSDT' AND agg_id BETWEEN $1 AND $2",
        int(lost.agg_id[0]),
        int(lost.agg_id[-1]),
    )
    repaired = TradeBatch.of("BTCUSDT", lost.agg_id, lost.ts, lost.price + 1.0, lost.qty,
                             lost.agg_id, lost.agg_id, lost.is_buyer_maker)  # fmt: skip
    await store_trades(conn, [repaired])

    changed = await conn.fetchrow(
        "SELECT changed_at FROM agg_trades_archive WHERE symbol = 'BTCUSDT' AND day = $1", DAYS[1]
    )
    assert changed is not None
    assert changed["changed_at"] is not None
    sealed = await sealed_days_of(conn, ["BTCUSDT"], day_start, day_start + DAY_MS)
    assert sealed == {}  # backtests read the day from the table now
    untouched = await conn.fetchval("SELECT count(*) FROM agg_trades_archive "
                                    "WHERE changed_at IS NOT NULL")  # fmt: skip
    assert untouched == 1  # only the day written into

    outcomes = await seal_ready_days(conn, archive)
    assert [(o.symbol, o.day, o.resealed) for o in outcomes] == [("BTCUSDT", DAYS[1], True)]
    sealed = await sealed_days_of(conn, ["BTCUSDT"], day_start, day_start + DAY_MS)
    from_file = read_sealed(archive, sealed[("BTCUSDT", DAYS[1])], day_start, day_start + DAY_MS)
    table = await table_day(conn, "BTCUSDT", DAYS[1])
    assert difference(table, from_file) is None
    assert from_file.price[100:110].tolist() == (lost.price + 1.0).tolist()


async def test_a_write_into_a_day_being_sealed_is_never_lost_between_read_and_record(
    conn: asyncpg.Connection, database_url: str, tmp_path: Path
) -> None:
    """A repair still writing a day when the sealer comes holds it off: the sealer reads the
    day only once the repair has committed, so the file cannot miss what the table has."""
    await three_days(conn)
    archive = TapeArchive(str(tmp_path / "archive"))
    # A trade of the second day the count has not seen, written and not yet committed.
    late = TradeBatch.of("BTCUSDT", [900_000], [D0 + DAY_MS + 5], [60_000.0], [0.5],
                         [900_000], [900_000], [False])  # fmt: skip
    writer = await asyncpg.connect(database_url)
    try:
        transaction = writer.transaction()
        await transaction.start()
        await store_trades(writer, [late])
        sealing = asyncio.create_task(seal_ready_days(conn, archive, ["BTCUSDT"]))

        async def sealer_waits() -> bool:
            waiting = await writer.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            return bool(waiting)

        await eventually(sealer_waits, 30, what="the sealer waiting for the writer's day")
        assert not sealing.done()
        await transaction.commit()
        outcomes = await asyncio.wait_for(sealing, 60)
    finally:
        await writer.close()

    second = [o for o in outcomes if o.day == DAYS[1]]
    assert [(o.recounted, o.rows) for o in second] == [(True, 0)]  # counted again, not sealed
    sealed = await sealed_days_of(conn, ["BTCUSDT"], D0, D0 + 3 * DAY_MS)
    assert ("BTCUSDT", DAYS[1]) not in sealed
    for (symbol, day), item in sealed.items():
        start = (day - date(1970, 1, 1)).days * DAY_MS
        from_file = read_sealed(archive, item, start, start + DAY_MS)
        assert difference(await table_day(conn, symbol, day), from_file) is None


class Recorder:
    """A replay target keeping the trades fed to it, in order."""

    def __init__(self) -> None:
        self.trades: list[TradeBatch] = []

    def on_event(self, event: MarketEvent) -> None:
        pass

    def on_rate_columns(self, symbol: str, known_ms: list[int], funding_rate: list[float],
                        index: list[float]) -> None:  # fmt: skip
        pass

    def on_trades(self, trades: TradeBatch) -> None:
        self.trades.append(trades)

    def columns(self) -> list[tuple[str, list[int], list[float]]]:
        return [(b.symbol, b.agg_id.tolist(), b.price.tolist()) for b in self.trades]


@pytest.mark.parametrize("fault", ["flipped byte", "another day's file", "missing"])
async def test_a_corrupted_file_is_refused_and_its_day_read_from_the_table_with_a_warning(
    conn: asyncpg.Connection, tmp_path: Path, fault: str
) -> None:
    await three_days(conn)
    archive = TapeArchive(str(tmp_path / "archive"))
    await seal_ready_days(conn, archive)
    root = tmp_path / "archive" / "agg_trades" / "symbol=BTCUSDT"
    target = root / "2026-01-02.parquet"
    size = target.stat().st_size
    if fault == "flipped byte":
        data = bytearray(target.read_bytes())
        data[len(data) // 2] ^= 0x40
        target.write_bytes(bytes(data))
    elif fault == "another day's file":
        target.write_bytes((root / "2026-01-03.parquet").read_bytes())
    else:
        target.unlink()
    # From 12:00 of the first day: the first chunk is part of a day.
    span = (D0 + DAY_MS // 2, D0 + 3 * DAY_MS)

    from_table = Recorder()
    await replay_history(from_table, conn, ["BTCUSDT", "ETHUSDT"], *span)
    from_archive = Recorder()
    with capture_logs() as logs:
        stats = await replay_history(
            from_archive, conn, ["BTCUSDT", "ETHUSDT"], *span, archive=archive
        )

    rejected = [e for e in logs if e["event"] == "archive.file_rejected"]
    assert [(e["log_level"], e["symbol"], e["day"]) for e in rejected] == [
        ("warning", "BTCUSDT", "2026-01-02")
    ]
    checksum = "does not match its SHA-256 checksum"
    other_size = (root / "2026-01-03.parquet").stat().st_size
    swapped = "bytes, " if size != other_size else checksum
    reason = {"flipped byte": checksum, "missing": "is missing", "another day's file": swapped}
    assert reason[fault] in rejected[0]["reason"]
    assert stats.rejected_files == 1
    assert from_archive.columns() == from_table.columns()
    # Of the sealed symbol-days in the range, all but the refused one came from files.
    first_afternoon = await conn.fetchval(
        "SELECT count(*) FROM agg_trades WHERE ts >= $1 AND ts < $2", span[0], D0 + DAY_MS
    )
    assert stats.archived_trades == first_afternoon + 3_000  # and BTCUSDT's third day


async def test_imported_days_are_counted_and_sealed(
    conn: asyncpg.Connection, tmp_path: Path
) -> None:
    """``import aggtrades`` counts the days it wrote, as the continuity check would."""
    from arbengine.store.import_aggtrades import import_file

    tape = Tape("SOLUSDT", 150.0, 3)
    rows = []
    for k in range(3):
        batch = tape.day(D0 + k * DAY_MS, 500)
        rows += [
            f"{i},{p},{q},{i},{i},{t},{'true' if m else 'false'}"
            for i, p, q, t, m in zip(batch.agg_id.tolist(), batch.price.tolist(),
                                     batch.qty.tolist(), batch.ts.tolist(),
                                     batch.is_buyer_maker.tolist(), strict=True)
        ]  # fmt: skip
    path = tmp_path / "SOLUSDT-aggTrades-2026-01.csv"
    path.write_text("\n".join(rows) + "\n")
    await import_file(conn, path)

    counted = await conn.fetch(
        "SELECT day, rows, completeness FROM agg_trades_daily WHERE symbol = 'SOLUSDT' ORDER BY 1"
    )
    assert [(r["day"], r["rows"], r["completeness"]) for r in counted] == [
        (DAYS[0], 500, 1.0), (DAYS[1], 500, 1.0), (DAYS[2], 500, 1.0)
    ]  # fmt: skip
    outcomes = await seal_ready_days(conn, TapeArchive(str(tmp_path / "archive")))
    assert [(o.symbol, o.day) for o in outcomes] == [("SOLUSDT", DAYS[0]), ("SOLUSDT", DAYS[1])]
