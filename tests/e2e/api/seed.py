"""Rows of every table the read routes serve, written straight into PostgreSQL.

The engine's writers (signals, paper trading) are built elsewhere; the API is
tested on rows shaped as those writers will write them. Values are chosen so
expected answers can be worked out by hand (see test_routes.py).
"""

from __future__ import annotations

import datetime as dt

import asyncpg

from arbengine.store.partitions import ensure_partitions_covering

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000


async def seed_market_data(conn: asyncpg.Connection, now: int, base: int) -> None:
    """``base``: the start of an hour at least three hours before ``now``."""
    # premiumIndex samples: BTC every 10 minutes for two hours; ETH once (4 h funding).
    btc = [
        ("BTCUSDT", base + k * 10 * MINUTE, 100.0 + k, 99.0 + k, 0.0001 * (k - 5), base + 8 * HOUR)
        for k in range(12)
    ]
    await conn.executemany(
        "INSERT INTO rate_snapshots (symbol, ts, known_at, mark_price, index_price, "
        "funding_rate, next_funding_time) VALUES ($1, $2, $2, $3, $4, $5, $6)",
        [*btc, ("ETHUSDT", now - MINUTE, 2000.0, 1999.0, 0.0002, now + HOUR)],
    )
    await conn.executemany(
        "INSERT INTO market_indicators (symbol, kind, ts, known_at, value, data) "
        "VALUES ($1, $2, $3, $3, $4, $5::jsonb)",
        [
            ("ETHUSDT", "funding_interval_hours", now - 2 * HOUR, 8.0, "{}"),
            ("ETHUSDT", "funding_interval_hours", now - HOUR, 4.0, "{}"),
            ("BTCUSDT", "funding_rate", now - 1 * DAY, 0.0001, '{"mark_price": 101.5}'),
            ("BTCUSDT", "funding_rate", now - 2 * DAY, 0.0003, '{"mark_price": 102.5}'),
            ("BTCUSDT", "funding_rate", now - 3 * DAY, -0.0001, "{}"),
            ("BTCUSDT", "funding_rate", now - 8 * DAY, 0.01, "{}"),
            ("ETHUSDT", "funding_rate", now - 1 * DAY, 0.0002, "{}"),
            ("ETHUSDT", "funding_rate", now - 2 * DAY, 0.0002, "{}"),
        ],
    )
    # Trades: two 1-hour bars for BTC.
    await ensure_partitions_covering(conn, base, base + 2 * HOUR)
    trades = [
        # symbol, agg_id, ts, price, qty, first, last, buyer_is_maker
        ("BTCUSDT", 1, base + 1 * MINUTE, 100.0, 1.0, 10, 10, False),
        ("BTCUSDT", 2, base + 2 * MINUTE, 105.0, 2.0, 11, 13, True),
        ("BTCUSDT", 3, base + 3 * MINUTE, 95.0, 1.0, 14, 14, False),
        ("BTCUSDT", 4, base + 4 * MINUTE, 101.0, 0.5, 15, 16, True),
        ("BTCUSDT", 5, base + HOUR + MINUTE, 110.0, 3.0, 17, 17, False),
    ]
    await conn.copy_records_to_table(
        "agg_trades",
        records=trades,
        columns=[
            "symbol",
            "agg_id",
            "ts",
            "price",
            "qty",
            "first_trade_id",
            "last_trade_id",
            "is_buyer_maker",
        ],
    )
    await conn.execute(
        "INSERT INTO agg_trades_meta (symbol, first_id, last_id, first_ts, last_ts, rows, "
        "gaps_seen, gaps_repaired, holes_left, holes) "
        "VALUES ('BTCUSDT', 1, 100, $1, $2, 90, 3, 2, 1, '[[50, 59]]')",
        base,
        base + HOUR,
    )
    today = dt.datetime.fromtimestamp(now / 1000, dt.UTC).date()
    await conn.executemany(
        "INSERT INTO agg_trades_daily (symbol, day, first_id, last_id, rows, completeness) "
        "VALUES ('BTCUSDT', $1, $2, $3, $4, $5)",
        [
            (today - dt.timedelta(days=30), 1, 10, 10, 1.0),  # outside the 7-day list
            (today - dt.timedelta(days=1), 1, 60, 50, 50 / 60),
            (today, 61, 100, 40, 1.0),
        ],
    )
    # Liquidations: three minutes in the first hour, one in the second.
    await conn.executemany(
        "INSERT INTO liquidation_agg (symbol, minute, side, count, qty, notional) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        [
            ("BTCUSDT", base + 5 * MINUTE, "SELL", 2, 1.5, 150.0),
            ("BTCUSDT", base + 6 * MINUTE, "SELL", 1, 0.5, 50.0),
            ("BTCUSDT", base + 6 * MINUTE, "BUY", 1, 1.0, 100.0),
            ("ETHUSDT", base + HOUR + MINUTE, "BUY", 4, 2.0, 4000.0),
        ],
    )
    # Fired signals and evaluations.
    await conn.executemany(
        "INSERT INTO signal_logs (strategy, strategy_hash, symbol, tick, direction, score, "
        "coverage, price, atr, features, contributions) "
        "VALUES ($1, 'h1', $2, $3, $4, $5, 1.0, 100.0, 2.0, $6::jsonb, $7::jsonb)",
        [
            ("v51", "BTCUSDT", now - 3 * HOUR, 1, 0.8, '{"oi": 1.5}', '{"oi_rule": 0.8}'),
            ("v51", "ETHUSDT", now - 2 * HOUR, -1, 0.7, '{"oi": 0.5}', '{"oi_rule": 0.7}'),
            ("v52", "BTCUSDT", now - 1 * HOUR, 1, 0.9, "{}", '{"taker": 0.9}'),
            ("v52", "BTCUSDT", now - 10 * DAY, 1, 0.6, "{}", "{}"),
        ],
    )
    await conn.executemany(
        "INSERT INTO signal_indicators (strategy, strategy_hash, symbol, tick, direction, score, "
        "coverage, fired, reason, features, contributions, gates) "
        "VALUES ($1, 'h1', $2, $3, $4, $5, 1.0, $6, $7, '{}', '{}', $8::jsonb)",
        [
            ("v51", "BTCUSDT", now - 2 * MINUTE, None, 0.1, False, "below threshold", "{}"),
            ("v51", "BTCUSDT", now - MINUTE, 1, 0.9, True, None, '{"volume": true}'),
            ("v52", "ETHUSDT", now - MINUTE, None, None, False, "warming up", "{}"),
        ],
    )
    # Paper trades: v51 won 2R then lost 1R and has one open; v52 won 1.5R.
    await conn.executemany(
        "INSERT INTO paper_trades (strategy, strategy_hash, symbol, direction, entry_tick, "
        "entry_price, r_distance, stop_loss, quantity, risk_usd, status, exits, closed_at, "
        "result_r, result_usd) "
        "VALUES ($1, 'h1', $2, 1, $3, 100.0, 2.0, 98.0, 1.0, 10.0, $4, $5::jsonb, $6, $7, $8)",
        [
            (
                "v51",
                "BTCUSDT",
                now - 5 * HOUR,
                "closed",
                '[{"reason": "tp1"}]',
                now - 4 * HOUR,
                2.0,
                20.0,
            ),
            ("v51", "ETHUSDT", now - 3 * HOUR, "closed", "[]", now - 2 * HOUR, -1.0, -10.0),
            ("v51", "BTCUSDT", now - HOUR, "open", "[]", None, None, None),
            ("v52", "BTCUSDT", now - 6 * HOUR, "closed", "[]", now - 5 * HOUR, 1.5, 15.0),
        ],
    )
