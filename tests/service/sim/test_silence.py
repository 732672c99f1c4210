"""The ``silence`` fault: connections stay open and answer pings, but carry no data (the risk
guard's stale tape and stale user stream)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from arbengine.sim import SimServer
from tests.service.sim.conftest import START
from tests.service.sim.simclient import (
    WAIT,
    AiohttpReader,
    control,
    get,
    history,
    last_id,
    payload,
    signed,
    wait_for,
)
from tests.service.sim.test_trading import listen_key


async def pong(ws: aiohttp.ClientWebSocketResponse) -> list[Any]:
    """Ping (the client's own, ``autoping`` off) and read until the pong; the data read."""
    await ws.ping(b"alive?")
    data = []
    while True:
        msg = await ws.receive(timeout=WAIT)
        if msg.type is aiohttp.WSMsgType.PONG:
            assert msg.data == b"alive?"
            return data
        assert msg.type is aiohttp.WSMsgType.TEXT, msg
        data.append(payload(msg.json()))


def symbols_of(msgs: list[Any]) -> set[str]:
    return {payload(m)["s"] for m in msgs}


async def test_a_silenced_symbol_sends_nothing_until_cleared_and_the_rest_carries_on(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    await sim.advance_to(START + 5_000)
    streams = "btcusdt@aggTrade/btcusdt@markPrice@1s/ethusdt@aggTrade/ethusdt@markPrice@1s"
    async with http.ws_connect(
        f"{sim.market_ws_url}/stream?streams={streams}", autoping=False
    ) as ws:
        reader = AiohttpReader(ws)
        silence = {"which": "market", "symbol": "btcusdt", "seconds": 600}
        state = await control(http, sim, "faults", {"silence": silence})
        assert [(s["which"], s["symbol"]) for s in state["silence"]] == [("market", "BTCUSDT")]
        assert 599 < state["silence"][0]["seconds_left"] <= 600
        btc_before = last_id(sim, "BTCUSDT")

        await sim.advance_to(START + 10_000)
        eth_last = last_id(sim, "ETHUSDT")
        during = await reader.until(lambda m: bool(m) and payload(m[-1]).get("a") == eth_last)
        during += await pong(ws)  # open, and answering pings
        assert symbols_of(during) == {"ETHUSDT"}  # ETHUSDT carries on, BTCUSDT says nothing
        btc_during = last_id(sim, "BTCUSDT")
        assert btc_during > btc_before + 50  # the market moved on, unseen
        _, state, _ = await get(http, f"{sim.control_url}/state")
        assert state["faults"]["silence"][0]["symbol"] == "BTCUSDT"
        assert state["faults"]["injected"]["silenced"] >= btc_during - btc_before + 5

        await control(http, sim, "faults", {"clear": True})
        assert (await control(http, sim, "faults", {}))["silence"] == []
        await sim.advance_to(START + 12_000)
        btc_last = last_id(sim, "BTCUSDT")
        after = await reader.until(lambda m: bool(m) and payload(m[-1]).get("a") == btc_last)
    btc_trades = [payload(m)["a"] for m in after if payload(m)["e"] == "aggTrade" and
                  payload(m)["s"] == "BTCUSDT"]  # fmt: skip
    # What was not sent is not sent later: the stream resumes after the silenced trades…
    assert btc_trades == list(range(btc_during + 1, btc_last + 1))
    assert "markPriceUpdate" in {payload(m)["e"] for m in after if payload(m)["s"] == "BTCUSDT"}
    # …which REST history still has, for a collector to repair.
    rest_ids = {r["a"] for r in await history(http, sim, "BTCUSDT")}
    assert set(range(btc_before + 1, btc_during + 1)) <= rest_ids


async def test_a_market_silence_ends_after_its_seconds(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    await sim.advance_to(START + 5_000)
    async with http.ws_connect(f"{sim.market_ws_url}/ws/ethusdt@aggTrade", autoping=False) as ws:
        reader = AiohttpReader(ws)
        await control(http, sim, "faults", {"silence": {"which": "market", "seconds": 0.5}})
        await sim.advance_to(START + 6_000)
        silenced = last_id(sim, "ETHUSDT")
        assert await pong(ws) == []
        await wait_for(lambda: not sim.faults.silent("market", time.monotonic()))
        _, state, _ = await get(http, f"{sim.control_url}/state")
        assert state["faults"]["silence"] == []
        await sim.advance_to(START + 7_000)
        last = last_id(sim, "ETHUSDT")
        msgs = await reader.until(lambda m: bool(m) and payload(m[-1])["a"] == last)
    assert [payload(m)["a"] for m in msgs] == list(range(silenced + 1, last + 1))


async def market_order(http: aiohttp.ClientSession, sim: SimServer, client_id: str) -> None:
    status, body, _ = await signed(
        http, sim, "POST", "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010",
         "newClientOrderId": client_id},
    )  # fmt: skip
    assert status == 200, body


async def test_a_silent_user_stream_loses_its_events_but_stays_open(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    await sim.advance_to(START + 5_000)
    key = await listen_key(http, sim)
    async with http.ws_connect(f"{sim.private_ws_url}/ws/{key}", autoping=False) as ws:
        reader = AiohttpReader(ws)
        state = await control(
            http, sim, "faults", {"silence": {"which": "private", "seconds": 600}}
        )
        assert [(s["which"], s["symbol"]) for s in state["silence"]] == [("private", None)]
        await market_order(http, sim, "during-silence")
        assert await pong(ws) == []  # nothing came, and the connection answers
        assert sim.faults.silenced_messages >= 3  # NEW, ACCOUNT_UPDATE, TRADE: not sent

        await control(http, sim, "faults", {"clear": True})
        await market_order(http, sim, "after-silence")
        first = await reader.next()
    # The first event is the second order's: the first order's events are lost for good.
    assert (first["e"], first["o"]["c"]) == ("ORDER_TRADE_UPDATE", "after-silence")


@pytest.mark.parametrize(
    "silence",
    [
        {"which": "private", "symbol": "BTCUSDT", "seconds": 5},
        {"which": "market", "symbol": "NOPEUSDT", "seconds": 5},
        {"which": "market", "seconds": 0},
        {"which": "user", "seconds": 5},
        {"which": "market"},
    ],
)
async def test_a_bad_silence_is_refused_with_a_clear_400(
    sim: SimServer, http: aiohttp.ClientSession, silence: dict[str, Any]
) -> None:
    async with http.post(f"{sim.control_url}/faults", json={"silence": silence}) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error.startswith("faults: ")
    assert "silence" in error
    assert sim.faults.silenced == {}
