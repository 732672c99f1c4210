"""Market websocket streams over real sockets: shapes, REST consistency, protocol rules."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import orjson
import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

from arbengine.sim import SimServer
from arbengine.sim.wshub import WsRules
from tests.service.sim.conftest import START, MakeSim
from tests.service.sim.simclient import (
    WAIT,
    AiohttpReader,
    control,
    history,
    last_id,
    last_id_reached,
    payload,
    strip_stream_fields,
    wait_for,
)

AGG_KEYS = ["e", "E", "a", "s", "p", "q", "f", "l", "T", "m"]


def connect(url: str) -> ws_connect:
    """A websockets client that never stops reading (its default pauses at 16 queued messages,
    which would hold the server's close frame unread while a test leaves messages behind)."""
    return ws_connect(url, max_queue=None)


async def read_until_closed(ws: websockets.ClientConnection) -> None:
    while True:
        await asyncio.wait_for(ws.recv(), WAIT)


async def read_websockets_until_id(
    ws: websockets.ClientConnection, symbol: str, until_id: int
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while True:
        msg = orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))
        out.append(msg)
        if msg.get("e") == "aggTrade" and msg["s"] == symbol and msg["a"] >= until_id:
            return out


async def test_raw_stream_sends_binance_aggtrades_equal_to_rest_history(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    async with connect(f"{sim.market_ws_url}/ws/btcusdt@aggTrade") as ws:
        await sim.advance_to(START + 120_000)
        last = last_id(sim, "BTCUSDT")
        assert last is not None
        streamed = await read_websockets_until_id(ws, "BTCUSDT", last)
    assert len(streamed) > 1000
    for msg in streamed:
        assert list(msg) == AGG_KEYS
        assert msg["e"] == "aggTrade"
        assert msg["s"] == "BTCUSDT"
        assert isinstance(msg["p"], str)
        assert isinstance(msg["q"], str)
        assert isinstance(msg["m"], bool)
    ids = [m["a"] for m in streamed]
    assert ids == list(range(ids[0], ids[0] + len(ids))), "contiguous a ids"
    rest = await history(http, sim, "BTCUSDT")
    assert [strip_stream_fields(m) for m in streamed] == rest


async def test_combined_stream_wraps_every_message_and_names_streams_like_binance(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    streams = "btcusdt@aggtrade/ethusdt@aggTrade/btcusdt@markprice@1s/ethusdt@markPrice"
    async with http.ws_connect(f"{sim.market_ws_url}/stream?streams={streams}") as ws:
        reader = AiohttpReader(ws)
        await sim.advance_to(START + 9_000)
        eth_last = last_id(sim, "ETHUSDT")
        assert eth_last is not None

        def done(msgs: list[Any]) -> bool:
            marks = [m for m in msgs if m["stream"] == "btcusdt@markPrice@1s"]
            agg = [m for m in msgs if m["stream"] == "ethusdt@aggTrade"]
            return (
                bool(marks)
                and marks[-1]["data"]["E"] == START + 9_000
                and bool(agg)
                and (agg[-1]["data"]["a"] == eth_last)
            )

        msgs = await reader.until(done)
    assert all(set(m) == {"stream", "data"} for m in msgs)
    names = {m["stream"] for m in msgs}
    assert names == {
        "btcusdt@aggTrade",
        "ethusdt@aggTrade",
        "btcusdt@markPrice@1s",
        "ethusdt@markPrice",
    }
    one_second = [m["data"]["E"] for m in msgs if m["stream"] == "btcusdt@markPrice@1s"]
    assert one_second == [START + 1000 * k for k in range(1, 10)]
    three_second = [m["data"]["E"] for m in msgs if m["stream"] == "ethusdt@markPrice"]
    assert three_second == [t for t in range(START + 1000, START + 9001, 1000) if t % 3000 == 0]
    mark = next(m["data"] for m in msgs if m["stream"] == "ethusdt@markPrice")
    assert list(mark) == ["e", "E", "s", "p", "P", "i", "r", "T"]
    assert mark["s"] == "ETHUSDT"
    assert mark["T"] % (8 * 3_600_000) == 0
    status, premium, _ = await _get(
        http, f"{sim.rest_url}/fapi/v1/premiumIndex", {"symbol": "ETHUSDT"}
    )
    assert status == 200
    last_mark = [m["data"] for m in msgs if m["stream"] == "btcusdt@markPrice@1s"][-1]
    assert premium["time"] == last_mark["E"]


async def _get(
    http: aiohttp.ClientSession, url: str, params: dict[str, Any]
) -> tuple[int, dict[str, Any], object]:
    async with http.get(url, params=params) as resp:
        return resp.status, await resp.json(), resp.headers


async def test_live_subscribe_list_and_unsubscribe(sim: SimServer) -> None:
    async with connect(f"{sim.market_ws_url}/ws") as ws:
        await ws.send(
            orjson.dumps({"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade"], "id": 1}).decode()
        )
        assert orjson.loads(await asyncio.wait_for(ws.recv(), WAIT)) == {"result": None, "id": 1}
        await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":2}')
        assert orjson.loads(await asyncio.wait_for(ws.recv(), WAIT)) == {
            "result": ["btcusdt@aggTrade"],
            "id": 2,
        }
        await sim.advance_to(START + 5_000)
        last = last_id(sim, "BTCUSDT")
        assert last is not None
        got = await read_websockets_until_id(ws, "BTCUSDT", last)
        assert got[0]["e"] == "aggTrade"
        await ws.send('{"method":"UNSUBSCRIBE","params":["btcusdt@aggTrade"],"id":3}')
        assert orjson.loads(await asyncio.wait_for(ws.recv(), WAIT)) == {"result": None, "id": 3}
        await sim.advance_to(START + 10_000)
        assert last_id(sim, "BTCUSDT") > last
        await ws.send('{"method":"LIST_SUBSCRIPTIONS","id":4}')
        # Nothing published after the unsubscription: the next frame is the reply.
        assert orjson.loads(await asyncio.wait_for(ws.recv(), WAIT)) == {"result": [], "id": 4}
        await ws.send('{"method":"EXPLODE","id":5}')
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert reply["id"] == 5
        assert reply["error"]["code"] == 2


async def test_force_orders_stream_in_volatile_bursts(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    await control(http, sim, "market", {"symbol": "BTCUSDT", "regime": "volatile"})
    url = f"{sim.market_ws_url}/stream?streams=btcusdt@forceOrder/!forceOrder@arr"
    async with http.ws_connect(url) as ws:
        reader = AiohttpReader(ws)
        await sim.advance_to(START + 120_000)
        expected = sim.market.books["BTCUSDT"].liq_released
        assert expected > 3
        msgs = await reader.until(lambda m: len(m) == 2 * expected)
    for name in ("btcusdt@forceOrder", "!forceOrder@arr"):
        data = [m["data"] for m in msgs if m["stream"] == name]
        assert len(data) == expected
    order = msgs[0]["data"]
    assert order["e"] == "forceOrder"
    assert list(order["o"]) == ["s", "S", "o", "f", "q", "p", "ap", "X", "l", "z", "T"]
    assert order["o"]["s"] == "BTCUSDT"
    assert (order["o"]["o"], order["o"]["f"], order["o"]["X"]) == ("LIMIT", "IOC", "FILLED")
    times = [m["data"]["E"] for m in msgs if m["stream"] == "btcusdt@forceOrder"]
    assert all(b // 1000 > a // 1000 for a, b in itertools.pairwise(times)), (
        "at most one liquidation per symbol per second"
    )


async def test_all_market_mark_prices_array(sim: SimServer) -> None:
    async with connect(f"{sim.market_ws_url}/ws/!markPrice@arr@1s") as ws:
        await sim.advance_to(START + 2_000)
        first = orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert isinstance(first, list)
    assert sorted(x["s"] for x in first) == ["BTCUSDT", "ETHUSDT"]
    assert all(x["e"] == "markPriceUpdate" for x in first)


async def test_uppercase_symbol_streams_carry_nothing_as_on_binance(sim: SimServer) -> None:
    async with connect(f"{sim.market_ws_url}/ws/BTCUSDT@aggTrade/ethusdt@aggTrade") as ws:
        await sim.advance_to(START + 3_000)
        last = last_id(sim, "ETHUSDT")
        assert last is not None
        got = await read_websockets_until_id(ws, "ETHUSDT", last)
    assert {m["s"] for m in got} == {"ETHUSDT"}


async def test_client_ping_is_answered_with_its_payload(sim: SimServer) -> None:
    async with connect(f"{sim.market_ws_url}/ws/btcusdt@aggTrade") as ws:
        latency = await asyncio.wait_for(await ws.ping(b"hello"), WAIT)
        assert latency >= 0


async def test_server_pings_and_drops_a_client_that_never_pongs(make_sim: MakeSim) -> None:
    sim = await make_sim(ws=WsRules(ping_interval_s=0.1, pong_timeout_s=0.4))
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(f"{sim.market_ws_url}/ws/btcusdt@aggTrade", autoping=False)
        first = await ws.receive(timeout=WAIT)
        assert first.type is aiohttp.WSMsgType.PING
        while True:  # never answer: the server must give up on us
            msg = await ws.receive(timeout=WAIT)
            if msg.type is not aiohttp.WSMsgType.PING:
                break
        assert msg.type in (
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.ERROR,
        )
        await ws.close()


async def test_a_client_answering_pings_stays_connected(make_sim: MakeSim) -> None:
    # Pongs count against the 10 messages/s a client may send, so ping under that rate.
    sim = await make_sim(ws=WsRules(ping_interval_s=0.15, pong_timeout_s=0.4))
    async with connect(f"{sim.market_ws_url}/ws/btcusdt@aggTrade") as ws:
        # websockets answers pings itself; outlive several pong timeouts, then still receive.
        await wait_for(lambda: sim.hub.pings_sent >= 6)
        await sim.advance_to(START + 2_000)
        msg = orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert msg["e"] == "aggTrade"


async def test_more_than_ten_client_messages_a_second_disconnects(sim: SimServer) -> None:
    async with connect(f"{sim.market_ws_url}/ws") as ws:
        for i in range(12):
            await ws.send(orjson.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}).decode())
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await read_until_closed(ws)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008


