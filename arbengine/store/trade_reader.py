"""Reading stored trades fast: binary COPY parsed straight into numpy columns.

Backtests and the engine's warm start read millions of trades. Building a
Python record per row (what ``fetch`` does) costs about a microsecond each;
PostgreSQL's binary COPY of fixed-width columns, however, is a sequence of
identical 55-byte rows, which numpy reads as a structured big-endian array
without a Python loop. That is what makes "a month of trades in seconds"
possible.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import numpy as np
from numpy.typing import NDArray

_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = len(_SIGNATURE) + 8  # flags (4) + header extension length (4), extension empty


def row_dtype(columns: Sequence[tuple[str, str]]) -> np.dtype[np.void]:
    """A binary COPY row of fixed-width NOT NULL columns: a field count, then per column
    its int32 length and its big-endian value."""
    fields: list[tuple[str, str]] = [("nfields", ">i2")]
    for name, kind in columns:
        fields += [(f"len_{name}", ">i4"), (name, kind if kind == "?" else f">{kind}")]
    return np.dtype(fields)


_TRADE_FIELDS = (("agg_id", "i8"), ("ts", "i8"), ("price", "f8"), ("qty", "f8"),
                 ("is_buyer_maker", "?"))  # fmt: skip
ROW_DTYPE = row_dtype(_TRADE_FIELDS)
MULTI_DTYPE = row_dtype((("sym", "i4"), *_TRADE_FIELDS))


async def copy_rows(
    conn: asyncpg.Connection, query: str, args: Sequence[object], dtype: np.dtype[np.void]
) -> NDArray[np.void]:
    """Run ``query`` as a binary COPY and view the result as rows of ``dtype`` (no copy)."""
    parts: list[bytes] = []

    async def sink(data: bytes) -> None:
        parts.append(data)

    await conn.copy_from_query(query, *args, output=sink, format="binary")
    stream = b"".join(parts)
    if not stream.startswith(_SIGNATURE):
        raise ValueError("not a PostgreSQL binary COPY stream")
    ext = int.from_bytes(stream[_HEADER - 4 : _HEADER], "big")
    body = memoryview(stream)[_HEADER + ext :]
    if len(body) < 2 or bytes(body[-2:]) != b"\xff\xff":
        raise ValueError("binary COPY stream without its trailer")
    body = body[:-2]
    if len(body) % dtype.itemsize:
        raise ValueError("binary COPY rows do not match the expected columns (a NULL?)")
    rows = np.frombuffer(body, dtype=dtype)
    if rows.size and (rows["nfields"] != len(dtype.names or ()) // 2).any():
        raise ValueError("unexpected row layout in binary COPY stream")
    return rows


@dataclass(frozen=True, slots=True)
class TradeColumns:
    """Trades of one symbol in (ts, agg_id) order, as native-endian numpy columns."""

    symbol: str
    agg_id: NDArray[np.int64]
    ts: NDArray[np.int64]
    price: NDArray[np.float64]
    qty: NDArray[np.float64]
    is_buyer_maker: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.agg_id)


def _columns(symbol: str, rows: NDArray[np.void]) -> TradeColumns:
    return TradeColumns(
        symbol,
        rows["agg_id"].astype(np.int64),
        rows["ts"].astype(np.int64),
        rows["price"].astype(np.float64),
        rows["qty"].astype(np.float64),
        rows["is_buyer_maker"].astype(np.bool_),
    )


async def read_trades(
    conn: asyncpg.Connection, symbol: str, from_ms: int, to_ms: int
) -> TradeColumns:
    """Every stored trade of ``symbol`` with ``from_ms ≤ ts < to_ms``, ordered by (ts, agg_id).

    Reads in storage order and sorts in numpy only when needed."""
    rows = await copy_rows(
        conn,
        "SELECT agg_id, ts, price, qty, is_buyer_maker FROM agg_trades "
        "WHERE symbol = $1 AND ts >= $2 AND ts < $3",
        (symbol, from_ms, to_ms),
        ROW_DTYPE,
    )
    columns = _columns(symbol, rows)
    # Rows come in storage order (a sequential scan is twice as fast as the index), which is
    # id order unless a repair filled a hole later: sort only when it is not (T, agg_id) order.
    ordered = bool((np.diff(columns.ts) >= 0).all()) and bool((np.diff(columns.agg_id) > 0).all())
    if len(columns) > 1 and not ordered:
        order = np.lexsort((columns.agg_id, columns.ts))
        columns = TradeColumns(
            symbol,
            columns.agg_id[order],
            columns.ts[order],
            columns.price[order],
            columns.qty[order],
            columns.is_buyer_maker[order],
        )
    return columns


async def read_trades_of(
    conn: asyncpg.Connection, symbols: Sequence[str], from_ms: int, to_ms: int
) -> dict[str, TradeColumns]:
    """Trades of several symbols in one pass over the time range (one scan, not one each)."""
    rows = await copy_rows(
        conn,
        "SELECT array_position($1::text[], symbol), agg_id, ts, price, qty, is_buyer_maker "
        "FROM agg_trades WHERE symbol = ANY($1::text[]) AND ts >= $2 AND ts < $3",
        (list(symbols), from_ms, to_ms),
        MULTI_DTYPE,
    )
    # Group by symbol with one stable sort of the codes, then gather each column once
    # (boolean masks over the 63-byte rows would copy every row once per symbol).
    codes = rows["sym"].astype(np.int32)
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes, minlength=len(symbols) + 1)
    ids = rows["agg_id"][order].astype(np.int64)
    ts = rows["ts"][order].astype(np.int64)
    price = rows["price"][order].astype(np.float64)
    qty = rows["qty"][order].astype(np.float64)
    maker = rows["is_buyer_maker"][order].astype(np.bool_)
    out: dict[str, TradeColumns] = {}
    start = int(counts[0])
    for position, symbol in enumerate(symbols, start=1):
        stop = start + int(counts[position])
        if stop > start:
            cols = TradeColumns(symbol, ids[start:stop], ts[start:stop], price[start:stop],
                                qty[start:stop], maker[start:stop])  # fmt: skip
            ordered = bool((np.diff(cols.ts) >= 0).all()) and bool((np.diff(cols.agg_id) > 0).all())
            if not ordered:
                again = np.lexsort((cols.agg_id, cols.ts))
                cols = TradeColumns(symbol, cols.agg_id[again], cols.ts[again],
                                    cols.price[again], cols.qty[again],
                                    cols.is_buyer_maker[again])  # fmt: skip
            out[symbol] = cols
        start = stop
    return out


async def iter_trade_chunks(
    conn: asyncpg.Connection, symbol: str, from_ms: int, to_ms: int, chunk_ms: int = 86_400_000
) -> AsyncIterator[TradeColumns]:
    """The same, a time chunk at a time (a day by default), to bound memory on long ranges."""
    start = from_ms
    while start < to_ms:
        end = min(to_ms, start + chunk_ms)
        columns = await read_trades(conn, symbol, start, end)
        if len(columns):
            yield columns
        start = end


_WIDTH = {"i8": 8, "f8": 8}


async def read_fixed_columns(
    conn: asyncpg.Connection, query: str, args: Sequence[object], columns: Sequence[tuple[str, str]]
) -> dict[str, NDArray[Any]]:
    """Columns of a query whose outputs are all NOT NULL bigint (``i8``) or double (``f8``),
    as native arrays keyed by name."""
    rows = await copy_rows(conn, query, args, row_dtype(columns))
    return {name: rows[name].astype(kind) for name, kind in columns}
