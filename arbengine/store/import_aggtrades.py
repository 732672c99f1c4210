"""``arbengine import aggtrades``: Binance's public aggTrades CSV files into ``agg_trades``.

Files are ``<SYMBOL>-aggTrades-<date>.csv`` or the same zipped, with the
columns ``agg_trade_id, price, quantity, first_trade_id, last_trade_id,
transact_time, is_buyer_maker`` and with or without a header row.

Each file is parsed and checked completely before anything of it is written,
then copied in one transaction (``ON CONFLICT DO NOTHING``, so importing a
file twice changes nothing). A bad row stops the import with the file and
line named; files imported before it stay imported, whole; the bad file
writes nothing. The days it covers are counted as the continuity check counts
them (``agg_trades_daily``), so complete imported days can be sealed into the
tape archive.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import numpy as np

from arbengine.domain.errors import FatalError
from arbengine.domain.market import TradeBatch
from arbengine.store.continuity_sql import refresh_daily_completeness
from arbengine.store.market_sql import insert_trades, update_trade_meta
from arbengine.store.partitions import ensure_partitions_covering

DAY_MS = 86_400_000
HEADER = (
    "agg_trade_id",
    "price",
    "quantity",
    "first_trade_id",
    "last_trade_id",
    "transact_time",
    "is_buyer_maker",
)
_SYMBOL = re.compile(r"^([A-Z0-9]{2,30})-aggTrades-")
_BOOL = {"true": True, "false": False, "True": True, "False": False, "1": True, "0": False}


class ImportFileError(FatalError):
    """A file or row that cannot be imported; the message names file and line."""


@dataclass(frozen=True)
class ImportedFile:
    path: Path
    symbol: str
    rows: int
    inserted: int
    first_id: int
    last_id: int


def symbol_from_name(path: Path) -> str | None:
    match = _SYMBOL.match(path.name)
    return match.group(1) if match else None


def _text_lines(path: Path) -> Iterator[str]:
    if path.suffix.lower() == ".zip":
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if m.lower().endswith(".csv")]
            if len(members) != 1:
                raise ImportFileError(
                    f"{path}: expected one .csv inside the zip, found {len(members)}"
                )
            with archive.open(members[0]) as raw:
                yield from io.TextIOWrapper(raw, encoding="utf-8", newline="")
    else:
        with path.open(encoding="utf-8", newline="") as handle:
            yield from handle


def parse_file(path: Path, symbol: str) -> TradeBatch:
    """Every row of ``path`` as a batch ordered by id; raises naming file:line on a bad row.

    Columns are ``array`` buffers (8 bytes a value), not lists of Python objects, so a
    day of BTCUSDT (3 million rows) costs about 170 MB while it is checked and copied.
    """
    ids = array("q")
    ts = array("q")
    price = array("d")
    qty = array("d")
    first = array("q")
    last = array("q")
    maker = array("b")
    try:
        reader = csv.reader(_text_lines(path))
        for line_no, row in enumerate(reader, start=1):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if line_no == 1 and row[0].strip() == HEADER[0]:
                if tuple(c.strip() for c in row[: len(HEADER)]) != HEADER:
                    raise ImportFileError(
                        f"{path}:1: unexpected header {row}; expected {list(HEADER)}"
                    )
                continue
            if len(row) < len(HEADER):
                raise ImportFileError(
                    f"{path}:{line_no}: expected {len(HEADER)} columns, got {len(row)}: {row}"
                )
            try:
                agg_id, t = int(row[0]), int(row[5])
                p, q = float(row[1]), float(row[2])
                f, lt = int(row[3]), int(row[4])
                m = _BOOL[row[6].strip()]
            except (ValueError, KeyError):
                raise ImportFileError(
                    f"{path}:{line_no}: not a valid aggTrade row: {row}"
                ) from None
            if p <= 0 or q <= 0 or agg_id < 0 or t <= 0:
                raise ImportFileError(
                    f"{path}:{line_no}: price, quantity, id and time must be positive: {row}"
                )
            if t >= 10**14:  # some newer files give microseconds
                t //= 1000
            ids.append(agg_id)
            ts.append(t)
            price.append(p)
            qty.append(q)
            first.append(f)
            last.append(lt)
            maker.append(m)
    except (OSError, zipfile.BadZipFile, UnicodeDecodeError, csv.Error) as exc:
        raise ImportFileError(f"{path}: cannot read: {exc}") from None
    batch = TradeBatch.of(symbol, ids, ts, price, qty, first, last, np.asarray(maker, np.bool_))
    if (np.diff(batch.agg_id) > 0).all():
        return batch
    batch = batch.take(np.argsort(batch.agg_id, kind="stable"))
    if (np.diff(batch.agg_id) == 0).any():
        raise ImportFileError(f"{path}: the same agg_trade_id appears twice")
    return batch


async def import_file(
    conn: asyncpg.Connection,
    path: Path,
    symbol: str | None = None,
    chunk_rows: int = 200_000,
    progress: Callable[[int], None] | None = None,
) -> ImportedFile:
    symbol = symbol or symbol_from_name(path)
    if symbol is None:
        raise ImportFileError(
            f"{path}: cannot tell the symbol from the file name; pass --symbol (e.g. BTCUSDT)"
        )
    batch = parse_file(path, symbol)
    inserted_total = 0
    async with conn.transaction():
        if len(batch):
            await ensure_partitions_covering(conn, int(batch.ts.min()), int(batch.ts.max()))
        for start in range(0, len(batch), chunk_rows):
            part = batch.take(slice(start, start + chunk_rows))
            inserted = await insert_trades(conn, [part])
            await update_trade_meta(conn, [part], inserted)
            inserted_total += inserted.get(symbol, 0)
            if progress is not None:
                progress(len(part))
        if inserted_total:
            first_day = int(batch.ts.min()) // DAY_MS * DAY_MS
            last_day = int(batch.ts.max()) // DAY_MS * DAY_MS
            await refresh_daily_completeness(conn, symbol, first_day, last_day + DAY_MS)
    return ImportedFile(
        path,
        symbol,
        len(batch),
        inserted_total,
        int(batch.agg_id[0]) if len(batch) else 0,
        int(batch.agg_id[-1]) if len(batch) else 0,
    )


async def settle_imported_trades(conn: asyncpg.Connection) -> None:
    """VACUUM (ANALYZE) the trade table after a bulk import.

    Freshly copied rows have no hint bits and the table no visibility map yet: the first
    backtest over them would set every row's hint bits and race autovacuum for the disk,
    about three times slower on a month of trades. Partitions already vacuumed are skipped
    quickly, so this costs about what the new rows cost.
    """
    await conn.execute("VACUUM (ANALYZE) agg_trades")
