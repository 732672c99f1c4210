"""A tape with a history, written through the store's own writers (trades, gaps and their
outcomes, per-day completeness, liquidations), for the tape routes and the Tape page.

Values are chosen so the expected answers can be worked out by hand:

- BTCUSDT, day A (two UTC days ago) from 20:00: ids 1–40 every 3 min, complete.
- BTCUSDT, day B (yesterday) from 10:00: ids 41–140 every 3 min, but 90–99 are a hole
  (the exchange had them no more); 60–69 and 110–114 were gaps, repaired. Day B: 90 of
  100 ids stored, completeness 0.9.
- ETHUSDT, day B from 10:00: ids 1–40 every 5 min but 15–19 and 30–31; the gap 10–19 was
  repaired but for the hole 15–19 (partly repaired); 30–31 was seen and has no outcome yet
  (open). Day B: 33 of 40 ids stored.
- Liquidations of BTCUSDT on day B: longs (SELL) at 10:30, 0.5 at 60 100 and 0.25 at
  60 080 (45 070 USDT); a short (BUY) at 12:00, 0.2 at 60 500 (12 100 USDT).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg

from arbengine.domain.market import Liquidation, TapeGap, TradeBatch
from arbengine.store.continuity_sql import refresh_daily_completeness
from arbengine.store.market_sql import (
    insert_liquidations,
    insert_trades,
    record_gaps,
    update_trade_meta,
)
from arbengine.store.partitions import ensure_partitions_covering

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000


@dataclass(frozen=True)
class TapeSeed:
    day_a: dt.date
    day_b: dt.date
    day_a_ms: int
    """Start of day A (UTC)."""
    day_b_ms: int
    btc_ts: dict[int, int]
    """Stored BTCUSDT trade id → its time."""
    eth_ts: dict[int, int]
    long_liquidations_at: int
    short_liquidation_at: int


def btc_price(agg_id: int) -> float:
    return 60_000.0 + 5.0 * agg_id + (agg_id % 7) * 3.0


def _batch(symbol: str, times: dict[int, int], price: float) -> TradeBatch:
    ids = sorted(times)
    return TradeBatch.of(
        symbol,
        ids,
        [times[i] for i in ids],
        [btc_price(i) if symbol == "BTCUSDT" else price + i for i in ids],
        [0.01 * (i % 5 + 1) for i in ids],
        [1000 + 2 * i for i in ids],
        [1001 + 2 * i for i in ids],
        [i % 2 == 0 for i in ids],
    )


def _liquidation(symbol: str, ts: int, side: str, qty: float, price: float) -> Liquidation:
    return Liquidation(
        symbol=symbol, ts=ts, event_time=ts + 5, side=side,  # type: ignore[arg-type]
        order_type="LIMIT", time_in_force="IOC", qty=qty, price=price, avg_price=price,
        status="FILLED", last_qty=qty, filled_qty=qty,
    )  # fmt: skip


async def seed_tape(conn: asyncpg.Connection, now: int) -> TapeSeed:
    day_b_ms = now - now % DAY - DAY
    day_a_ms = day_b_ms - DAY
    a_start, b_start = day_a_ms + 20 * HOUR, day_b_ms + 10 * HOUR
    btc = {k: a_start + (k - 1) * 3 * MINUTE for k in range(1, 41)}
    btc |= {k: b_start + (k - 41) * 3 * MINUTE for k in range(41, 141) if not 90 <= k <= 99}
    eth = {k: b_start + (k - 1) * 5 * MINUTE for k in range(1, 41)}
    eth = {k: t for k, t in eth.items() if not (15 <= k <= 19 or 30 <= k <= 31)}
    batches = [_batch("BTCUSDT", btc, 0.0), _batch("ETHUSDT", eth, 3000.0)]
    async with conn.transaction():
        await ensure_partitions_covering(conn, day_a_ms, day_b_ms + DAY)
        await update_trade_meta(conn, batches, await insert_trades(conn, batches))
        await record_gaps(
            conn,
            [
                TapeGap("BTCUSDT", 60, 69, "seen"),
                TapeGap("BTCUSDT", 60, 69, "repaired"),
                TapeGap("BTCUSDT", 90, 99, "seen"),
                TapeGap("BTCUSDT", 90, 99, "hole"),
                TapeGap("BTCUSDT", 110, 114, "seen"),
                TapeGap("BTCUSDT", 110, 114, "repaired"),
                TapeGap("ETHUSDT", 10, 19, "seen"),
                TapeGap("ETHUSDT", 15, 19, "hole"),
                TapeGap("ETHUSDT", 30, 31, "seen"),
            ],
        )
        for symbol in ("BTCUSDT", "ETHUSDT"):
            await refresh_daily_completeness(conn, symbol, day_a_ms, day_b_ms + DAY)
        longs_at, short_at = b_start + 30 * MINUTE, b_start + 2 * HOUR
        await insert_liquidations(
            conn,
            [
                _liquidation("BTCUSDT", longs_at + 1_000, "SELL", 0.5, 60_100.0),
                _liquidation("BTCUSDT", longs_at + 2_000, "SELL", 0.25, 60_080.0),
                _liquidation("BTCUSDT", short_at + 1_000, "BUY", 0.2, 60_500.0),
            ],
        )
    return TapeSeed(
        day_a=dt.datetime.fromtimestamp(day_a_ms / 1000, dt.UTC).date(),
        day_b=dt.datetime.fromtimestamp(day_b_ms / 1000, dt.UTC).date(),
        day_a_ms=day_a_ms,
        day_b_ms=day_b_ms,
        btc_ts=btc,
        eth_ts=eth,
        long_liquidations_at=longs_at,
        short_liquidation_at=short_at,
    )
