"""The user data stream client against the simulated exchange over real sockets: typed
fills, listen-key expiry and loss (a Resync and a new key), a dropped connection, a
liquidation recognised as the exchange's, and no secret in any log line."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from decimal import Decimal
from typing import Any

import aiohttp
import orjson
import pytest
from structlog.testing import capture_logs

from arbengine.exchange.exchange_errors import FatalExchangeError
from arbengine.exchange.replies import AlgoOrderReply, OrderReply, PremiumIndex
from arbengine.exchange.rest import BinanceRest
from arbengine.exchange.streams import StreamPolicy
from arbengine.exchange.user_events import (
    AccountUpdate,
    AlgoUpdate,
    OrderTradeUpdate,
    Resync,
    UserEvent,
)
from arbengine.exchange.user_stream import UserStream
from arbengine.runtime.backoff import RetryPolicy
from arbengine.runtime.clock import ManualClock
from arbengine.settings import ExchangeSettings
from arbengine.sim.request_auth import DEFAULT_API_KEY, DEFAULT_API_SECRET
from arbengine.sim.server import SimConfig, SimServer

FAST = StreamPolicy(
    silence_s=None, heartbeat_s=30.0, reconnect=RetryPolicy(initial_s=0.05, max_s=0.2)
)
WAIT_S = 10.0


class Inbox:
    """The consumer: keeps every event and lets a test await a condition on them."""

    def __init__(self) -> None:
        self.events: list[UserEvent] = []
        self._changed = asyncio.Condition()

    async def __call__(self, event: UserEvent) -> None:
        async with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    async def until(self, done: Callable[[list[UserEvent]], bool]) -> list[UserEvent]:
        async with asyncio.timeout(WAIT_S), self._changed:
            await self._changed.wait_for(lambda: done(self.events))
        return list(self.events)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]

    def resyncs(self) -> list[str]:
        return [e.reason for e in self.of(Resync)]


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    config = SimConfig(port=0, manual=True, symbols=("BTCUSDT", "ETHUSDT"))
    async with SimServer(config) as server:
        await server.advance_by(10_000)
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
def rest(sim: SimServer, session: aiohttp.ClientSession) -> BinanceRest:
    return BinanceRest(
        session,
        sim.rest_url,
        api_key=DEFAULT_API_KEY,
        api_secret=DEFAULT_API_SECRET,
        weight_safety=ExchangeSettings().weight_safety,
    )


@contextlib.asynccontextmanager
async def running(stream: UserStream) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(stream.run())
    try:
        yield task
    finally:
        stream.request_stop()
        async with asyncio.timeout(WAIT_S):
            await task


async def control(session: aiohttp.ClientSession, sim: SimServer, path: str, body: Any) -> Any:
    async with session.post(f"{sim.control_url}/{path}", json=body) as response:
        data = await response.json()
        assert response.status == 200, data
        return data


async def open_orphan(session: aiohttp.ClientSession, sim: SimServer, symbol: str) -> str:
    """A position opened behind our back: its order's client id."""
    reply = await control(
        session,
        sim,
        "account",
        {"orphan": {"symbol": symbol, "side": "BUY", "quantity": "0.010"}},
    )
    client_id: str = reply["orders"][0]["clientOrderId"]
    return client_id


async def delete_listen_key(session: aiohttp.ClientSession, sim: SimServer) -> None:
    """The key ends behind the stream's back (another client of the account deletes it)."""
    async with session.delete(
        f"{sim.rest_url}/fapi/v1/listenKey", headers={"X-MBX-APIKEY": DEFAULT_API_KEY}
    ) as response:
        assert response.status == 200


def filled(client_id: str) -> Callable[[list[UserEvent]], bool]:
    def done(events: list[UserEvent]) -> bool:
        return any(
            isinstance(e, OrderTradeUpdate)
            and e.order.client_id == client_id
            and e.order.status == "FILLED"
            for e in events
        )

    return done


def stream_for(
    rest: BinanceRest, sim: SimServer, session: aiohttp.ClientSession, inbox: Inbox, **kw: Any
) -> UserStream:
    return UserStream(rest, sim.private_ws_url, inbox, session=session, policy=FAST, **kw)


