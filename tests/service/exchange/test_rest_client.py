"""The REST client against the simulated exchange: weights, limits, bans, error categories."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from arbengine.domain.errors import RetryableError
from arbengine.exchange.budget import Priority
from arbengine.exchange.exchange_errors import (
    BadSignature,
    FatalExchangeError,
    InvalidSymbol,
    IpBanned,
    OrderOutcomeUnknown,
    RateLimited,
    RetryableExchangeError,
    TimestampOutsideWindow,
    UnexpectedStatus,
    WafBlocked,
)
from arbengine.exchange.replies import (
    AccountBalance,
    AggTrades,
    ExchangeInfo,
    OpenInterest,
    OpenInterestHist,
    OrderReply,
    PremiumIndex,
    ServerTime,
)
from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.clock import ManualClock
from arbengine.runtime.health import HealthBoard
from arbengine.settings import ExchangeSettings
from arbengine.sim.request_auth import DEFAULT_API_KEY, DEFAULT_API_SECRET
from arbengine.sim.server import SimConfig, SimServer
from tests.conftest import free_port

WEIGHT_SAFETY = ExchangeSettings().weight_safety
"""The daemon's share of each REST limit (a test of the budget states its own)."""


@pytest.fixture
async def sim():
    async with SimServer(SimConfig(port=0, manual=True, symbols=("BTCUSDT",))) as server:
        await server.advance_by(2_000)
        yield server


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


async def fault(session: aiohttp.ClientSession, sim: SimServer, body: dict) -> None:
    async with session.post(f"{sim.control_url}/faults", json=body) as response:
        assert response.status == 200


async def test_weight_is_tracked_from_headers_and_limits_from_exchange_info(sim, session) -> None:
    rest = BinanceRest(session, sim.rest_url, weight_safety=WEIGHT_SAFETY)
    info = await rest.get("/fapi/v1/exchangeInfo", weight=1, reply=ExchangeInfo)
    rest.apply_exchange_info(info)
    assert rest.weight_limit == 2400
    await rest.get(
        "/fapi/v1/aggTrades", {"symbol": "BTCUSDT", "limit": 10}, weight=20, reply=AggTrades
    )
    assert rest.used_weight >= 21


async def test_the_client_waits_for_the_next_minute_instead_of_exceeding(sim, session) -> None:
    clock = ManualClock(start_ms=1_700_000_050_000)  # 50 s before a minute ends
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(round(seconds * 1000))

    rest = BinanceRest(session, sim.rest_url, weight_limit=50, weight_safety=1.0, clock=clock,
                       sleep=sleep)  # fmt: skip
    await rest.get(
        "/fapi/v1/aggTrades", {"symbol": "BTCUSDT", "limit": 5}, weight=20, reply=AggTrades
    )
    await rest.get(
        "/fapi/v1/aggTrades", {"symbol": "BTCUSDT", "limit": 5}, weight=20, reply=AggTrades
    )
    assert slept == []
    await rest.get(
        "/fapi/v1/aggTrades", {"symbol": "BTCUSDT", "limit": 5}, weight=20, reply=AggTrades
    )
    assert slept == [50.05]  # to the next minute, and a little past it


async def test_a_waiting_live_call_goes_before_waiting_repair_and_backfill(sim, session) -> None:
    clock = ManualClock(start_ms=1_700_000_050_000)
    sent: list[str] = []
    minute_over = asyncio.Event()

    async def sleep(seconds: float) -> None:
        await minute_over.wait()  # nothing moves until every call is waiting
        clock.advance(round(seconds * 1000))

    rest = BinanceRest(session, sim.rest_url, weight_limit=100, weight_safety=1.0, clock=clock,
                       sleep=sleep)  # fmt: skip
    params = {"symbol": "BTCUSDT", "limit": 1}
    await rest.get(
        "/fapi/v1/aggTrades", params, weight=100, reply=AggTrades
    )  # the minute's budget, all of it

    async def call(name: str, priority: Priority) -> None:
        await rest.get("/fapi/v1/aggTrades", params, weight=40, priority=priority, reply=AggTrades)
        sent.append(name)

    asking = [
        ("backfill", Priority.BACKFILL),
        ("repair", Priority.REPAIR),
        ("backfill-2", Priority.BACKFILL),
        ("live", Priority.LIVE),
    ]
    async with asyncio.TaskGroup() as group:
        for name, priority in asking:
            group.create_task(call(name, priority))
            await asyncio.sleep(0)  # (each is queued before the next asks)
        view = rest.budget_view()
        assert view["waiting"] == {"live": 1, "repair": 1, "backfill": 2}
        minute_over.set()
    # From the next minute on: live first, then repair, then the backfill in the order they
    # asked (repair and backfill share 100 - 20 reserved a minute, paced through the minute).
    assert sent == ["live", "repair", "backfill", "backfill-2"]
    assert clock.time_ms() // 60_000 == 1_700_000_050_000 // 60_000 + 2


