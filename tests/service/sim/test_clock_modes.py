"""Realtime and as-fast-as-possible clocks, pausing and resuming over the control endpoint."""

from __future__ import annotations

import asyncio

import aiohttp

from tests.service.sim.conftest import START, MakeSim
from tests.service.sim.simclient import AiohttpReader, control, strip_stream_fields, wait_for


async def test_realtime_clock_streams_and_pauses(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim(manual=False, speed=20.0, trade_rate=10.0)
    async with http.ws_connect(f"{sim.market_ws_url}/ws/btcusdt@markPrice@1s") as ws:
        reader = AiohttpReader(ws)
        marks = await reader.until(lambda m: len(m) >= 5)
    times = [m["E"] for m in marks]
    assert times == list(range(times[0], times[0] + 5000, 1000))
    paused = await control(http, sim, "clock", {"pause": True})
    assert paused["paused"] is True
    frozen = paused["sim_time_ms"]
    stepped = await control(http, sim, "clock", {"advance_by": 2_000})
    assert stepped["sim_time_ms"] == frozen + 2_000
    state = await control(http, sim, "clock", {"resume": True})
    assert state["paused"] is False
    await wait_for(lambda: sim.sim_time_ms > frozen + 4_000)
    faster = await control(http, sim, "clock", {"speed": 100})
    assert faster["speed"] == 100


async def test_manual_clock_refuses_speed_and_max_clock_needs_a_client(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    manual = await make_sim()
    async with http.post(f"{manual.control_url}/clock", json={"speed": 2}) as resp:
        assert resp.status == 400
    fast = await make_sim(manual=False, speed=0.0, trade_rate=50.0, symbols=("BTCUSDT",))
    assert fast.sim_time_ms == START  # nobody is listening: time stands still
    async with http.ws_connect(f"{fast.market_ws_url}/ws/btcusdt@aggTrade") as ws:
        msgs = await AiohttpReader(ws).until(lambda m: len(m) >= 20_000)
        ids = [m["a"] for m in msgs]
        assert ids == list(range(ids[0], ids[0] + len(ids)))
        assert fast.sim_time_ms - START >= 20_000 / (50 * 3) * 1000  # ≥ 133 s of market
        paused = await control(http, fast, "clock", {"pause": True})
        stepped = await control(http, fast, "clock", {"advance_by": 1_000})
        assert stepped["sim_time_ms"] == paused["sim_time_ms"] + 1_000
        async with http.get(f"{fast.control_url}/state") as resp:
            assert (await resp.json())["sim_time_ms"] == stepped["sim_time_ms"]


async def test_state_reports_market_connections_and_account(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    sim = await make_sim()
    await sim.advance_to(START + 3_000)
    async with (
        http.ws_connect(f"{sim.market_ws_url}/ws/btcusdt@aggTrade"),
        http.get(f"{sim.control_url}/state") as resp,
    ):
        state = await resp.json()
    assert state["mode"] == "manual"
    assert state["sim_time_ms"] == START + 3_000
    assert state["connections"]["market"] == 1
    btc = state["symbols"]["BTCUSDT"]
    assert btc["last_id"] == sim.tape("BTCUSDT").last_id
    assert btc["bid"] < btc["ask"]
    assert state["account"]["totalWalletBalance"] == "10000.00000000"
    assert set(state["urls"]) == {"rest", "market_ws", "private_ws", "coinbase", "control"}
    async with http.get(
        f"{sim.control_url}/tape", params={"symbol": "BTCUSDT", "from_id": btc["last_id"] - 4}
    ) as resp:
        rows = await resp.json()
    assert [r["a"] for r in rows] == list(range(btc["last_id"] - 4, btc["last_id"] + 1))


async def test_realtime_stream_equals_rest_and_the_manual_tape_of_the_same_seed(
    make_sim: MakeSim, http: aiohttp.ClientSession
) -> None:
    live = await make_sim(manual=False, speed=50.0, seed=11, symbols=("ETHUSDT",))
    async with http.ws_connect(f"{live.market_ws_url}/ws/ethusdt@aggTrade") as ws:
        msgs = await AiohttpReader(ws).until(lambda m: len(m) >= 300)
    first, last = msgs[0]["a"], msgs[-1]["a"]
    assert [m["a"] for m in msgs] == list(range(first, last + 1))
    async with http.get(
        f"{live.rest_url}/fapi/v1/aggTrades",
        params={"symbol": "ETHUSDT", "fromId": first, "limit": 1000},
    ) as resp:
        rest = [r for r in await resp.json() if r["a"] <= last]
    assert rest == [strip_stream_fields(m) for m in msgs]

    manual = await make_sim(seed=11, symbols=("ETHUSDT",))
    await manual.advance_to(msgs[-1]["T"] + 1)
    async with http.get(
        f"{manual.rest_url}/fapi/v1/aggTrades",
        params={"symbol": "ETHUSDT", "fromId": first, "limit": 1000},
    ) as resp:
        replayed = [r for r in await resp.json() if r["a"] <= last]
    assert replayed == rest  # same seed, same market, whatever the pacing


async def test_wait_returns_when_the_server_stops(make_sim: MakeSim) -> None:
    sim = await make_sim()
    waiter = asyncio.create_task(sim.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    await sim.stop()
    await asyncio.wait_for(waiter, 5)
