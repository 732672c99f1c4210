"""What a widely used exchange client library calls by default, answered with Binance's
shapes, weights and errors over real sockets: leverage brackets, balances, user trades,
the @trade stream, klines, depth and the 24 h ticker."""

from __future__ import annotations

import itertools
from collections import defaultdict
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from arbengine.sim import SimServer
from tests.service.sim.conftest import START, MakeSim
from tests.service.sim.simclient import AiohttpReader, get, history, payload, signed

D = Decimal
MINUTE = 60_000


@pytest.fixture
async def ready(sim: SimServer) -> SimServer:
    await sim.advance_to(START + 10 * MINUTE)
    return sim


async def used_weight(http: aiohttp.ClientSession, sim: SimServer, path: str, **params: Any) -> int:
    """The weight one call to ``path`` costs, read from the used-weight header."""
    _, _, before = await get(http, f"{sim.rest_url}/fapi/v1/time")
    status, body, after = await get(http, f"{sim.rest_url}{path}", params)
    assert status == 200, body
    return int(after["X-MBX-USED-WEIGHT-1M"]) - int(before["X-MBX-USED-WEIGHT-1M"])


async def test_leverage_brackets_match_the_margin_the_sim_charges(
    ready: SimServer, http: aiohttp.ClientSession
) -> None:
    status, one, headers = await signed(
        http, ready, "GET", "/fapi/v1/leverageBracket", {"symbol": "BTCUSDT"}
    )
    assert status == 200, one
    assert headers["X-MBX-USED-WEIGHT-1M"] == "1"
    assert one["symbol"] == "BTCUSDT"
    rows = one["brackets"]
    assert set(rows[0]) == {
        "bracket",
        "initialLeverage",
        "notionalCap",
        "notionalFloor",
        "maintMarginRatio",
        "cum",
    }
    assert [r["bracket"] for r in rows] == list(range(1, len(rows) + 1))
    assert rows[0]["notionalFloor"] == 0
    assert all(a["notionalCap"] == b["notionalFloor"] for a, b in itertools.pairwise(rows))
    assert [r["initialLeverage"] for r in rows] == sorted(
        (r["initialLeverage"] for r in rows), reverse=True
    )
    # The cap at a leverage is the maxNotionalValue the leverage endpoint reports.
    _, lev, _ = await signed(
        http, ready, "POST", "/fapi/v1/leverage", {"symbol": "BTCUSDT", "leverage": 20}
    )
    at_20 = next(r for r in rows if r["initialLeverage"] == 20)
    assert str(at_20["notionalCap"]) == lev["maxNotionalValue"]
    # Maintenance margin by Binance's formula equals what positionRisk charges.
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.050"}
    assert (await signed(http, ready, "POST", "/fapi/v1/order", order))[0] == 200
    _, positions, _ = await signed(http, ready, "GET", "/fapi/v3/positionRisk")
    notional = abs(D(positions[0]["notional"]))
    bracket = next(r for r in rows if r["notionalFloor"] <= notional < r["notionalCap"])
    expected = notional * D(str(bracket["maintMarginRatio"])) - D(str(bracket["cum"]))
    assert D(positions[0]["maintMargin"]) == expected.quantize(D("0.00000001"))
    status, every, _ = await signed(http, ready, "GET", "/fapi/v1/leverageBracket")
    assert status == 200
    assert sorted(b["symbol"] for b in every) == ["BTCUSDT", "ETHUSDT"]
    status, bad, _ = await signed(http, ready, "GET", "/fapi/v1/leverageBracket", {"symbol": "X"})
    assert (status, bad["code"]) == (400, -1121)


async def test_fresh_account_balances_carry_the_creation_time(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    await sim.advance_to(START + 5_000)
    for version in (2, 3):
        _, balance, _ = await signed(http, sim, "GET", f"/fapi/v{version}/balance")
        assert balance[0]["updateTime"] == START
        _, account, _ = await signed(http, sim, "GET", f"/fapi/v{version}/account")
        assert account["assets"][0]["updateTime"] == START


async def test_user_trades_rows_have_every_binance_field(
    ready: SimServer, http: aiohttp.ClientSession
) -> None:
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"}
    assert (await signed(http, ready, "POST", "/fapi/v1/order", order))[0] == 200
    _, trades, _ = await signed(http, ready, "GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"})
    assert set(trades[0]) == {
        "buyer",
        "commission",
        "commissionAsset",
        "id",
        "maker",
        "marginAsset",
        "orderId",
        "price",
        "qty",
        "quoteQty",
        "realizedPnl",
        "side",
        "positionSide",
        "symbol",
        "time",
    }
    assert trades[0]["marginAsset"] == "USDT"