async def test_a_refusal_of_a_counted_path_pauses_its_group_only(sim, session) -> None:
    rest = BinanceRest(session, sim.rest_url, weight_safety=WEIGHT_SAFETY)
    await fault(session, sim, {"rest_429": {"count": 1, "retry_after": 30}})
    with pytest.raises(RateLimited):
        await rest.get("/futures/data/openInterestHist", {"symbol": "BTCUSDT", "period": "5m"},
                       weight=0, reply=list[OpenInterestHist])  # fmt: skip
    assert rest.paused_until_ms == 0
    [futures_data] = [g for g in rest.budget_view()["groups"] if g["name"] == "futures_data"]
    assert futures_data["paused_until_ms"] >= rest.server_time_ms() + 29_000
    await rest.get(
        "/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, reply=PremiumIndex
    )  # everything else goes on


async def test_429_pauses_and_418_bans_every_later_call(sim, session) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        rest.banned_until_ms = 0

    rest = BinanceRest(session, sim.rest_url, weight_safety=WEIGHT_SAFETY, sleep=sleep)
    await fault(session, sim, {"rest_429": {"count": 1, "retry_after": 3},
                               "rest_418": {"count": 1, "retry_after": 7}})  # fmt: skip
    with pytest.raises(RateLimited) as limited:
        await rest.get("/fapi/v1/time", reply=ServerTime)
    assert limited.value.retry_after_s == 3
    assert rest.paused_until_ms >= int(time.time() * 1000) + 2_000
    rest.paused_until_ms = 0  # (skip the wait in this test)
    with pytest.raises(IpBanned) as banned:
        await rest.get("/fapi/v1/time", reply=ServerTime)
    assert banned.value.retry_after_s == 7
    assert slept == []
    await rest.get("/fapi/v1/time", reply=ServerTime)  # waits out the ban before sending
    assert 5 < slept[0] <= 7


async def test_signed_calls_and_their_errors(sim, session) -> None:
    rest = BinanceRest(
        session,
        sim.rest_url,
        api_key=DEFAULT_API_KEY,
        api_secret=DEFAULT_API_SECRET,
        weight_safety=WEIGHT_SAFETY,
    )
    await rest.sync_time()
    balances = await rest.get("/fapi/v3/balance", signed=True, weight=5, reply=list[AccountBalance])
    assert any(b.asset == "USDT" for b in balances)

    wrong = BinanceRest(
        session,
        sim.rest_url,
        api_key=DEFAULT_API_KEY,
        api_secret="x" * 64,
        weight_safety=WEIGHT_SAFETY,
    )
    with pytest.raises(BadSignature) as bad:
        await wrong.get("/fapi/v3/balance", signed=True, reply=list[AccountBalance])
    assert bad.value.code == -1022

    clock = ManualClock(start_ms=int(time.time() * 1000) - 60_000)  # a minute slow
    stale = BinanceRest(session, sim.rest_url, api_key=DEFAULT_API_KEY,
                        api_secret=DEFAULT_API_SECRET, clock=clock,
                        weight_safety=WEIGHT_SAFETY)  # fmt: skip
    with pytest.raises(TimestampOutsideWindow):
        await stale.get("/fapi/v3/balance", signed=True, reply=list[AccountBalance])

    with pytest.raises(FatalExchangeError) as invalid:
        await rest.get("/fapi/v1/premiumIndex", {"symbol": "NOPEUSDT"}, reply=PremiumIndex)
    assert invalid.value.code == -1121


