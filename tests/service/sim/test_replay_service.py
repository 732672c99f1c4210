"""Replay over sockets: a recorded combined stream is served again, and REST agrees with it."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import orjson

from tests.service.sim.conftest import START, MakeSim
from tests.service.sim.simclient import AiohttpReader, history, strip_stream_fields

STREAMS = "btcusdt@aggTrade/ethusdt@aggTrade/btcusdt@markPrice@1s/btcusdt@forceOrder"


async def test_a_recording_is_served_verbatim_with_consistent_rest(
    make_sim: MakeSim, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    live = await make_sim()
    await http.post(f"{live.control_url}/market", json={"symbol": "BTCUSDT", "regime": "volatile"})
    async with http.ws_connect(f"{live.market_ws_url}/stream?streams={STREAMS}") as ws:
        reader = AiohttpReader(ws)
        await live.advance_to(START + 60_000)
        await reader.until(
            lambda m: (
                bool(m)
                and m[-1]["stream"] == "btcusdt@markPrice@1s"
                and m[-1]["data"]["E"] == START + 60_000
            )
        )
    recording = tmp_path / "session.jsonl"
    recording.write_text("\n".join(reader.raw) + "\n")
    last_t = max(orjson.loads(line)["data"]["E"] for line in reader.raw)

    replay = await make_sim(replay=str(recording))
    assert sorted(replay.market.symbols) == ["BTCUSDT", "ETHUSDT"]
    async with http.ws_connect(f"{replay.market_ws_url}/stream?streams={STREAMS}") as ws:
        again = AiohttpReader(ws)
        await replay.advance_to(last_t)
        await again.until(lambda m: len(m) == len(reader.raw))
    assert [orjson.loads(x) for x in again.raw] == [orjson.loads(x) for x in reader.raw]
    assert getattr(replay.market, "finished", False)

    for symbol in ("BTCUSDT", "ETHUSDT"):
        streamed = [
            strip_stream_fields(orjson.loads(x)["data"])
            for x in reader.raw
            if orjson.loads(x)["stream"] == f"{symbol.lower()}@aggTrade"
        ]
        assert await history(http, replay, symbol) == streamed
    async with http.get(
        f"{replay.rest_url}/fapi/v1/premiumIndex", params={"symbol": "BTCUSDT"}
    ) as resp:
        premium = await resp.json()
    last_mark = [
        orjson.loads(x)["data"]
        for x in reader.raw
        if orjson.loads(x)["stream"] == "btcusdt@markPrice@1s"
    ][-1]
    assert premium["markPrice"] == last_mark["p"]
    assert premium["time"] == last_mark["E"]
