"""Indicators and liquidations are stored with the exchange's values (seeded sim run)."""

from __future__ import annotations

import aiohttp
import asyncpg

from tests.e2e.collect.conftest import SYMBOLS, Run, caught_up
from tests.support.waiting import eventually


async def sim_get(run: Run, path: str, **params: object) -> object:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{run.sim.rest_url}{path}", params={k: str(v) for k, v in params.items()}
        ) as response,
    ):
        assert response.status == 200, await response.text()
        return await response.json()


async def fetch(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def test_ratio_and_funding_history_match_the_exchange(run: Run) -> None:
    await run.advance(20)
    series = {
        "ls_global": ("/futures/data/globalLongShortAccountRatio", "longShortRatio"),
        "ls_top_position": ("/futures/data/topLongShortPositionRatio", "longShortRatio"),
        "taker_ratio": ("/futures/data/takerlongshortRatio", "buySellRatio"),
        "open_interest_hist": ("/futures/data/openInterestHist", "sumOpenInterest"),
    }
    for symbol in SYMBOLS:
        for kind, (path, key) in series.items():
            # The daemon backfills one day (ARB_COLLECT_HISTORY_BACKFILL=1d) back from its
            # first round, some seconds after the sim's start: compare the day before now,
            # every row of which lies within what it backfilled.
            since = run.sim.server_time_ms() - 86_400_000
            expected = await sim_get(
                run, path, symbol=symbol, period="5m", limit=500, startTime=since
            )
            assert expected, f"the sim has no {kind} history"

            async def stored(kind: str = kind, symbol: str = symbol, n: int = len(expected)):
                rows = await fetch(
                    run.url,
                    "SELECT ts, known_at, value FROM market_indicators "
                    "WHERE symbol = $1 AND kind = $2 ORDER BY ts",
                    symbol,
                    kind,
                )
                return rows if len(rows) >= n else None

            rows = await eventually(stored, 30, what=f"{symbol} {kind} stored")
            by_ts = {r["ts"]: r for r in rows}
            for item in expected:
                row = by_ts[int(item["timestamp"])]
                assert row["value"] == float(item[key])
                # Known at the end of its period, or at its arrival when it came live later.
                period_end = int(item["timestamp"]) + 300_000
                assert row["known_at"] >= period_end
                assert row["known_at"] == period_end or row["known_at"] - period_end < 70_000

        funding = await sim_get(
            run,
            "/fapi/v1/fundingRate",
            symbol=symbol,
            limit=1000,
            startTime=run.sim.server_time_ms() - 86_400_000,
        )
        assert funding, "the sim has no funding history"
        rows = await fetch(
            run.url,
            "SELECT ts, value, data->>'mark_price' AS mark FROM market_indicators "
            "WHERE symbol = $1 AND kind = 'funding_rate' ORDER BY ts",
            symbol,
        )
        stored_funding = {r["ts"]: (r["value"], float(r["mark"])) for r in rows}
        for item in funding:
            assert stored_funding[item["fundingTime"]] == (
                float(item["fundingRate"]),
                float(item["markPrice"]),
            )


async def test_premium_index_open_interest_and_coinbase_snapshots(run: Run) -> None:
    await run.advance(5)
    for symbol in SYMBOLS:
        premium = await sim_get(run, "/fapi/v1/premiumIndex", symbol=symbol)

        async def latest_snapshot(symbol: str = symbol, ts: int = premium["time"]):
            rows = await fetch(
                run.url, "SELECT * FROM rate_snapshots WHERE symbol = $1 AND ts = $2", symbol, ts
            )
            return rows[0] if rows else None

        row = await eventually(latest_snapshot, 20, what=f"{symbol} premiumIndex stored")
        assert row["mark_price"] == float(premium["markPrice"])
        assert row["index_price"] == float(premium["indexPrice"])
        assert row["funding_rate"] == float(premium["lastFundingRate"])
        assert row["interest_rate"] == float(premium["interestRate"])
        assert row["next_funding_time"] == premium["nextFundingTime"]

        oi = await sim_get(run, "/fapi/v1/openInterest", symbol=symbol)

        async def oi_row(symbol: str = symbol, ts: int = oi["time"]):
            rows = await fetch(
                run.url,
                "SELECT value FROM market_indicators "
                "WHERE symbol = $1 AND kind = 'open_interest' AND ts = $2",
                symbol,
                ts,
            )
            return rows[0] if rows else None

        assert (await eventually(oi_row, 20))["value"] == float(oi["openInterest"])

        product = symbol.replace("USDT", "-USD")
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{run.sim.coinbase_url}/products/{product}/ticker") as response,
        ):
            ticker = await response.json()

        async def coinbase_row(symbol: str = symbol, ticker: dict = ticker):
            rows = await fetch(
                run.url,
                "SELECT value FROM market_indicators WHERE symbol = $1 "
                "AND kind = 'coinbase_price' ORDER BY ts DESC LIMIT 1",
                symbol,
            )
            return rows[0] if rows and rows[0]["value"] == float(ticker["price"]) else None

        await eventually(coinbase_row, 20, what=f"{symbol} coinbase price stored")


async def test_liquidations_and_their_minute_aggregates(run: Run) -> None:
    async with aiohttp.ClientSession() as session:
        for symbol in SYMBOLS:
            async with session.post(
                f"{run.sim.control_url}/market", json={"symbol": symbol, "regime": "volatile"}
            ) as response:
                assert response.status == 200
    await run.advance(90, step_ms=500)
    await caught_up(run.sim, run.url)
    for symbol in SYMBOLS:
        book = run.sim.market.books[symbol]
        released = book.liquidations[: book.liq_released]
        assert released, "the volatile sim released no liquidation"
        scale_p = 10**book.spec.price_precision
        scale_q = 10**book.spec.qty_precision
        expected = sorted((e.t, e.side, e.avg_price / scale_p, e.qty / scale_q) for e in released)

        async def events(symbol: str = symbol, n: int = len(expected)):
            rows = await fetch(
                run.url,
                "SELECT ts, side, avg_price, filled_qty FROM liquidation_events "
                "WHERE symbol = $1 ORDER BY ts",
                symbol,
            )
            return rows if len(rows) >= n else None

        rows = await eventually(events, 20, what=f"{symbol} liquidations stored")
        assert [tuple(r) for r in rows] == expected
        minutes: dict[tuple[int, str], list[float]] = {}
        for ts, side, price, qty in expected:
            agg = minutes.setdefault((ts - ts % 60_000, side), [0, 0.0, 0.0])
            agg[0] += 1
            agg[1] += qty
            agg[2] += qty * price
        stored = await fetch(
            run.url,
            "SELECT minute, side, count, qty, notional FROM liquidation_agg WHERE symbol = $1",
            symbol,
        )
        assert {(r["minute"], r["side"]) for r in stored} == set(minutes)
        for r in stored:
            count, qty, notional = minutes[(r["minute"], r["side"])]
            assert r["count"] == count
            assert abs(r["qty"] - qty) <= 1e-9 * max(1.0, qty)
            assert abs(r["notional"] - notional) <= 1e-9 * max(1.0, notional)