async def test_an_orders_fill_arrives_as_typed_events_after_a_resync(
    sim: SimServer, rest: BinanceRest, session: aiohttp.ClientSession
) -> None:
    inbox = Inbox()
    stream = stream_for(rest, sim, session, inbox)
    async with running(stream):
        await inbox.until(lambda events: len(events) == 1)
        assert inbox.events == [Resync(reason="connected", connection=1)]
        reply = await rest.post(
            "/fapi/v1/order",
            {
                "symbol": "BTCUSDT",
                "side": "BUY",
                "type": "MARKET",
                "quantity": "0.010",
                "newClientOrderId": "entry-1",
                "newOrderRespType": "RESULT",
            },
            reply=OrderReply,
            signed=True,
            order_client_id="entry-1",
        )
        await inbox.until(filled("entry-1"))
        await inbox.until(lambda events: bool(inbox.of(AccountUpdate)))
    fill = next(e for e in inbox.of(OrderTradeUpdate) if e.order.status == "FILLED").order
    assert (fill.symbol, fill.side, fill.execution_type) == ("BTCUSDT", "BUY", "TRADE")
    assert fill.order_id == reply.orderId
    assert fill.filled_qty == fill.last_filled_qty == Decimal("0.010")
    assert fill.avg_price == Decimal(str(reply.avgPrice)) > 0
    assert fill.commission > 0
    assert fill.commission_asset == "USDT"
    assert not fill.exchange_close
    account = inbox.of(AccountUpdate)[0].account
    assert account.reason == "ORDER"
    assert [(p.symbol, p.amount) for p in account.positions] == [("BTCUSDT", Decimal("0.010"))]
    assert account.balances[0].asset == "USDT"
    assert inbox.resyncs() == ["connected"]


async def test_a_refused_api_key_stops_the_stream_with_the_exchanges_error(
    sim: SimServer, session: aiohttp.ClientSession
) -> None:
    rest = BinanceRest(
        session,
        sim.rest_url,
        api_key="someone-else",
        weight_safety=ExchangeSettings().weight_safety,
    )
    stream = stream_for(rest, sim, session, Inbox())
    with pytest.raises(FatalExchangeError, match="POST /fapi/v1/listenKey: HTTP 401 code -2015"):
        async with asyncio.timeout(WAIT_S):
            await stream.run()


async def test_a_failing_consumer_stops_the_stream_with_its_error(
    sim: SimServer, rest: BinanceRest, session: aiohttp.ClientSession
) -> None:
    async def broken(event: UserEvent) -> None:
        raise RuntimeError(f"cannot take {type(event).__name__}")

    stream = UserStream(rest, sim.private_ws_url, broken, session=session, policy=FAST)
    with pytest.raises(RuntimeError, match="cannot take Resync"):
        async with asyncio.timeout(WAIT_S):
            await stream.run()


async def test_an_expired_listen_key_gives_a_resync_and_a_new_key_and_events_flow_again(
    sim: SimServer, rest: BinanceRest, session: aiohttp.ClientSession
) -> None:
    inbox = Inbox()
    stream = stream_for(rest, sim, session, inbox)
    async with running(stream):
        await inbox.until(lambda events: len(events) == 1)
        first_key = sim.listen_keys.key
        await control(session, sim, "faults", {"expire_listen_key": True})
        await inbox.until(lambda events: len(inbox.of(Resync)) == 2)
        assert inbox.resyncs() == ["connected", "listen_key_expired"]
        assert stream.keys_made == 2
        assert sim.listen_keys.key not in (None, first_key)
        client_id = await open_orphan(session, sim, "BTCUSDT")
        await inbox.until(filled(client_id))


