"""Every fault, driven through the HTTP control endpoint and observed over real sockets."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import orjson
import pytest
import websockets
from websockets.asyncio.client import connect

from arbengine.sim import SimServer
from tests.service.sim.conftest import START
from tests.service.sim.simclient import (
    WAIT,
    AiohttpReader,
    control,
    get,
    history,
    last_id,
    last_id_reached,
    signed,
    strip_stream_fields,
)


async def stream_ids_until(reader: AiohttpReader, sim: SimServer, symbol: str) -> list[int]:
    last = sim.tape(symbol).last_id
    assert last is not None
    msgs = await reader.until(last_id_reached(symbol, last))
    return [m["a"] for m in msgs]


@pytest.fixture
async def warm(sim: SimServer) -> SimServer:
    await sim.advance_to(START + 5_000)
    return sim


@pytest.mark.parametrize("mode", ["abort", "close"])
async def test_drop_websocket_connections(
    warm: SimServer, http: aiohttp.ClientSession, mode: str
) -> None:
    async with connect(f"{warm.market_ws_url}/ws/btcusdt@aggTrade", max_queue=None) as ws:
        await control(http, warm, "faults", {"drop_ws": {"which": "market", "mode": mode}})
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), WAIT)
    if mode == "close":
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1001
    else:
        assert closed.value.rcvd is None  # no close frame: the TCP connection just died


async def test_withheld_trades_are_missing_from_the_stream_but_in_rest_history(
    warm: SimServer, http: aiohttp.ClientSession
) -> None:
    first = last_id(warm, "BTCUSDT") + 1
    gap = list(range(first + 10, first + 15))
    state = await control(
        http,
        warm,
        "faults",
        {"withhold": {"symbol": "BTCUSDT", "from_id": gap[0], "to_id": gap[-1]}},
    )
    assert state["withheld"] == {"BTCUSDT": [[gap[0], gap[-1]]]}
    async with http.ws_connect(f"{warm.market_ws_url}/ws/btcusdt@aggTrade") as ws:
        reader = AiohttpReader(ws)
        await warm.advance_to(START + 30_000)
        streamed = await stream_ids_until(reader, warm, "BTCUSDT")
    assert streamed[0] == first
    assert not set(gap) & set(streamed)
    assert streamed == [a for a in range(first, streamed[-1] + 1) if a not in gap]
    rest = {r["a"]: r for r in await history(http, warm, "BTCUSDT")}
    assert all(a in rest for a in gap)  # only REST can repair the gap
    assert (await control(http, warm, "faults", {}))["withheld"] == {}


async def test_duplicated_and_reordered_messages(
    warm: SimServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{warm.market_ws_url}/ws/ethusdt@aggTrade") as ws:
        reader = AiohttpReader(ws)
        await control(http, warm, "faults", {"duplicate": {"count": 3, "symbol": "ETHUSDT"}})
        await warm.advance_to(START + 10_000)
        ids = await stream_ids_until(reader, warm, "ETHUSDT")
        assert ids[:6] == [ids[0], ids[0], ids[0] + 1, ids[0] + 1, ids[0] + 2, ids[0] + 2]
        assert ids[6:] == list(range(ids[0] + 3, ids[-1] + 1))
        await control(http, warm, "faults", {"reorder": {"count": 4}})
        await warm.advance_to(START + 15_000)
        ids = await stream_ids_until(reader, warm, "ETHUSDT")
        base = ids[1]
        assert ids[:4] == [base + 1, base, base + 3, base + 2]
        assert ids[4:] == list(range(base + 4, ids[-1] + 1))


async def test_malformed_json_frames_then_the_stream_goes_on(
    warm: SimServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{warm.market_ws_url}/ws/btcusdt@aggTrade") as ws:
        await control(http, warm, "faults", {"malformed": {"count": 2, "kind": "json"}})
        for _ in range(2):
            msg = await ws.receive(timeout=WAIT)
            assert msg.type is aiohttp.WSMsgType.TEXT
            with pytest.raises(orjson.JSONDecodeError):
                orjson.loads(msg.data)
        await warm.advance_to(START + 8_000)
        good = await AiohttpReader(ws).next()
        assert good["e"] == "aggTrade"


async def test_malformed_protocol_frame_breaks_the_connection(
    warm: SimServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{warm.market_ws_url}/ws/btcusdt@aggTrade") as ws:
        await control(http, warm, "faults", {"malformed": {"count": 1, "kind": "frame"}})
        msg = await ws.receive(timeout=WAIT)
        assert msg.type in (
            aiohttp.WSMsgType.ERROR,
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
        )


async def test_rest_429_burst_then_418_then_normal(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    await control(
        http,
        sim,
        "faults",
        {"rest_429": {"count": 2, "retry_after": 3}, "rest_418": {"count": 1, "retry_after": 7}},
    )
    url = f"{sim.rest_url}/fapi/v1/premiumIndex"
    seen = []
    for _ in range(4):
        status, body, headers = await get(http, url, {"symbol": "BTCUSDT"})
        seen.append(
            (
                status,
                headers.get("Retry-After"),
                body.get("code") if isinstance(body, dict) else None,
            )
        )
    assert seen[:3] == [(429, "3", -1003), (429, "3", -1003), (418, "7", -1003)]
    assert seen[3][0] == 200


async def test_ban_on_demand(sim: SimServer, http: aiohttp.ClientSession) -> None:
    await control(http, sim, "faults", {"ban": {"seconds": 30}})
    status, _, headers = await get(http, f"{sim.rest_url}/fapi/v1/time")
    assert status == 418
    assert int(headers["Retry-After"]) == 30
    await control(http, sim, "reset_limits", {})
    status, _, _ = await get(http, f"{sim.rest_url}/fapi/v1/time")
    assert status == 200


@pytest.mark.parametrize(
    ("code", "content_type"),
    [(502, "application/json"), (408, "application/json"), (403, "text/html"),
     (404, "text/plain"), (451, "text/plain")],
)  # fmt: skip
async def test_http_errors_on_a_path(
    sim: SimServer, http: aiohttp.ClientSession, code: int, content_type: str
) -> None:
    await control(
        http,
        sim,
        "faults",
        {"http_5xx": {"count": 1, "status": code, "path": "/fapi/v1/openInterest"}},
    )
    status, _, _ = await get(http, f"{sim.rest_url}/fapi/v1/time")
    assert status == 200  # another path is untouched
    url = f"{sim.rest_url}/fapi/v1/openInterest"
    async with http.get(url, params={"symbol": "BTCUSDT"}) as response:
        # A firewall answers with its HTML page, a proxy with text: not Binance JSON.
        assert (response.status, response.content_type) == (code, content_type)
    assert (await get(http, url, {"symbol": "BTCUSDT"}))[0] == 200


async def test_a_delisted_symbol_is_gone_from_rest_and_streams(
    warm: SimServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(
        f"{warm.market_ws_url}/stream?streams=btcusdt@aggTrade/ethusdt@aggTrade"
    ) as ws:
        reader = AiohttpReader(ws)
        await control(http, warm, "market", {"symbol": "ETHUSDT", "delist": True})
        eth_last = last_id(warm, "ETHUSDT")
        await warm.advance_by(3_000)
        assert last_id(warm, "ETHUSDT") > eth_last  # its market goes on, unseen
        msgs = await reader.until(last_id_reached("BTCUSDT", last_id(warm, "BTCUSDT")))
        assert {m["data"]["s"] for m in msgs} == {"BTCUSDT"}
    status, info, _ = await get(http, f"{warm.rest_url}/fapi/v1/exchangeInfo")
    assert status == 200
    assert [s["symbol"] for s in info["symbols"]] == ["BTCUSDT"]
    status, body, _ = await get(
        http, f"{warm.rest_url}/fapi/v1/aggTrades", {"symbol": "ETHUSDT", "limit": 5}
    )
    assert (status, body["code"]) == (400, -1121)
    state = await (await http.get(f"{warm.control_url}/state")).json()
    assert state["symbols"]["ETHUSDT"]["listed"] is False
    async with http.post(
        f"{warm.control_url}/market", json={"symbol": "ETHUSDT", "delist": False}
    ) as response:
        assert response.status == 400


async def test_order_5xx_that_was_executed_is_found_by_client_id(
    warm: SimServer, http: aiohttp.ClientSession
) -> None:
    await control(http, warm, "faults", {"order_5xx": {"count": 1, "status": 503, "execute": True}})
    params = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": "0.010",
        "newClientOrderId": "unknown-1",
    }
    status, body, _ = await signed(http, warm, "POST", "/fapi/v1/order", params)
    assert (status, body["code"]) == (503, -1007)
    _, found, _ = await signed(
        http, warm, "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "unknown-1"}
    )
    assert found["status"] == "FILLED"
    _, positions, _ = await signed(http, warm, "GET", "/fapi/v3/positionRisk")
    assert positions[0]["positionAmt"] == "0.010"
    status, retry, _ = await signed(http, warm, "POST", "/fapi/v1/order", params)
    assert retry["code"] == -4116  # retrying blindly would be refused, not doubled


async def test_order_5xx_not_executed_leaves_nothing(
    warm: SimServer, http: aiohttp.ClientSession
) -> None:
    await control(http, warm, "faults", {"order_5xx": {"count": 1, "execute": False}})
    params = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "MARKET",
        "quantity": "0.010",
        "newClientOrderId": "lost-1",
    }
    status, _, _ = await signed(http, warm, "POST", "/fapi/v1/order", params)
    assert status == 503
    _, found, _ = await signed(
        http, warm, "GET", "/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "lost-1"}
    )
    assert found["code"] == -2013
    status, placed, _ = await signed(http, warm, "POST", "/fapi/v1/order", params)
    assert status == 200, placed


async def test_rest_and_websocket_latency(warm: SimServer, http: aiohttp.ClientSession) -> None:
    await control(http, warm, "faults", {"latency": {"rest_ms": 150, "ws_ms": 100}})
    started = time.monotonic()
    status, _, _ = await get(http, f"{warm.rest_url}/fapi/v1/time")
    assert status == 200
    assert time.monotonic() - started >= 0.15  # the injected delay is a lower bound
    async with http.ws_connect(f"{warm.market_ws_url}/ws/btcusdt@aggTrade") as ws:
        reader = AiohttpReader(ws)
        await warm.advance_to(START + 10_000)
        published = time.monotonic()
        ids = await stream_ids_until(reader, warm, "BTCUSDT")
        assert time.monotonic() - published >= 0.1
    assert ids == list(range(ids[0], ids[-1] + 1))  # delayed, not reordered or lost
    await control(http, warm, "faults", {"latency": {"rest_ms": 0, "ws_ms": 0}})


async def test_hang_holds_rest_calls_and_websocket_data(
    warm: SimServer, http: aiohttp.ClientSession
) -> None:
    async with http.ws_connect(f"{warm.market_ws_url}/ws/btcusdt@aggTrade") as ws:
        await control(http, warm, "faults", {"hang": {"seconds": 2.0}})
        with pytest.raises(asyncio.TimeoutError):
            await get(
                http, f"{warm.rest_url}/fapi/v1/time", timeout=aiohttp.ClientTimeout(total=0.3)
            )
        await warm.advance_to(START + 8_000)
        with pytest.raises(asyncio.TimeoutError):
            await ws.receive(timeout=0.3)
        reader = AiohttpReader(ws)
        ids = await stream_ids_until(reader, warm, "BTCUSDT")  # delivered once it ends
        assert ids == list(range(ids[0], ids[-1] + 1))
    status, _, _ = await get(http, f"{warm.rest_url}/fapi/v1/time")
    assert status == 200


async def test_a_narrow_hang_holds_one_symbols_calls_to_a_path_until_cleared(
    warm: SimServer, http: aiohttp.ClientSession
) -> None:
    path = "/futures/data/globalLongShortAccountRatio"
    await control(http, warm, "faults", {"hang": {"seconds": 600, "path": "/futures/data/",
                                                  "symbol": "ETHUSDT"}})  # fmt: skip
    params = {"period": "5m", "limit": 1}
    held = asyncio.create_task(get(http, f"{warm.rest_url}{path}", {**params, "symbol": "ETHUSDT"}))
    # The same path for another symbol, and another path for the same symbol, answer.
    status, _, _ = await get(http, f"{warm.rest_url}{path}", {**params, "symbol": "BTCUSDT"})
    assert status == 200
    status, _, _ = await get(http, f"{warm.rest_url}/fapi/v1/openInterest", {"symbol": "ETHUSDT"})
    assert status == 200
    await asyncio.sleep(0.3)
    assert not held.done()

    await control(http, warm, "faults", {"clear": True})

    status, _, _ = await asyncio.wait_for(held, 2)
    assert status == 200


async def test_thin_book_fails_percent_price(warm: SimServer, http: aiohttp.ClientSession) -> None:
    await control(http, warm, "faults", {"slippage": {"symbol": "BTCUSDT", "bps": 800}})
    status, body, _ = await signed(
        http,
        warm,
        "POST",
        "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"},
    )
    assert (status, body["code"]) == (400, -4131)


async def test_bad_control_requests_are_refused(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    for path, body in [
        ("faults", {"explode": 1}),
        ("faults", {"hang": {}}),
        ("faults", {"hang": {"seconds": 1, "scope": "ws", "symbol": "BTCUSDT"}}),
        ("clock", {"warp": 1}),
        ("market", {"symbol": "NOPE"}),
    ]:
        async with http.post(f"{sim.control_url}/{path}", json=body) as resp:
            assert resp.status == 400
            assert "error" in await resp.json()


async def test_stream_gap_is_repairable_to_the_exact_tape(
    warm: SimServer, http: aiohttp.ClientSession
) -> None:
    """What a collector does: stream, notice the gap, fetch it by fromId, end equal to the tape."""
    first = last_id(warm, "ETHUSDT") + 1
    await control(
        http,
        warm,
        "faults",
        {"withhold": {"symbol": "ETHUSDT", "from_id": first + 3, "to_id": first + 40}},
    )
    async with http.ws_connect(f"{warm.market_ws_url}/ws/ethusdt@aggTrade") as ws:
        reader = AiohttpReader(ws)
        await warm.advance_to(START + 20_000)
        last = last_id(warm, "ETHUSDT")
        msgs = await reader.until(last_id_reached("ETHUSDT", last))
    got = {m["a"]: strip_stream_fields(m) for m in msgs}
    missing = [a for a in range(first, last + 1) if a not in got]
    assert missing == list(range(first + 3, first + 41))
    _, repaired, _ = await get(
        http,
        f"{warm.rest_url}/fapi/v1/aggTrades",
        {"symbol": "ETHUSDT", "fromId": missing[0], "limit": len(missing)},
    )
    for row in repaired:
        got[row["a"]] = row
    tape = await history(http, warm, "ETHUSDT")
    assert [got[a] for a in sorted(got)] == [r for r in tape if r["a"] >= first]