async def test_trade_stream_splits_each_aggregate_over_its_trade_ids(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    url = f"{sim.market_ws_url}/stream?streams=btcusdt@aggTrade/btcusdt@trade"
    async with http.ws_connect(url) as ws:
        reader = AiohttpReader(ws)
        await sim.advance_to(START + 20_000)
        last = sim.tape("BTCUSDT").last_id

        def done(msgs: list[Any]) -> bool:
            aggs = [payload(m) for m in msgs if m["stream"] == "btcusdt@aggTrade"]
            trades = [payload(m) for m in msgs if m["stream"] == "btcusdt@trade"]
            return bool(
                aggs and aggs[-1]["a"] == last and trades and trades[-1]["t"] == aggs[-1]["l"]
            )

        msgs = await reader.until(done)
    aggs = [payload(m) for m in msgs if m["stream"] == "btcusdt@aggTrade"]
    trades = [payload(m) for m in msgs if m["stream"] == "btcusdt@trade"]
    assert set(trades[0]) == {"e", "E", "T", "s", "t", "p", "q", "X", "m"}
    assert trades[0]["e"] == "trade"
    assert {t["X"] for t in trades} == {"MARKET"}
    assert [t["t"] for t in trades] == list(range(aggs[0]["f"], aggs[-1]["l"] + 1))
    by_id = {t["t"]: t for t in trades}
    for agg in aggs:
        parts = [by_id[i] for i in range(agg["f"], agg["l"] + 1)]
        assert sum(D(p["q"]) for p in parts) == D(agg["q"])
        assert {(p["p"], p["T"], p["m"], p["s"]) for p in parts} == {
            (agg["p"], agg["T"], agg["m"], "BTCUSDT")
        }
        # Evenly split: shares differ by at most one step, larger ones first.
        shares = [D(p["q"]) for p in parts]
        assert shares == sorted(shares, reverse=True)
        assert shares[0] - shares[-1] <= D("0.001")


def bars_from(rows: list[dict[str, Any]], size: int) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[r["T"] // size * size].append(r)
    return out


async def test_klines_are_built_from_the_trade_history(
    ready: SimServer, http: aiohttp.ClientSession
) -> None:
    status, rows, headers = await get(
        http, f"{ready.rest_url}/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "1m"}
    )
    assert status == 200, rows
    assert headers["X-MBX-USED-WEIGHT-1M"] == "5"  # default limit 500
    trades = await history(http, ready, "BTCUSDT")
    bars = bars_from(trades, MINUTE)
    assert [r[0] for r in rows] == sorted(bars)  # every bar, the open one included
    for row in rows:
        assert len(row) == 12
        group = bars[row[0]]
        prices = [D(t["p"]) for t in group]
        assert [D(x) for x in row[1:5]] == [prices[0], max(prices), min(prices), prices[-1]]
        assert D(row[5]) == sum(D(t["q"]) for t in group)
        assert row[6] == row[0] + MINUTE - 1
        assert D(row[7]) == sum(D(t["p"]) * D(t["q"]) for t in group)
        assert row[8] == sum(t["l"] - t["f"] + 1 for t in group)
        assert D(row[9]) == sum(D(t["q"]) for t in group if not t["m"])
        assert row[11] == "0"
    # startTime selects bars opening at or after it, limit counts from there.
    status, page, _ = await get(
        http,
        f"{ready.rest_url}/fapi/v1/klines",
        {"symbol": "BTCUSDT", "interval": "1m", "startTime": START + 1, "limit": 3},
    )
    assert [r[0] for r in page] == [START - START % MINUTE + k * MINUTE for k in (1, 2, 3)]
    status, page, _ = await get(
        http,
        f"{ready.rest_url}/fapi/v1/klines",
        {"symbol": "BTCUSDT", "interval": "5m", "endTime": START + 7 * MINUTE, "limit": 1},
    )
    assert [r[0] for r in page] == [(START + 7 * MINUTE) // (5 * MINUTE) * 5 * MINUTE]
    weights = {
        limit: await used_weight(
            http, ready, "/fapi/v1/klines", symbol="BTCUSDT", interval="1h", limit=limit
        )
        for limit in (99, 100, 499, 500, 1000, 1001, 1500)
    }
    assert weights == {99: 1, 100: 2, 499: 2, 500: 5, 1000: 5, 1001: 10, 1500: 10}
    status, bad, _ = await get(
        http, f"{ready.rest_url}/fapi/v1/klines", {"symbol": "BTCUSDT", "interval": "7m"}
    )
    assert (status, bad["code"]) == (400, -1120)
    status, bad, _ = await get(http, f"{ready.rest_url}/fapi/v1/klines", {"symbol": "BTCUSDT"})
    assert (status, bad["code"]) == (400, -1102)


async def test_klines_bars_without_trades_repeat_the_previous_close(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(trade_rate=0.002)
    await sim.advance_to(START + 120 * MINUTE)
    status, rows, _ = await get(
        http,
        f"{sim.rest_url}/fapi/v1/klines",
        {"symbol": "BTCUSDT", "interval": "1m", "limit": 1500},
    )
    assert status == 200, rows
    empty = [(prev, row) for prev, row in itertools.pairwise(rows) if row[8] == 0]
    assert empty, "the thin tape must leave some minutes without a trade"
    assert [r[0] for r in rows] == list(range(rows[0][0], rows[-1][0] + 1, MINUTE))  # no gaps
    for prev, row in empty:
        assert row[1:5] == [prev[4]] * 4
        assert D(row[5]) == 0
        assert D(row[7]) == 0


async def test_depth_is_a_book_around_the_quote(
    ready: SimServer, http: aiohttp.ClientSession
) -> None:
    status, book, _ = await get(
        http, f"{ready.rest_url}/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 20}
    )
    assert status == 200, book
    assert set(book) == {"lastUpdateId", "E", "T", "bids", "asks"}
    assert len(book["bids"]) == len(book["asks"]) == 20
    bids = [D(p) for p, _ in book["bids"]]
    asks = [D(p) for p, _ in book["asks"]]
    assert bids == sorted(bids, reverse=True)
    assert asks == sorted(asks)
    _, top, _ = await get(
        http, f"{ready.rest_url}/fapi/v1/ticker/bookTicker", {"symbol": "BTCUSDT"}
    )
    assert book["bids"][0] == [top["bidPrice"], top["bidQty"]]
    assert book["asks"][0] == [top["askPrice"], top["askQty"]]
    weights = {
        limit: await used_weight(http, ready, "/fapi/v1/depth", symbol="BTCUSDT", limit=limit)
        for limit in (5, 10, 20, 50, 100, 500, 1000)
    }
    assert weights == {5: 2, 10: 2, 20: 2, 50: 2, 100: 5, 500: 10, 1000: 20}
    status, bad, _ = await get(
        http, f"{ready.rest_url}/fapi/v1/depth", {"symbol": "BTCUSDT", "limit": 7}
    )
    assert (status, bad["code"]) == (400, -1130)


async def test_ticker_24hr_sums_the_trades_kept(
    ready: SimServer, http: aiohttp.ClientSession
) -> None:
    status, t, headers = await get(
        http, f"{ready.rest_url}/fapi/v1/ticker/24hr", {"symbol": "BTCUSDT"}
    )
    assert status == 200, t
    assert headers["X-MBX-USED-WEIGHT-1M"] == "1"
    trades = await history(http, ready, "BTCUSDT")  # all younger than 24 h
    prices = [D(r["p"]) for r in trades]
    volume = sum(D(r["q"]) for r in trades)
    quote = sum(D(r["p"]) * D(r["q"]) for r in trades)
    assert D(t["openPrice"]) == prices[0]
    assert D(t["lastPrice"]) == prices[-1]
    assert (D(t["highPrice"]), D(t["lowPrice"])) == (max(prices), min(prices))
    assert D(t["priceChange"]) == prices[-1] - prices[0]
    assert D(t["volume"]) == volume
    assert D(t["quoteVolume"]) == quote
    assert abs(D(t["weightedAvgPrice"]) - quote / volume) <= D("0.005")
    assert (t["firstId"], t["lastId"]) == (trades[0]["f"], trades[-1]["l"])
    assert t["count"] == sum(r["l"] - r["f"] + 1 for r in trades)
    assert t["closeTime"] == ready.market.now_ms
    assert t["openTime"] == t["closeTime"] - 86_400_000
    status, every, _ = await get(http, f"{ready.rest_url}/fapi/v1/ticker/24hr")
    assert status == 200
    assert await used_weight(http, ready, "/fapi/v1/ticker/24hr") == 40
    assert sorted(x["symbol"] for x in every) == ["BTCUSDT", "ETHUSDT"]
