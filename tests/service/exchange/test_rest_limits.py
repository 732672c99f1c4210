"""Limits shared by the clients of one host, and the account's new-order counts, against
the simulated exchange (its ORDERS limits set low, its order-count headers as Binance's).

The account's tests keep the exchange's wall clock (its order windows) and the client's on one
``ManualClock`` that a client's wait moves: waiting for the next ten-second window takes none."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from arbengine.exchange.exchange_errors import RateLimited
from arbengine.exchange.replies import AggTrades, ExchangeInfo, OrderReply, ServerTime
from arbengine.exchange.rest import BinanceRest, RestLimits
from arbengine.runtime.clock import ManualClock
from arbengine.sim.limits import LimitConfig
from arbengine.sim.request_auth import DEFAULT_API_KEY, DEFAULT_API_SECRET
from arbengine.sim.server import SimConfig, SimServer
from tests.service.sim.simclient import signed

ORDERS_PER_10S = 4
START = 1_700_000_000_000
"""The start of a ten-second window (the exchange's and ours): the tests begin 2 s into it."""
_ids = itertools.count()


@pytest.fixture
def wall() -> ManualClock:
    """The wall clock of the exchange (its rate-limit windows) and of the account's client."""
    return ManualClock(START)


@pytest.fixture
async def sim(wall: ManualClock) -> AsyncIterator[SimServer]:
    limits = LimitConfig(orders_per_10s=ORDERS_PER_10S)
    # Its signing clock is the real one, which the client's waits leave behind.
    config = SimConfig(port=0, manual=True, symbols=("BTCUSDT",), limits=limits, start_ms=START,
                       check_timestamps=False)  # fmt: skip
    async with SimServer(config, wall_clock=lambda: wall.time_ms() / 1000) as server:
        wall.set_ms(await server.advance_by(2_000))
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def trader(
    session: aiohttp.ClientSession, sim: SimServer, wall: ManualClock, slept: list[float]
) -> BinanceRest:
    """A client with the sim's keys, using all of every limit, on ``wall``; ``slept`` records
    its waits, each of which moves ``wall`` and the sim's time on by as much."""

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        wall.advance(round(seconds * 1000))
        await sim.advance_to(wall.time_ms())

    return BinanceRest(session, sim.rest_url, api_key=DEFAULT_API_KEY,
                       api_secret=DEFAULT_API_SECRET, weight_safety=1.0, clock=wall,
                       sleep=sleep)  # fmt: skip


async def new_order(rest: BinanceRest) -> OrderReply:
    """A market order through ``rest`` (raises on a refusal: a 429 included)."""
    cid = f"rate-{next(_ids)}"
    return await rest.post(
        "/fapi/v1/order",
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002",
         "newClientOrderId": cid},
        reply=OrderReply, signed=True, weight=0, order_client_id=cid,
    )  # fmt: skip


# -- one budget, two clients ----------------------------------------------------------------


async def test_clients_sharing_limits_count_each_others_weight(sim, session) -> None:
    clock = ManualClock(start_ms=1_700_000_050_000)  # 50 s before a minute ends
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(round(seconds * 1000))

    shared = RestLimits(50, safety=1.0)
    collectors, live = (
        BinanceRest(session, sim.rest_url, weight_safety=1.0, clock=clock, sleep=sleep,
                    limits=shared)
        for _ in range(2)
    )  # fmt: skip
    params = {"symbol": "BTCUSDT", "limit": 5}
    await collectors.get("/fapi/v1/aggTrades", params, weight=20, reply=AggTrades)
    await live.get("/fapi/v1/aggTrades", params, weight=20, reply=AggTrades)
    assert collectors.budget is live.budget
    assert shared.budget.live_used == 40
    assert slept == []
    # 40 of 50 used by the two: the next 20, whichever client asks, waits for the minute.
    await collectors.get("/fapi/v1/aggTrades", params, weight=20, reply=AggTrades)
    assert slept == [50.05]

    # Clients with limits of their own (another host: the testnet) do not wait for each other.
    slept.clear()
    own = BinanceRest(session, sim.rest_url, weight_limit=50, weight_safety=1.0, clock=clock,
                      sleep=sleep)  # fmt: skip
    await own.get("/fapi/v1/aggTrades", params, weight=40, reply=AggTrades)
    assert slept == []


async def test_a_pause_one_client_meets_holds_the_other(sim, session) -> None:
    shared = RestLimits(safety=1.0)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        shared.paused_until_ms = 0  # (skip the wait)

    first, second = (
        BinanceRest(session, sim.rest_url, weight_safety=1.0, sleep=sleep, limits=shared)
        for _ in range(2)
    )
    async with session.post(
        f"{sim.control_url}/faults", json={"rest_429": {"count": 1, "retry_after": 3}}
    ) as reply:
        assert reply.status == 200
    with pytest.raises(RateLimited):
        await first.get("/fapi/v1/time", reply=ServerTime)
    assert second.paused_until_ms >= int(time.time() * 1000) + 2_000
    await second.get("/fapi/v1/time", reply=ServerTime)  # waited for the pause first
    assert 2 < slept[0] <= 3


# -- the account's order counts ---------------------------------------------------------------


async def test_new_orders_slow_down_before_the_order_limit(sim, session, wall) -> None:
    slept: list[float] = []
    rest = trader(session, sim, wall, slept)
    rest.apply_exchange_info(await rest.get("/fapi/v1/exchangeInfo", reply=ExchangeInfo))
    assert [o["limit"] for o in rest.budget_view()["orders"]] == [ORDERS_PER_10S, 1200]
    for _ in range(ORDERS_PER_10S + 2):  # never a 429: the fifth waits for the window
        await new_order(rest)
    assert len(slept) == 1
    assert 4 < slept[0] <= 10.1


async def test_orders_of_others_on_the_account_count_from_the_headers(sim, session, wall) -> None:
    slept: list[float] = []
    rest = trader(session, sim, wall, slept)
    rest.apply_exchange_info(await rest.get("/fapi/v1/exchangeInfo", reply=ExchangeInfo))
    for n in range(ORDERS_PER_10S - 1):  # placed by another program on the same account
        status, body, _ = await signed(
            session, sim, "POST", "/fapi/v1/order",
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002",
             "newClientOrderId": f"other-{n}"},
        )  # fmt: skip
        assert status == 200, body
    await new_order(rest)  # the exchange says: 4 of 4 this window
    assert rest.budget_view()["orders"][0]["used"] == ORDERS_PER_10S
    assert slept == []
    await new_order(rest)  # in the next window, not refused
    assert len(slept) == 1
    assert 1 < slept[0] <= 10.1


async def test_too_many_new_orders_pauses_new_orders_only(sim, session, wall) -> None:
    slept: list[float] = []
    rest = trader(session, sim, wall, slept)  # the exchange's limits not read: it learns by a 429
    for n in range(ORDERS_PER_10S):
        status, body, _ = await signed(
            session, sim, "POST", "/fapi/v1/order",
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002",
             "newClientOrderId": f"other-{n}"},
        )  # fmt: skip
        assert status == 200, body
    with pytest.raises(RateLimited) as refused:
        await new_order(rest)
    assert "-1015" in str(refused.value)
    assert rest.paused_until_ms == 0
    await rest.get("/fapi/v1/time", reply=ServerTime)  # anything else goes at once
    assert slept == []
    await new_order(rest)  # after the exchange's Retry-After
    assert len(slept) == 1
    assert 1 < slept[0] <= refused.value.retry_after_s
