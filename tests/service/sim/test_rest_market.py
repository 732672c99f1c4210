"""Market REST endpoints: payload shapes from BINANCE.md, parameters, weights and bans."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from arbengine.sim import SimServer
from arbengine.sim.limits import LimitConfig
from tests.service.sim.conftest import START, MakeSim
from tests.service.sim.simclient import first_id, get, history, last_id

HOUR = 3_600_000


@pytest.fixture
async def stepped(sim: SimServer) -> SimServer:
    await sim.advance_to(START + 600_000)
    return sim


async def test_every_response_carries_the_used_weight_header(
    stepped: SimServer, http: aiohttp.ClientSession
) -> None:
    url = stepped.rest_url
    used = []
    for path, params in [
        ("/fapi/v1/time", {}),
        ("/fapi/v1/aggTrades", {"symbol": "BTCUSDT"}),
        ("/fapi/v1/aggTrades", {"symbol": "NOPE"}),
        ("/fapi/v1/premiumIndex", {}),
        ("/fapi/v1/nothing", {}),
    ]:
        _, _, headers = await get(http, url + path, params)
        used.append(int(headers["X-MBX-USED-WEIGHT-1M"]))
    assert used == [1, 21, 41, 51, 52]  # time 1, aggTrades 20 (even refused), all marks 10


async def test_time_and_exchange_info(stepped: SimServer, http: aiohttp.ClientSession) -> None:
    status, body, _ = await get(http, f"{stepped.rest_url}/fapi/v1/time")
    assert status == 200
    assert abs(body["serverTime"] - stepped.server_time_ms()) < 5_000
    status, info, _ = await get(http, f"{stepped.rest_url}/fapi/v1/exchangeInfo")
    assert status == 200
    limits = {
        (r["rateLimitType"], r["interval"], r["intervalNum"]): r["limit"]
        for r in info["rateLimits"]
    }
    assert limits == {
        ("REQUEST_WEIGHT", "MINUTE", 1): 2400,
        ("ORDERS", "MINUTE", 1): 1200,
        ("ORDERS", "SECOND", 10): 300,
    }
    btc = next(s for s in info["symbols"] if s["symbol"] == "BTCUSDT")
    filters = {f["filterType"]: f for f in btc["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.10"
    assert filters["MIN_NOTIONAL"]["notional"] == "100"
    assert (btc["pricePrecision"], btc["quantityPrecision"]) == (2, 3)


async def test_agg_trades_by_id_by_time_and_latest(
    stepped: SimServer, http: aiohttp.ClientSession
) -> None:
    url = f"{stepped.rest_url}/fapi/v1/aggTrades"
    tape = stepped.tape("BTCUSDT")
    everything = await history(http, stepped, "BTCUSDT")
    assert len(everything) == tape.released
    assert [r["a"] for r in everything] == list(
        range(first_id(stepped, "BTCUSDT"), last_id(stepped, "BTCUSDT") + 1)
    )
    assert set(everything[0]) == {"a", "p", "q", "f", "l", "T", "m"}

    _, latest, _ = await get(http, url, {"symbol": "BTCUSDT", "limit": 7})
    assert latest == everything[-7:]
    _, default, _ = await get(http, url, {"symbol": "BTCUSDT"})
    assert len(default) == 500

    start, end = START + 60_000, START + 120_000
    _, window, _ = await get(
        http, url, {"symbol": "BTCUSDT", "startTime": start, "endTime": end, "limit": 1000}
    )
    assert window == [r for r in everything if start <= r["T"] <= end][:1000]
    _, page, _ = await get(http, url, {"symbol": "BTCUSDT", "startTime": start, "limit": 3})
    assert page == [r for r in everything if r["T"] >= start][:3]

    _, beyond, _ = await get(
        http, url, {"symbol": "BTCUSDT", "fromId": last_id(stepped, "BTCUSDT") + 1}
    )
    assert beyond == []


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"symbol": "BTCUSDT", "limit": 1001}, -1130),
        ({"symbol": "BTCUSDT", "limit": 0}, -1130),
        ({"symbol": "BTCUSDT", "startTime": START, "endTime": START + HOUR + 1}, -1127),
        ({"symbol": "BTCUSDT", "fromId": 1, "startTime": START}, -1128),
        ({"symbol": "BTCUSDT", "startTime": START + 10, "endTime": START}, -1023),
        ({"symbol": "DOGEUSDT"}, -1121),
        ({}, -1102),
        ({"symbol": "BTCUSDT", "fromId": "x1"}, -1100),
    ],
)
async def test_agg_trades_parameter_errors(
    sim: SimServer, http: aiohttp.ClientSession, params: dict[str, Any], code: int
) -> None:
    status, body, _ = await get(http, f"{sim.rest_url}/fapi/v1/aggTrades", params)
    assert status == 400
    assert body["code"] == code
    assert isinstance(body["msg"], str)


async def test_premium_index_funding_and_open_interest_shapes(
    stepped: SimServer, http: aiohttp.ClientSession
) -> None:
    url = stepped.rest_url
    _, one, _ = await get(http, f"{url}/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"})
    assert set(one) == {
        "symbol",
        "markPrice",
        "indexPrice",
        "estimatedSettlePrice",
        "lastFundingRate",
        "interestRate",
        "nextFundingTime",
        "time",
    }
    assert one["time"] == stepped.sim_time_ms
    _, many, _ = await get(http, f"{url}/fapi/v1/premiumIndex")
    assert sorted(x["symbol"] for x in many) == ["BTCUSDT", "ETHUSDT"]

    _, rates, _ = await get(
        http, f"{url}/fapi/v1/fundingRate", {"symbol": "BTCUSDT", "limit": 1000}
    )
    assert 5 <= len(rates) <= 7  # two days of history, every 8 hours
    assert set(rates[0]) == {"symbol", "fundingRate", "fundingTime", "markPrice"}
    assert [r["fundingTime"] for r in rates] == sorted(r["fundingTime"] for r in rates)
    assert all(r["fundingTime"] % (8 * HOUR) == 0 for r in rates)

    _, info, _ = await get(http, f"{url}/fapi/v1/fundingInfo")
    assert info == []  # every symbol here settles every 8 hours

    _, oi, _ = await get(http, f"{url}/fapi/v1/openInterest", {"symbol": "ETHUSDT"})
    assert set(oi) == {"openInterest", "symbol", "time"}
    assert float(oi["openInterest"]) > 0


async def test_funding_info_lists_symbols_not_on_eight_hours(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(funding_interval_hours={"ETHUSDT": 4})
    _, info, _ = await get(http, f"{sim.rest_url}/fapi/v1/fundingInfo")
    assert [(x["symbol"], x["fundingIntervalHours"]) for x in info] == [("ETHUSDT", 4)]
    _, one, _ = await get(http, f"{sim.rest_url}/fapi/v1/premiumIndex", {"symbol": "ETHUSDT"})
    assert one["nextFundingTime"] % (4 * HOUR) == 0


@pytest.mark.parametrize(
    ("kind", "keys"),
    [
        ("openInterestHist", {"symbol", "sumOpenInterest", "sumOpenInterestValue", "timestamp"}),
        (
            "globalLongShortAccountRatio",
            {"symbol", "longShortRatio", "longAccount", "shortAccount", "timestamp"},
        ),
        (
            "topLongShortPositionRatio",
            {"symbol", "longShortRatio", "longAccount", "shortAccount", "timestamp"},
        ),
        (
            "topLongShortAccountRatio",
            {"symbol", "longShortRatio", "longAccount", "shortAccount", "timestamp"},
        ),
        ("takerlongshortRatio", {"buySellRatio", "buyVol", "sellVol", "timestamp"}),
    ],
)
async def test_futures_data_series(
    stepped: SimServer, http: aiohttp.ClientSession, kind: str, keys: set[str]
) -> None:
    url = f"{stepped.rest_url}/futures/data/{kind}"
    _, rows, _ = await get(http, url, {"symbol": "BTCUSDT", "period": "5m"})
    assert len(rows) == 30  # default limit
    assert all(set(r) == keys for r in rows)
    assert all(isinstance(r["timestamp"], int) for r in rows)
    assert rows[-1]["timestamp"] <= stepped.sim_time_ms
    assert rows[-1]["timestamp"] > stepped.sim_time_ms - 300_000
    _, hourly, _ = await get(http, url, {"symbol": "BTCUSDT", "period": "1h", "limit": 500})
    assert 40 <= len(hourly) <= 50
    assert all(r["timestamp"] % HOUR == 0 for r in hourly)
    status, body, _ = await get(http, url, {"symbol": "BTCUSDT", "period": "7m"})
    assert (status, body["code"]) == (400, -1130)


async def test_coinbase_ticker(stepped: SimServer, http: aiohttp.ClientSession) -> None:
    status, ticker, headers = await get(http, f"{stepped.coinbase_url}/products/ETH-USD/ticker")
    assert status == 200
    assert set(ticker) == {"ask", "bid", "volume", "trade_id", "price", "size", "time"}
    assert all(isinstance(ticker[k], str) for k in ("ask", "bid", "volume", "price", "size"))
    assert isinstance(ticker["trade_id"], int)
    assert "X-MBX-USED-WEIGHT-1M" not in headers  # Coinbase is not Binance
    status, _, _ = await get(http, f"{stepped.coinbase_url}/products/NOPE-USD/ticker")
    assert status == 404


async def test_ignoring_429_brings_418_with_retry_after(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    now = [1_700_000_010.0]  # pinned wall clock: the window cannot roll over mid-test
    sim = await make_sim(
        limits=LimitConfig(weight_per_minute=100, ban_after=2), wall_clock=lambda: now[0]
    )
    url = f"{sim.rest_url}/fapi/v1/aggTrades"
    statuses = []
    for _ in range(5):
        status, _, _ = await get(http, url, {"symbol": "BTCUSDT"})
        statuses.append(status)
    assert statuses == [200] * 5
    status, body, headers = await get(http, url, {"symbol": "BTCUSDT"})
    assert (status, body["code"]) == (429, -1003)
    assert headers["Retry-After"] == "30"  # to the end of the minute
    status, _, _ = await get(http, f"{sim.rest_url}/fapi/v1/time")
    assert status == 429
    status, body, headers = await get(http, f"{sim.rest_url}/fapi/v1/time")
    assert status == 418
    assert int(headers["Retry-After"]) == 120
    now[0] += 60  # a new minute does not lift a ban
    status, _, _ = await get(http, f"{sim.rest_url}/fapi/v1/time")
    assert status == 418
    now[0] += 61
    status, _, _ = await get(http, f"{sim.rest_url}/fapi/v1/time")
    assert status == 200


async def test_futures_data_and_funding_count_requests_not_weight(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    now = [1_700_000_100.0]  # pinned: the start of a 5-minute window
    sim = await make_sim(limits=LimitConfig(futures_data_requests=2), wall_clock=lambda: now[0])
    url = f"{sim.rest_url}/futures/data/topLongShortAccountRatio"
    params = {"symbol": "BTCUSDT", "period": "5m"}
    answers = [await get(http, url, params) for _ in range(3)]
    assert [status for status, _, _ in answers] == [200, 200, 429]
    assert [h["X-MBX-USED-WEIGHT-1M"] for _, _, h in answers] == ["0", "0", "0"]
    _, body, headers = answers[2]
    assert body["code"] == -1003
    assert headers["Retry-After"] == "300"
    status, _, headers = await get(http, f"{sim.rest_url}/fapi/v1/fundingRate", params)
    assert (status, headers["X-MBX-USED-WEIGHT-1M"]) == (200, "0")
    status, _, _ = await get(http, f"{sim.rest_url}/fapi/v1/premiumIndex")
    assert status == 200  # the weight budget is another matter

    counts = sim.state()["requests"]
    assert counts[url.removeprefix(sim.rest_url)] == {
        "count": 3, "statuses": {"200": 2, "429": 1}
    }  # fmt: skip
    assert counts["/fapi/v1/premiumIndex"] == {"count": 1, "statuses": {"200": 1}}
    status, log, _ = await get(
        http, f"{sim.control_url}/requests", {"path": "/fapi/v1/premiumIndex", "since": "0"}
    )
    assert (status, log) == (200, {"path": "/fapi/v1/premiumIndex", "count": 1,
                                   "times": [1_700_000_100.0]})  # fmt: skip
    status, log, _ = await get(http, f"{sim.control_url}/requests", {})
    assert status == 400
    assert log["error"].startswith("requests: path is required")