async def test_connection_lifetime_is_counted_in_simulated_time(make_sim: MakeSim) -> None:
    sim = await make_sim(ws=WsRules(max_age_ms=30_000), trade_rate=1.0)
    async with connect(f"{sim.market_ws_url}/ws/btcusdt@markPrice@1s") as ws:
        await sim.advance_to(START + 29_000)
        marks = [orjson.loads(await asyncio.wait_for(ws.recv(), WAIT)) for _ in range(29)]
        assert marks[-1]["E"] == START + 29_000
        await sim.advance_to(START + 31_000)
        with pytest.raises(websockets.ConnectionClosedOK):
            await read_until_closed(ws)


async def test_too_many_streams_on_one_connection_is_refused(make_sim: MakeSim) -> None:
    sim = await make_sim(ws=WsRules(max_streams=2))
    async with connect(f"{sim.market_ws_url}/ws/btcusdt@aggTrade") as ws:
        await ws.send('{"method":"SUBSCRIBE","params":["a@aggTrade","b@aggTrade"],"id":7}')
        reply = orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))
        assert reply["id"] == 7
        assert "too many streams" in reply["error"]["msg"]


async def test_legacy_root_paths_serve_market_streams(sim: SimServer) -> None:
    root = sim.market_ws_url.removesuffix("/market")
    async with connect(f"{root}/stream?streams=ethusdt@aggTrade") as ws:
        await sim.advance_to(START + 2_000)
        msg = orjson.loads(await asyncio.wait_for(ws.recv(), WAIT))
    assert payload(msg)["s"] == "ETHUSDT"
    assert msg["stream"] == "ethusdt@aggTrade"


async def test_stream_and_rest_stay_equal_across_reconnects(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    """A client that reconnects and repairs by fromId ends with exactly the tape."""
    seen: list[dict[str, Any]] = []
    for step in range(3):
        async with http.ws_connect(f"{sim.market_ws_url}/ws/btcusdt@aggTrade") as ws:
            reader = AiohttpReader(ws)
            await sim.advance_to(START + 10_000 * (step + 1))
            last = last_id(sim, "BTCUSDT")
            assert last is not None
            seen += [payload(m) for m in await reader.until(last_id_reached("BTCUSDT", last))]
        await sim.advance_to(START + 10_000 * (step + 1) + 5_000)  # published while away
    rest = await history(http, sim, "BTCUSDT")
    by_id = {r["a"]: r for r in rest}
    for msg in seen:
        assert by_id[msg["a"]] == strip_stream_fields(msg)
    assert len(rest) > len(seen)
