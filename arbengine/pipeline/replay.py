"""Feeding stored history into a pipeline: the one way both warm start and backtest read.

History is read a chunk (a day by default) at a time. Within a chunk, the
indicator values, premiumIndex readings and liquidations are fed first, in
visible-time order, then each symbol's trades in (T, agg_id) order. That is
exactly equivalent to a strict time merge, because the feature state only
ever uses values known before the tick it evaluates, and each symbol's ticks
depend on that symbol's events alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from arbengine.domain.market import Indicator, Liquidation, RateSnapshot
from arbengine.pipeline.core import SignalPipeline
from arbengine.signals import TradeColumns
from arbengine.store.market_reads import read_indicators, read_liquidations
from arbengine.store.trade_reader import read_fixed_columns, read_trades

DAY_MS = 86_400_000


@dataclass
class ReplayStats:
    trades: int = 0
    events: int = 0


def _visible(event: Indicator | RateSnapshot | Liquidation) -> int:
    if isinstance(event, Indicator):
        return event.known_at
    if isinstance(event, RateSnapshot):
        return event.visible_at
    return event.ts


async def replay_history(
    pipeline: SignalPipeline,
    conn: asyncpg.Connection,
    symbols: Sequence[str],
    from_ms: int,
    to_ms: int,
    *,
    chunk_ms: int = DAY_MS,
    on_chunk: Callable[[int, int], None] | None = None,
) -> ReplayStats:
    """Feed everything stored for ``symbols`` in ``[from_ms, to_ms)``.

    ``on_chunk(trades, chunk_end_ms)`` reports progress after each chunk.
    """
    stats = ReplayStats()
    start = from_ms
    while start < to_ms:
        end = min(to_ms, start + chunk_ms)
        events: list[Indicator | RateSnapshot | Liquidation] = [
            *await read_indicators(conn, symbols, start, end),
            *await read_liquidations(conn, symbols, start, end),
        ]
        for symbol in symbols:
            # premiumIndex readings come every 2 s: read and add them as columns.
            rates = await read_fixed_columns(
                conn,
                "SELECT known_at, funding_rate, index_price FROM rate_snapshots "
                "WHERE symbol = $1 AND known_at >= $2 AND known_at < $3 ORDER BY known_at, ts",
                (symbol, start, end),
                (("known_at", "i8"), ("funding_rate", "f8"), ("index_price", "f8")),
            )
            pipeline.core.add_rate_columns(
                symbol,
                rates["known_at"].tolist(),
                rates["funding_rate"].tolist(),
                rates["index_price"].tolist(),
            )
            stats.events += len(rates["known_at"])
        events.sort(key=_visible)
        for event in events:
            pipeline.on_event(event)
        stats.events += len(events)
        chunk_trades = 0
        for symbol in symbols:
            cols = await read_trades(conn, symbol, start, end)
            if len(cols):
                pipeline.on_trades(
                    symbol,
                    TradeColumns(cols.agg_id, cols.ts, cols.price, cols.qty, cols.is_buyer_maker),
                )
                chunk_trades += len(cols)
        stats.trades += chunk_trades
        if on_chunk is not None:
            on_chunk(chunk_trades, end)
        start = end
    return stats
