"""``POST /_sim/market {"move_pct": …}``: the price level jumps now and the market carries on
from there, as every client of the exchange sees it (the risk guard's unrealised-loss tests)."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import pytest

from arbengine.sim import SimServer
from tests.service.sim.conftest import START
from tests.service.sim.simclient import AiohttpReader, control, get, payload, signed

D = Decimal
QTY = D("0.100")


async def mark(http: aiohttp.ClientSession, sim: SimServer) -> float:
    _, body, _ = await get(http, f"{sim.rest_url}/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"})
    return float(body["markPrice"])


async def test_a_move_shows_at_once_in_mark_position_and_account_then_the_market_carries_on(
    sim: SimServer, http: aiohttp.ClientSession
) -> None:
    await sim.advance_to(START + 10_500)  # mid-second: the rest of it is generated already
    status, order, _ = await signed(
        http, sim, "POST", "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": str(QTY)},
    )  # fmt: skip
    assert status == 200, order
    before = await mark(http, sim)

    async with http.ws_connect(
        f"{sim.market_ws_url}/stream?streams=btcusdt@aggTrade/btcusdt@markPrice@1s"
    ) as ws:
        moved = await control(http, sim, "market", {"symbol": "BTCUSDT", "move_pct": -3.0})
        assert moved["mark"] == pytest.approx(before * 0.97, rel=1e-9)

        # At once, without the clock moving: REST mark, position, account, book.
        after = await mark(http, sim)
        assert after == pytest.approx(before * 0.97, rel=1e-9)
        _, positions, _ = await signed(http, sim, "GET", "/fapi/v3/positionRisk")
        (position,) = positions
        entry = D(position["entryPrice"])
        assert float(position["markPrice"]) == pytest.approx(after, rel=1e-9)
        loss = (D(position["markPrice"]) - entry) * QTY
        assert D(position["unRealizedProfit"]) == pytest.approx(loss, abs=D("0.01"))
        assert loss < -D("0.02") * entry * QTY  # about 3 % of the position's value
        _, account, _ = await signed(http, sim, "GET", "/fapi/v3/account")
        assert D(account["totalUnrealizedProfit"]) == D(position["unRealizedProfit"])
        _, book, _ = await get(
            http, f"{sim.rest_url}/fapi/v1/ticker/bookTicker", {"symbol": "BTCUSDT"}
        )
        assert float(book["bidPrice"]) == pytest.approx(after, rel=1e-4)

        # The streams: every later trade and mark is at the new level, and stays there.
        reader = AiohttpReader(ws)
        await sim.advance_to(START + 20_000)
        last = sim.tape("BTCUSDT").last_id
        msgs = await reader.until(
            lambda m: bool(m) and payload(m[-1]).get("a") == last and len(m) > 9
        )
    trades = [float(payload(m)["p"]) for m in msgs if payload(m)["e"] == "aggTrade"]
    marks = [float(payload(m)["p"]) for m in msgs if payload(m)["e"] == "markPriceUpdate"]
    assert len(trades) > 50
    assert len(marks) >= 9
    for price in trades + marks:
        assert price == pytest.approx(before * 0.97, rel=0.003)
    assert await mark(http, sim) == pytest.approx(before * 0.97, rel=0.003)


@pytest.mark.parametrize("value", ["-3", True, None, -60, 50.5, [1]])
async def test_a_bad_move_is_refused_with_a_clear_400(
    sim: SimServer, http: aiohttp.ClientSession, value: object
) -> None:
    async with http.post(
        f"{sim.control_url}/market", json={"symbol": "BTCUSDT", "move_pct": value}
    ) as resp:
        assert resp.status == 400
        error = (await resp.json())["error"]
    assert error.startswith("market: move_pct must be a number of percent from -50 to 50")
    assert sim.market.books["BTCUSDT"].moved_after_id is None
