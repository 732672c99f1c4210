"""Reading stored trades fast: each column of a symbol comes back as one packed blob.

Backtests and the engine's warm start read millions of trades. Building a
Python record per row (what ``fetch`` does) costs about a microsecond each,
and even a binary COPY, parsed by numpy, spends most of its time in the
driver: every row is its own protocol message. Here PostgreSQL packs each
column itself (``string_agg`` of the type's binary send function, grouped
by symbol), so a day of a busy symbol arrives as a few large values which
numpy views as big-endian arrays: the client's share of a read falls from
about 0.6 µs to 0.05 µs per trade.

Sealed days (``store/tape_archive.py``) need no server at all: ``sealed_days_of`` says
which symbol-days of a range have a file, and ``read_sealed`` reads one (checked
against its manifest row), cut to the range asked for.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import asyncpg
import numpy as np
from numpy.typing import NDArray

from arbengine.domain.market import TradeBatch
from arbengine.store.archive_sql import sealed_in
from arbengine.store.tape_archive import (
    DAY_MS,
    SealedFile,
    TapeArchive,
    day_of_ms,
    day_start_ms,
)

# Column kind → (PostgreSQL's binary send function, numpy's big-endian dtype, native dtype).
_KINDS = {
    "i8": ("int8send", ">i8", np.int64),
    "f8": ("float8send", ">f8", np.float64),
    "?": ("boolsend", "?", np.bool_),
}


async def read_columns_by_symbol(
    conn: asyncpg.Connection,
    table: str,
    columns: Sequence[tuple[str, str]],
    symbols: Sequence[str],
    where: str,
    args: Sequence[object],
    *,
    order_by: str | None = None,
) -> dict[str, dict[str, NDArray[Any]]]:
    """Columns of ``table`` per symbol, as native numpy arrays keyed by column name.

    ``columns`` are ``(name, kind)`` pairs of NOT NULL columns (kinds ``i8``, ``f8``, ``?``);
    ``where`` filters further with parameters from ``$2`` on (``$1`` is the symbol list).
    Without ``order_by`` rows come in storage order (a sequential or BRIN scan, no sort);
    every column of a symbol is in the same order either way. Symbols without rows are
    left out.
    """
    aggregates = ", ".join(
        f"string_agg({_KINDS[kind][0]}({name}), ''::bytea"
        + (f" ORDER BY {order_by})" if order_by else ")")
        for name, kind in columns
    )
    async with conn.transaction():
        # One process on the server: parallel workers would compete with the replay for the
        # cores and hand rows back out of order. The few groups' blobs must stay in memory (a
        # spilled hash aggregate writes the whole read to disk and back).
        await conn.execute(
            "SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL work_mem = '1GB'"
        )
        rows = await conn.fetch(
            f"SELECT symbol, count(*), {aggregates} FROM {table} "
            f"WHERE symbol = ANY($1::text[]) AND {where} GROUP BY symbol",
            list(symbols),
            *args,
        )
    out: dict[str, dict[str, NDArray[Any]]] = {}
    for row in rows:
        count = row[1]
        values: dict[str, NDArray[Any]] = {}
        for position, (name, kind) in enumerate(columns, start=2):
            _, wire, native = _KINDS[kind]
            blob = row[position]
            if len(blob) != count * np.dtype(wire).itemsize:
                raise ValueError(f"{table}.{name} of {row[0]}: {len(blob)} bytes for {count} rows")
            values[name] = np.frombuffer(blob, dtype=wire).astype(native)
        out[row[0]] = values
    return out


_TRADE_COLUMNS = (("agg_id", "i8"), ("ts", "i8"), ("price", "f8"), ("qty", "f8"),
                  ("is_buyer_maker", "?"))  # fmt: skip


async def read_trades_of(
    conn: asyncpg.Connection, symbols: Sequence[str], from_ms: int, to_ms: int
) -> dict[str, TradeBatch]:
    """Every stored trade of ``symbols`` with ``from_ms ≤ ts < to_ms``, ordered by (ts, agg_id):
    a batch per symbol, in the order of ``symbols`` (those without trades left out).

    The batches leave ``first_trade_id`` and ``last_trade_id`` unloaded (empty): replays do
    not use them, and they would be a third more to read. One scan for all symbols; rows come
    in storage order, which is (ts, agg_id) order unless a repair filled a hole later, so
    numpy sorts only when it is not."""
    found = await read_columns_by_symbol(
        conn, "agg_trades", _TRADE_COLUMNS, symbols, "ts >= $2 AND ts < $3", (from_ms, to_ms)
    )
    out: dict[str, TradeBatch] = {}
    for symbol in symbols:
        if symbol not in found:
            continue
        cols = found[symbol]
        ts, ids = cols["ts"], cols["agg_id"]
        if not ((np.diff(ts) >= 0).all() and (np.diff(ids) > 0).all()):
            order = np.lexsort((ids, ts))
            cols = {name: values[order] for name, values in cols.items()}
        out[symbol] = TradeBatch.of(
            symbol, cols["agg_id"], cols["ts"], cols["price"], cols["qty"],
            (), (), cols["is_buyer_maker"],
        )  # fmt: skip
    return out


async def sealed_days_of(
    conn: asyncpg.Connection, symbols: Sequence[str], from_ms: int, to_ms: int
) -> dict[tuple[str, date], SealedFile]:
    """The symbol-days of ``[from_ms, to_ms)`` whose trades are to be read from the archive:
    sealed, and not written into since."""
    if to_ms <= from_ms or not symbols:
        return {}
    found = await sealed_in(conn, symbols, day_of_ms(from_ms), day_of_ms(to_ms - 1))
    return {(f.symbol, f.day): f for f in found}


def read_sealed(archive: TapeArchive, sealed: SealedFile, from_ms: int, to_ms: int) -> TradeBatch:
    """The trades of a sealed day with ``from_ms ≤ ts < to_ms``, in (ts, agg_id) order: what
    ``read_trades_of`` gives for that day. A file that fails its checks raises
    ``ArchiveFileRejected`` (the caller reads the day from PostgreSQL)."""
    trades = archive.read(sealed)
    start = day_start_ms(sealed.day)
    if from_ms <= start and to_ms >= start + DAY_MS:
        return trades
    low, high = np.searchsorted(trades.ts, [from_ms, to_ms], side="left")
    return trades.take(slice(int(low), int(high)))


async def stored_trade_counts(
    conn: asyncpg.Connection, symbols: Sequence[str], from_ms: int, to_ms: int
) -> dict[str, int]:
    """Trades stored per symbol over the UTC days that ``[from_ms, to_ms)`` touches, as the
    continuity check counted them (``agg_trades_daily``; days it has not counted yet are
    missing): a cheap estimate of each symbol's share of a replay, not a count to trust."""
    if to_ms <= from_ms or not symbols:
        return {}
    rows = await conn.fetch(
        "SELECT symbol, sum(rows)::bigint AS trades FROM agg_trades_daily "
        "WHERE symbol = ANY($1::text[]) AND day >= $2 AND day <= $3 GROUP BY symbol",
        list(symbols),
        day_of_ms(from_ms),
        day_of_ms(to_ms - 1),
    )
    return {r["symbol"]: int(r["trades"]) for r in rows}