async def test_a_key_gone_at_keep_alive_is_replaced(
    sim: SimServer, rest: BinanceRest, session: aiohttp.ClientSession
) -> None:
    """-1125 to the 50-minute keep-alive: a new key, a Resync, and events on the new key."""
    clock = ManualClock(start_ms=sim.server_time_ms())
    inbox = Inbox()
    stream = stream_for(rest, sim, session, inbox, clock=clock)
    async with running(stream):
        await inbox.until(lambda events: len(events) == 1)
        first_key = sim.listen_keys.key
        await clock.until_sleeping(2)  # the keep-alive and the connection's watchdog
        clock.advance(50 * 60 * 1000)  # the key is alive: the keep-alive keeps it
        await clock.until_sleeping(2)
        assert sim.listen_keys.key == first_key
        assert stream.keys_made == 1
        await delete_listen_key(session, sim)
        clock.advance(50 * 60 * 1000)
        await inbox.until(lambda events: len(inbox.of(Resync)) == 2)
        assert inbox.resyncs() == ["connected", "listen_key_gone"]
        assert sim.listen_keys.key not in (None, first_key)
        client_id = await open_orphan(session, sim, "BTCUSDT")
        await inbox.until(filled(client_id))


async def test_a_dropped_connection_reconnects_with_a_resync(
    sim: SimServer, rest: BinanceRest, session: aiohttp.ClientSession
) -> None:
    inbox = Inbox()
    stream = stream_for(rest, sim, session, inbox)
    async with running(stream):
        await inbox.until(lambda events: len(events) == 1)
        await control(session, sim, "faults", {"drop_ws": {"which": "private", "mode": "abort"}})
        await inbox.until(lambda events: len(inbox.of(Resync)) == 2)
        assert inbox.resyncs() == ["connected", "reconnected"]
        assert stream.stream.connections == 2
        assert stream.keys_made == 1  # the key outlives its connection
        client_id = await open_orphan(session, sim, "BTCUSDT")
        await inbox.until(filled(client_id))


async def test_a_key_gone_while_disconnected_is_replaced_at_the_next_connection(
    sim: SimServer, rest: BinanceRest, session: aiohttp.ClientSession
) -> None:
    """The key ends behind the stream's back, then the connection drops: the handshake with
    the old key is refused, a keep-alive tells why, and the next connection has a new key."""
    inbox = Inbox()
    stream = stream_for(rest, sim, session, inbox)
    async with running(stream):
        await inbox.until(lambda events: len(events) == 1)
        first_key = sim.listen_keys.key
        await delete_listen_key(session, sim)
        await control(session, sim, "faults", {"drop_ws": {"which": "private"}})
        await inbox.until(lambda events: len(inbox.of(Resync)) == 2)
        assert inbox.resyncs() == ["connected", "listen_key_gone"]
        assert sim.listen_keys.key not in (None, first_key)
        client_id = await open_orphan(session, sim, "BTCUSDT")
        await inbox.until(filled(client_id))


async def test_the_connection_is_handed_over_before_the_exchange_ends_it(
    sim: SimServer, rest: BinanceRest, session: aiohttp.ClientSession
) -> None:
    """A user stream is quiet for hours: at the age limit the watchdog opens the next
    connection and closes the first, on the same key; events flow on the new one."""
    clock = ManualClock(start_ms=sim.server_time_ms())
    inbox = Inbox()
    policy = replace(FAST, max_age_s=100.0)
    stream = UserStream(
        rest, sim.private_ws_url, inbox, session=session, policy=policy, clock=clock
    )
    async with running(stream):
        await inbox.until(lambda events: len(events) == 1)
        await clock.until_sleeping(2)  # the keep-alive and the connection's watchdog
        clock.advance(101_000)
        await inbox.until(lambda events: len(inbox.of(Resync)) == 2)
        assert stream.stream.connections == 2
        assert stream.keys_made == 1
        client_id = await open_orphan(session, sim, "BTCUSDT")
        await inbox.until(filled(client_id))
    fills = [e for e in inbox.of(OrderTradeUpdate) if e.order.client_id == client_id]
    assert len(fills) == len({orjson.dumps(e.order.status) for e in fills})


