"""Signed trading endpoints and the user data stream, over real sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from arbengine.sim import SimServer
from tests.service.sim.conftest import START, MakeSim
from tests.service.sim.simclient import (
    AiohttpReader,
    control,
    get,
    signed,
)

D = Decimal


async def listen_key(http: aiohttp.ClientSession, sim: SimServer) -> str:
    async with http.post(
        f"{sim.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": sim.config.api_key}
    ) as resp:
        assert resp.status == 200
        key: str = (await resp.json())["listenKey"]
        return key


@pytest.fixture
async def user_stream(sim: SimServer, http: aiohttp.ClientSession) -> AsyncIterator[AiohttpReader]:
    key = await listen_key(http, sim)
    async with http.ws_connect(f"{sim.private_ws_url}/ws?listenKey={key}") as ws:
        yield AiohttpReader(ws)


@pytest.fixture
async def ready(sim: SimServer) -> SimServer:
    await sim.advance_to(START + 10_000)
    return sim


def event_kinds(msgs: list[dict[str, Any]]) -> list[str]:
    return [m["e"] if m["e"] != "ORDER_TRADE_UPDATE" else f"ORDER:{m['o']['x']}" for m in msgs]


async def test_signature_and_key_failures(ready: SimServer, http: aiohttp.ClientSession) -> None:
    path = "/fapi/v3/balance"
    status, body, headers = await signed(http, ready, "GET", path, secret="wrong")
    assert (status, body["code"]) == (400, -1022)
    assert "X-MBX-USED-WEIGHT-1M" in headers
    stale = ready.server_time_ms() - 60_000
    status, body, _ = await signed(http, ready, "GET", path, timestamp=stale)
    assert (status, body["code"]) == (400, -1021)
    status, body, _ = await signed(http, ready, "GET", path, api_key="")
    assert (status, body["code"]) == (401, -2014)
    status, body, _ = await signed(http, ready, "GET", path, api_key="someone-else")
    assert (status, body["code"]) == (401, -2015)
    status, body, _ = await signed(http, ready, "GET", path)
    assert status == 200
    assert body[0]["asset"] == "USDT"
    status, body, _ = await signed(http, ready, "GET", path, in_body=True)
    assert status == 200


async def test_market_order_round_trip_with_user_stream(
    ready: SimServer, http: aiohttp.ClientSession, user_stream: AiohttpReader
) -> None:
    bid, ask = ready.market.books["BTCUSDT"].quote()
    status, reply, headers = await signed(
        http,
        ready,
        "POST",
        "/fapi/v1/order",
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "MARKET",
            "quantity": "0.010",
            "newClientOrderId": "entry-1",
            "newOrderRespType": "RESULT",
        },
    )
    assert status == 200, reply
    assert headers["X-MBX-ORDER-COUNT-10S"] == "1"
    assert headers["X-MBX-ORDER-COUNT-1M"] == "1"
    for key in (
        "orderId",
        "symbol",
        "status",
        "clientOrderId",
        "price",
        "avgPrice",
        "origQty",
        "executedQty",
        "cumQuote",
        "type",
        "reduceOnly",
        "side",
        "positionSide",
        "updateTime",
    ):
        assert key in reply
    assert reply["status"] == "FILLED"
    fill = D(ask) / 100
    assert D(reply["avgPrice"]) == fill
    msgs = await user_stream.until(lambda m: len(m) == 3)
    assert event_kinds(msgs) == ["ORDER:NEW", "ACCOUNT_UPDATE", "ORDER:TRADE"]
    trade = msgs[2]["o"]
    assert (trade["c"], trade["X"], trade["l"], trade["ot"]) == (
        "entry-1",
        "FILLED",
        "0.010",
        "MARKET",
    )
    fee = (fill * D("0.010") * D("0.0005")).quantize(D("0.00000001"))
    assert D(trade["n"]) == fee
    assert msgs[1]["a"]["P"][0]["pa"] == "0.010"

    _, positions, _ = await signed(http, ready, "GET", "/fapi/v3/positionRisk")
    assert [(p["symbol"], p["positionAmt"]) for p in positions] == [("BTCUSDT", "0.010")]
    assert D(positions[0]["entryPrice"]) == fill
    for key in (
        "breakEvenPrice",
        "markPrice",
        "unRealizedProfit",
        "liquidationPrice",
        "notional",
        "updateTime",
    ):
        assert key in positions[0]
    _, account, _ = await signed(http, ready, "GET", "/fapi/v3/account")
    assert D(account["totalWalletBalance"]) == D(10000) - fee
    assert {"availableBalance", "totalUnrealizedProfit", "assets", "positions"} <= set(account)

    await ready.advance_to(START + 20_000)
    bid, _ = ready.market.books["BTCUSDT"].quote()
    status, close, _ = await signed(
        http,
        ready,
        "POST",
        "/fapi/v1/order",
        {
            "symbol": "BTCUSDT",
            "side": "SELL",
            "type": "MARKET",
            "quantity": "0.010",
            "reduceOnly": True,
            "newClientOrderId": "exit-1",
            "newOrderRespType": "RESULT",
        },
    )
    assert status == 200, close
    exit_price = D(bid) / 100
    msgs = await user_stream.until(lambda m: len(m) == 3)
    realized = (exit_price - fill) * D("0.010")
    assert D(msgs[2]["o"]["rp"]) == realized
    _, trades, _ = await signed(http, ready, "GET", "/fapi/v1/userTrades", {"symbol": "BTCUSDT"})
    assert [t["realizedPnl"] for t in trades] == ["0.00000000", f"{realized:.8f}"]
    _, balance, _ = await signed(http, ready, "GET", "/fapi/v3/balance")
    exit_fee = (exit_price * D("0.010") * D("0.0005")).quantize(D("0.00000001"))
    assert D(balance[0]["balance"]) == D(10000) - fee + realized - exit_fee
    _, positions, _ = await signed(http, ready, "GET", "/fapi/v3/positionRisk")
    assert positions == []


async def test_filters_idempotence_and_queries_over_http(
    ready: SimServer, http: aiohttp.ClientSession
) -> None:
    async def order(**params: object) -> tuple[int, dict[str, Any]]:
        base = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"}
        status, body, _ = await signed(http, ready, "POST", "/fapi/v1/order", {**base, **params})
        return status, body

    assert (await order(quantity="0.0001"))[1]["code"] == -1111
    assert (await order(quantity="0.001"))[1]["code"] == -4164
    assert (await order(type="STOP_MARKET"))[1]["code"] == -4120
    status, first = await order(newClientOrderId="dup-1")
    assert status == 200
    assert first["status"] == "NEW"  # default ACK reply
    status, again = await order(newClientOrderId="dup-1")
    assert (status, again["code"]) == (400, -4116)
    _, found, _ = await signed(
        http, ready, "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "dup-1"}
    )
    assert (found["orderId"], found["status"]) == (first["orderId"], "FILLED")
    _, missing, _ = await signed(
        http, ready, "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "never"}
    )
    assert missing["code"] == -2013
    _, open_orders, _ = await signed(http, ready, "GET", "/fapi/v1/openOrders")
    assert open_orders == []
    _, done, _ = await signed(
        http, ready, "DELETE", "/fapi/v1/allOpenOrders", {"symbol": "BTCUSDT"}
    )
    assert done == {"code": 200, "msg": "The operation of cancel all open order is done."}
    await control(http, ready, "account", {"balance": "10"})
    assert (await order(quantity="0.010"))[1]["code"] == -2019


async def test_stop_market_close_position_triggered_by_mark_price(
    ready: SimServer, http: aiohttp.ClientSession, user_stream: AiohttpReader
) -> None:
    await signed(
        http,
        ready,
        "POST",
        "/fapi/v1/order",
        {"symbol": "ETHUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.100"},
    )
    await user_stream.until(lambda m: len(m) == 3)
    mark = ready.market.books["ETHUSDT"].latest_mark().mark
    trigger = f"{mark * 0.99:.2f}"
    status, algo, _ = await signed(
        http,
        ready,
        "POST",
        "/fapi/v1/algoOrder",
        {
            "algoType": "CONDITIONAL",
            "symbol": "ETHUSDT",
            "side": "SELL",
            "type": "STOP_MARKET",
            "triggerPrice": trigger,
            "closePosition": True,
            "workingType": "MARK_PRICE",
            "clientAlgoId": "stop-1",
        },
    )
    assert status == 200, algo
    assert (algo["algoStatus"], algo["clientAlgoId"], algo["triggerPrice"]) == (
        "NEW",
        "stop-1",
        trigger,
    )
    new = await user_stream.next()
    assert (new["e"], new["o"]["X"]) == ("ALGO_UPDATE", "NEW")
    _, opened, _ = await signed(
        http, ready, "GET", "/fapi/v1/openAlgoOrders", {"symbol": "ETHUSDT"}
    )
    assert [a["clientAlgoId"] for a in opened] == ["stop-1"]
    status, immediate, _ = await signed(
        http,
        ready,
        "POST",
        "/fapi/v1/algoOrder",
        {
            "algoType": "CONDITIONAL",
            "symbol": "ETHUSDT",
            "side": "SELL",
            "type": "STOP_MARKET",
            "triggerPrice": f"{mark * 1.01:.2f}",
            "closePosition": True,
            "workingType": "MARK_PRICE",
        },
    )
    assert (status, immediate["code"]) == (400, -2021)

    await control(http, ready, "market", {"symbol": "ETHUSDT", "shock_bps": -300})
    await ready.advance_to(START + 13_000)
    msgs = await user_stream.until(
        lambda m: bool(m) and m[-1]["e"] == "ALGO_UPDATE" and m[-1]["o"]["X"] == "FINISHED"
    )
    assert [m["o"]["X"] for m in msgs if m["e"] == "ALGO_UPDATE"] == [
        "TRIGGERING",
        "TRIGGERED",
        "FINISHED",
    ]
    fill = next(m["o"] for m in msgs if m["e"] == "ORDER_TRADE_UPDATE" and m["o"]["x"] == "TRADE")
    assert (fill["ot"], fill["cp"], fill["S"], fill["l"]) == ("STOP_MARKET", True, "SELL", "0.100")
    _, positions, _ = await signed(http, ready, "GET", "/fapi/v3/positionRisk")
    assert positions == []
    _, opened, _ = await signed(http, ready, "GET", "/fapi/v1/openAlgoOrders")
    assert opened == []
    _, queried, _ = await signed(
        http, ready, "GET", "/fapi/v1/algoOrder", {"clientAlgoId": "stop-1"}
    )
    assert queried["algoStatus"] == "FINISHED"
    assert queried["actualOrderId"] == str(fill["i"])


async def test_cancel_algo_orders(ready: SimServer, http: aiohttp.ClientSession) -> None:
    await signed(
        http,
        ready,
        "POST",
        "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"},
    )
    mark = ready.market.books["BTCUSDT"].latest_mark().mark
    ids = []
    for i, kind in enumerate(("STOP_MARKET", "TAKE_PROFIT_MARKET")):
        factor = 0.98 if kind == "STOP_MARKET" else 1.02
        status, algo, _ = await signed(
            http,
            ready,
            "POST",
            "/fapi/v1/algoOrder",
            {
                "algoType": "CONDITIONAL",
                "symbol": "BTCUSDT",
                "side": "SELL",
                "type": kind,
                "triggerPrice": f"{round(mark * factor, 1):.1f}0",
                "quantity": "0.010",
                "reduceOnly": True,
                "clientAlgoId": f"leg-{i}",
            },
        )
        assert status == 200, algo
        ids.append(algo["algoId"])
    _, cancelled, _ = await signed(http, ready, "DELETE", "/fapi/v1/algoOrder", {"algoId": ids[0]})
    assert cancelled["algoId"] == ids[0]
    _, again, _ = await signed(http, ready, "DELETE", "/fapi/v1/algoOrder", {"algoId": ids[0]})
    assert again["code"] == -2011
    _, done, _ = await signed(
        http, ready, "DELETE", "/fapi/v1/algoOpenOrders", {"symbol": "BTCUSDT"}
    )
    assert done["code"] == 200
    _, opened, _ = await signed(http, ready, "GET", "/fapi/v1/openAlgoOrders")
    assert opened == []


async def test_funding_is_paid_on_open_positions(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    boundary = (START // (8 * 3_600_000) + 1) * 8 * 3_600_000
    sim = await make_sim(start_ms=boundary - 5_000, symbols=("BTCUSDT",))
    await sim.advance_to(boundary - 3_000)
    key = await listen_key(http, sim)
    async with http.ws_connect(f"{sim.private_ws_url}/ws/{key}") as ws:
        reader = AiohttpReader(ws)
        status, _, _ = await signed(
            http,
            sim,
            "POST",
            "/fapi/v1/order",
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.100"},
        )
        assert status == 200
        await reader.until(lambda m: len(m) == 3)
        await sim.advance_to(boundary + 1_000)
        update = await reader.next()
    assert update["e"] == "ACCOUNT_UPDATE"
    assert update["a"]["m"] == "FUNDING_FEE"
    _, rates, _ = await get(
        http, f"{sim.rest_url}/fapi/v1/fundingRate", {"symbol": "BTCUSDT", "startTime": boundary}
    )
    assert [r["fundingTime"] for r in rates] == [boundary]
    expected = (-D("0.100") * D(rates[0]["markPrice"]) * D(rates[0]["fundingRate"])).quantize(
        D("0.00000001")
    )
    assert D(update["a"]["B"][0]["bc"]) == expected
    _, income, _ = await signed(http, sim, "GET", "/fapi/v1/income", {"incomeType": "FUNDING_FEE"})
    assert [(i["symbol"], D(i["income"]), i["time"]) for i in income] == [
        ("BTCUSDT", expected, boundary)
    ]


async def test_listen_key_lifecycle(sim: SimServer, http: aiohttp.ClientSession) -> None:
    headers = {"X-MBX-APIKEY": sim.config.api_key}
    key = await listen_key(http, sim)
    assert key == await listen_key(http, sim)  # the active key is returned again
    async with http.put(f"{sim.rest_url}/fapi/v1/listenKey", headers=headers) as resp:
        assert resp.status == 200
        assert (await resp.json())["listenKey"] == key
    async with http.delete(f"{sim.rest_url}/fapi/v1/listenKey", headers=headers) as resp:
        assert resp.status == 200
    async with http.put(f"{sim.rest_url}/fapi/v1/listenKey", headers=headers) as resp:
        assert resp.status == 400
        assert (await resp.json())["code"] == -1125
    async with http.get(f"{sim.private_ws_url}/ws/{key}") as resp:
        assert resp.status == 400
    async with http.post(f"{sim.rest_url}/fapi/v1/listenKey") as resp:
        assert resp.status == 401  # the API key header is required
    assert await listen_key(http, sim) != key


async def test_listen_key_expiry_pushes_listen_key_expired(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(listen_key_ttl_s=0.3)
    key = await listen_key(http, sim)
    async with http.ws_connect(f"{sim.private_ws_url}/ws/{key}") as ws:
        event = await AiohttpReader(ws).next()
    assert event["e"] == "listenKeyExpired"
    assert event["listenKey"] == key
    async with http.put(
        f"{sim.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": sim.config.api_key}
    ) as resp:
        assert (await resp.json())["code"] == -1125


async def test_private_stream_modes_events_filter_and_combined(
    ready: SimServer, http: aiohttp.ClientSession
) -> None:
    key = await listen_key(http, ready)
    filtered_url = f"{ready.private_ws_url}/ws?listenKey={key}&events=ORDER_TRADE_UPDATE"
    combined_url = f"{ready.private_ws_url}/stream?listenKey={key}"
    async with (
        http.ws_connect(filtered_url) as only_orders,
        http.ws_connect(combined_url) as combined,
    ):
        await signed(
            http,
            ready,
            "POST",
            "/fapi/v1/order",
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"},
        )
        orders = await AiohttpReader(only_orders).until(lambda m: len(m) == 2)
        wrapped = await AiohttpReader(combined).until(lambda m: len(m) == 3)
    assert [m["e"] for m in orders] == ["ORDER_TRADE_UPDATE", "ORDER_TRADE_UPDATE"]
    assert all(m["stream"] == key for m in wrapped)
    assert [m["data"]["e"] for m in wrapped] == [
        "ORDER_TRADE_UPDATE",
        "ACCOUNT_UPDATE",
        "ORDER_TRADE_UPDATE",
    ]


async def test_expire_listen_key_on_demand(
    sim: SimServer, http: aiohttp.ClientSession, user_stream: AiohttpReader
) -> None:
    await control(http, sim, "faults", {"expire_listen_key": True})
    event = await user_stream.next()
    assert event["e"] == "listenKeyExpired"