async def test_a_5xx_on_an_order_is_an_unknown_outcome(sim, session) -> None:
    rest = BinanceRest(
        session,
        sim.rest_url,
        api_key=DEFAULT_API_KEY,
        api_secret=DEFAULT_API_SECRET,
        weight_safety=WEIGHT_SAFETY,
    )
    await rest.sync_time()
    await fault(session, sim, {"order_5xx": {"count": 1, "status": 503, "execute": True}})
    with pytest.raises(OrderOutcomeUnknown) as unknown:
        await rest.post(
            "/fapi/v1/order",
            {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.002",
             "newClientOrderId": "t-1"},
            reply=OrderReply,
            signed=True,
            order_client_id="t-1",
        )  # fmt: skip
    assert unknown.value.client_order_id == "t-1"
    order = await rest.get("/fapi/v1/order", {"symbol": "BTCUSDT", "origClientOrderId": "t-1"},
                           signed=True, reply=OrderReply)  # fmt: skip
    assert order.status == "FILLED"


async def test_a_403_from_the_firewall_pauses_every_call_and_says_so(sim, session) -> None:
    board = HealthBoard()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        rest.blocked_until_ms = 0

    rest = BinanceRest(
        session,
        sim.rest_url,
        forbidden_backoff_s=90,
        health=board,
        weight_safety=WEIGHT_SAFETY,
        sleep=sleep,
    )
    await fault(session, sim, {"http_5xx": {"count": 1, "status": 403, "path": "/fapi/v1/"}})
    with pytest.raises(WafBlocked) as blocked:
        await rest.get("/fapi/v1/openInterest", {"symbol": "BTCUSDT"}, reply=OpenInterest)
    assert isinstance(blocked.value, RetryableError)
    assert blocked.value.retry_after_s == 90
    # The firewall's HTML page is summarised, not dumped.
    assert str(blocked.value) == (
        "GET /fapi/v1/openInterest: HTTP 403: HTML page 'ERROR: The request could not be satisfied'"
    )
    assert rest.blocked_until_ms >= int(time.time() * 1000) + 85_000
    entry = board.get("rest")
    assert entry is not None
    assert "firewall (HTTP 403)" in entry.reason
    assert slept == []
    await rest.get("/fapi/v1/time", reply=ServerTime)  # waits out the block first, then succeeds
    assert 85 < slept[0] <= 90
    assert board.get("rest") is None  # an answer that succeeds takes the report back


@pytest.mark.parametrize("status", [404, 451])
async def test_an_unexpected_status_is_a_clear_fatal_error(sim, session, status: int) -> None:
    rest = BinanceRest(session, sim.rest_url, weight_safety=WEIGHT_SAFETY)
    await fault(session, sim, {"http_5xx": {"count": 1, "status": status,
                                            "path": "/fapi/v1/premiumIndex"}})  # fmt: skip
    with pytest.raises(UnexpectedStatus) as unexpected:
        await rest.get("/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, reply=PremiumIndex)
    assert isinstance(unexpected.value, FatalExchangeError)
    message = str(unexpected.value)
    assert message.startswith(f"GET /fapi/v1/premiumIndex: HTTP {status}: unexpected answer (")
    assert "\n" not in message


async def test_an_unknown_symbol_names_the_symbol(sim, session) -> None:
    rest = BinanceRest(session, sim.rest_url, weight_safety=WEIGHT_SAFETY)
    with pytest.raises(InvalidSymbol) as invalid:
        await rest.get("/fapi/v1/openInterest", {"symbol": "NOPEUSDT"}, reply=OpenInterest)
    assert (invalid.value.symbol, invalid.value.code) == ("NOPEUSDT", -1121)
    assert str(invalid.value) == (
        "GET /fapi/v1/openInterest: HTTP 400 code -1121: Invalid symbol. (symbol NOPEUSDT)"
    )


async def test_an_unreachable_exchange_is_reported_until_it_answers(sim, session) -> None:
    board = HealthBoard()
    closed = f"http://127.0.0.1:{free_port()}"
    rest = BinanceRest(session, closed, health=board, weight_safety=WEIGHT_SAFETY)
    with pytest.raises(RetryableExchangeError):
        await rest.get("/fapi/v1/time", reply=ServerTime)
    entry = board.get("rest")
    assert entry is not None
    assert entry.reason.startswith("exchange REST unreachable: GET /fapi/v1/time: ClientConnector")
    rest.base_url = sim.rest_url  # the exchange is back
    await rest.get("/fapi/v1/time", reply=ServerTime)
    assert not board