async def test_a_liquidation_is_recognised_as_the_exchanges_close(
    sim: SimServer, rest: BinanceRest, session: aiohttp.ClientSession
) -> None:
    inbox = Inbox()
    stream = stream_for(rest, sim, session, inbox)
    async with running(stream):
        await inbox.until(lambda events: len(events) == 1)
        opened = await open_orphan(session, sim, "BTCUSDT")
        await inbox.until(filled(opened))
        reply = await control(session, sim, "account", {"liquidate": "BTCUSDT"})
        liquidation = reply["orders"][0]["clientOrderId"]
        await inbox.until(filled(liquidation))
        await inbox.until(lambda events: len(inbox.of(AccountUpdate)) == 2)
    closes = [e.order for e in inbox.of(OrderTradeUpdate) if e.order.exchange_close]
    assert {o.client_id for o in closes} == {liquidation}
    assert closes[-1].execution_type == "CALCULATED"
    ours = [e.order for e in inbox.of(OrderTradeUpdate) if e.order.client_id == opened]
    assert ours
    assert not any(o.exchange_close for o in ours)
    flat = inbox.of(AccountUpdate)[-1].account.positions
    assert [(p.symbol, p.amount) for p in flat] == [("BTCUSDT", Decimal(0))]


async def test_an_algo_order_arrives_typed(
    sim: SimServer, rest: BinanceRest, session: aiohttp.ClientSession
) -> None:
    inbox = Inbox()
    stream = stream_for(rest, sim, session, inbox)
    async with running(stream):
        await inbox.until(lambda events: len(events) == 1)
        opened = await open_orphan(session, sim, "BTCUSDT")
        await inbox.until(filled(opened))
        mark = await rest.get("/fapi/v1/premiumIndex", {"symbol": "BTCUSDT"}, reply=PremiumIndex)
        stop = Decimal(str(round(mark.markPrice * 0.9, 1)))
        await rest.post(
            "/fapi/v1/algoOrder",
            {
                "algoType": "CONDITIONAL",
                "symbol": "BTCUSDT",
                "side": "SELL",
                "type": "STOP_MARKET",
                "triggerPrice": str(stop),
                "closePosition": True,
                "workingType": "MARK_PRICE",
                "clientAlgoId": "sl-1",
            },
            reply=AlgoOrderReply,
            signed=True,
            order_client_id="sl-1",
        )
        await inbox.until(lambda events: bool(inbox.of(AlgoUpdate)))
    algo = inbox.of(AlgoUpdate)[0].order
    assert (algo.client_algo_id, algo.symbol, algo.side) == ("sl-1", "BTCUSDT", "SELL")
    assert (algo.order_type, algo.status, algo.close_position) == ("STOP_MARKET", "NEW", True)
    assert algo.trigger_price == stop


async def test_neither_the_secret_nor_the_listen_key_is_ever_logged(
    sim: SimServer, rest: BinanceRest, session: aiohttp.ClientSession
) -> None:
    """Through a connection, an expiry, a refused reconnect (a 400 naming the key's URL)
    and a drop, no client log line holds the API secret or a listen key."""
    inbox = Inbox()
    stream = stream_for(rest, sim, session, inbox)
    with capture_logs() as logs:
        async with running(stream):
            await inbox.until(lambda events: len(events) == 1)
            keys = {sim.listen_keys.key}
            # The key ends behind the stream's back, then the connection drops: the
            # reconnect with the old key is refused before the stream learns it is gone.
            await delete_listen_key(session, sim)
            await control(session, sim, "faults", {"drop_ws": {"which": "private"}})
            await inbox.until(lambda events: len(inbox.of(Resync)) == 2)
            keys.add(sim.listen_keys.key)
            await control(session, sim, "faults", {"expire_listen_key": True})
            await inbox.until(lambda events: len(inbox.of(Resync)) == 3)
            keys.add(sim.listen_keys.key)
    ours = [e for e in logs if e.get("component") in {"user_stream", "stream", "rest"}]
    assert any(e["event"] == "stream.reconnecting" for e in ours)  # the refused handshake
    assert len(keys) == 3
    text = "\n".join(orjson.dumps(e, default=str).decode() for e in ours)
    assert DEFAULT_API_SECRET not in text
    for key in keys:
        assert key is not None
        assert key not in text
