"""The combined-stream client against a websocket server on loopback, time on a fake clock:
reconnect backoff, the silence watchdog and the hand-over before the age limit."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest
import structlog.testing
from aiohttp import web

from arbengine.exchange.streams import CombinedStream, StreamPolicy
from arbengine.runtime.backoff import RetryPolicy
from arbengine.runtime.clock import ManualClock

RETRY = RetryPolicy(initial_s=1.0, max_s=8.0, multiplier=2.0, jitter=0.5)


@dataclass
class Exchange:
    """A websocket server that sends every published message to every client connected,
    as an exchange's stream does; it can refuse new connections."""

    port: int = 0
    clients: set[web.WebSocketResponse] = field(default_factory=set)
    accepted: int = 0
    refuse: bool = False
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.refuse:
            return web.Response(status=503, text="busy")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.clients.add(ws)
        self.accepted += 1
        self._notify()
        try:
            async for _ in ws:
                pass
        finally:
            self.clients.discard(ws)
            self._notify()
        return ws

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, accepted: int, clients: int) -> None:
        """Return once ``accepted`` connections were made and ``clients`` are open."""
        async with asyncio.timeout(10):
            while (self.accepted, len(self.clients)) != (accepted, clients):
                await self._changed.wait()

    async def publish(self, n: int) -> None:
        payload = orjson.dumps({"stream": "btcusdt@aggTrade", "data": {"a": n}}).decode()
        for ws in list(self.clients):
            if not ws.closed:
                await ws.send_str(payload)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


async def serve(exchange: Exchange, port: int = 0) -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/stream", exchange.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    exchange.port = runner.addresses[0][1]
    return runner


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def free_port() -> int:
    """A loopback port nobody listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Received:
    """The consumer: ids in the order handled, and how deep the stack was for each."""

    ids: list[int] = field(default_factory=list)
    depths: list[int] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_frame(self, frame: bytes) -> None:
        self.ids.append(orjson.loads(frame)["data"]["a"])
        depth, f = 0, sys._getframe()
        while f is not None:
            depth, f = depth + 1, f.f_back
        self.depths.append(depth)
        self._changed.set()
        self._changed = asyncio.Event()

    async def until(self, n: int) -> None:
        """Return once id ``n`` has been handled."""
        async with asyncio.timeout(10):
            while n not in self.ids:
                await self._changed.wait()


@contextlib.asynccontextmanager
async def started(client: CombinedStream) -> AsyncIterator[None]:
    """Run ``client`` for the block; at its end a stop request must end it promptly."""
    task = asyncio.create_task(client.run())
    try:
        yield
    except BaseException:
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        raise
    client.request_stop()
    await asyncio.wait_for(task, 10)


def stream(
    url: str,
    received: Received,
    session: aiohttp.ClientSession,
    clock: ManualClock,
    policy: StreamPolicy,
) -> CombinedStream:
    return CombinedStream(
        "market-0",
        url,
        ["btcusdt@aggTrade"],
        received.on_frame,
        session=session,
        policy=policy,
        clock=clock,
        rng=random.Random(7),
    )


async def test_refused_connections_are_retried_after_the_policys_delays(session) -> None:
    port = free_port()
    clock = ManualClock()
    received = Received()
    client = stream(
        f"ws://127.0.0.1:{port}", received, session, clock, StreamPolicy(reconnect=RETRY)
    )
    exchange = Exchange()
    runner: web.AppRunner | None = None
    try:
        async with started(client):
            expected = random.Random(7)
            for attempt in range(1, 6):
                await asyncio.wait_for(clock.until_sleeping(), 10)
                assert clock.sleeps[-1] == RETRY.delay(attempt, expected)
                if attempt < 5:
                    clock.advance(int(clock.sleeps[-1] * 1000) + 1)
            assert clock.sleeps[-1] > RETRY.max_s / 2  # capped and jittered, never 16 s
            assert len(clock.sleeps) == 5

            # The exchange comes back: the next try connects.
            runner = await serve(exchange, port)
            clock.advance(int(clock.sleeps[-1] * 1000) + 1)
            await exchange.until(accepted=1, clients=1)
            await exchange.publish(1)
            await received.until(1)
            assert client.connections == 1
    finally:
        if runner is not None:
            await runner.cleanup()


async def test_a_silent_connection_is_closed_and_reconnected(session) -> None:
    exchange = Exchange()
    runner = await serve(exchange)
    clock = ManualClock()
    received = Received()
    policy = StreamPolicy(silence_s=30.0, reconnect=RETRY)
    client = stream(exchange.url, received, session, clock, policy)
    try:
        async with started(client):
            await exchange.until(accepted=1, clients=1)
            await exchange.publish(1)
            await received.until(1)
            # 30 s without a message: not yet silent (the watchdog looks every 7.5 s).
            for _ in range(4):
                await asyncio.wait_for(clock.until_sleeping(), 10)
                clock.advance(7_500)
            assert (exchange.accepted, len(exchange.clients)) == (1, 1)
            # Past 30 s: closed as silent, then reconnected after the policy's first delay.
            with structlog.testing.capture_logs() as logs:
                await asyncio.wait_for(clock.until_sleeping(), 10)
                clock.advance(7_500)
                await exchange.until(accepted=1, clients=0)
                while not any(e["event"] == "stream.reconnecting" for e in logs):
                    await asyncio.wait_for(clock.until_sleeping(), 10)
            assert [e["reason"] for e in logs if e["event"] == "stream.reconnecting"] == ["silent"]
            assert clock.sleeps[-1] == RETRY.delay(1, random.Random(7))
            clock.advance(int(clock.sleeps[-1] * 1000) + 1)
            await exchange.until(accepted=2, clients=1)
            await exchange.publish(2)
            await received.until(2)
            assert client.connections == 2
            assert received.ids == [1, 2]
    finally:
        await runner.cleanup()


async def rotate(exchange: Exchange, clock: ManualClock, n: int, policy: StreamPolicy) -> int:
    """Age the connection past its limit and see it handed over; return the next id."""
    before = exchange.accepted
    clock.advance(int(policy.max_age_s * 1000))
    await exchange.publish(n)  # read on the old connection, then the hand-over starts
    await exchange.until(accepted=before + 1, clients=2)
    await exchange.publish(n + 1)  # the new connection's first, and the old one's last
    await exchange.until(accepted=exchange.accepted, clients=1)
    await exchange.publish(n + 2)  # on the new connection alone
    return n + 3


async def test_hand_overs_lose_nothing_and_do_not_stack_up(session) -> None:
    exchange = Exchange()
    runner = await serve(exchange)
    clock = ManualClock()
    received = Received()
    # Silence is far off: the test moves the clock by whole connection lifetimes.
    policy = StreamPolicy(max_age_s=60.0, silence_s=100_000.0, reconnect=RETRY)
    client = stream(exchange.url, received, session, clock, policy)
    try:
        async with started(client):
            await exchange.until(accepted=1, clients=1)
            await exchange.publish(1)
            await received.until(1)
            next_id = 2
            depths: list[int] = []
            for _ in range(25):
                next_id = await rotate(exchange, clock, next_id, policy)
                await received.until(next_id - 1)
                depths.append(received.depths[-1])
            assert client.connections == 26
            # No gap: every id arrived; the overlap repeats only the one message both
            # connections carried (the consumer drops it by id).
            assert sorted(set(received.ids)) == list(range(1, next_id))
            assert len(received.ids) - len(set(received.ids)) <= 25
            assert all(b >= a for a, b in zip(received.ids, received.ids[1:], strict=False))
            # Each connection is served from the same frame, not from inside the previous one.
            assert set(depths) == {depths[0]}, depths
    finally:
        await runner.cleanup()


async def test_a_failed_hand_over_is_logged_and_tried_again_while_the_old_connection_serves(
    session,
) -> None:
    exchange = Exchange()
    runner = await serve(exchange)
    clock = ManualClock()
    received = Received()
    policy = StreamPolicy(max_age_s=60.0, silence_s=100_000.0, reconnect=RETRY)
    client = stream(exchange.url, received, session, clock, policy)
    try:
        async with started(client):
            await exchange.until(accepted=1, clients=1)
            await exchange.publish(1)
            await received.until(1)
            exchange.refuse = True
            clock.advance(60_000)
            with structlog.testing.capture_logs() as logs:
                await exchange.publish(2)  # due for a hand-over: the exchange refuses it
                await received.until(2)
                await exchange.publish(3)  # the old connection still serves
                await received.until(3)
            failed = [e for e in logs if e["event"] == "stream.hand_over_failed"]
            assert len(failed) == 1
            assert failed[0]["error"].startswith("WSServerHandshakeError")
            assert failed[0]["log_level"] == "warning"
            retry_in = RETRY.delay(1, random.Random(7))
            assert failed[0]["retry_in_s"] == round(retry_in, 3)
            assert not any(e["event"] == "stream.reconnecting" for e in logs)
            assert (exchange.accepted, len(exchange.clients), client.connections) == (1, 1, 1)

            # Before the policy's delay has passed nothing is tried; after it, the hand-over is.
            exchange.refuse = False
            clock.advance(int(retry_in * 1000) - 50)
            await exchange.publish(4)
            await received.until(4)
            assert exchange.accepted == 1
            clock.advance(100)
            await exchange.publish(5)
            await exchange.until(accepted=2, clients=2)
            await exchange.publish(6)
            await exchange.until(accepted=2, clients=1)
            await received.until(6)
            assert client.connections == 2
            assert sorted(set(received.ids)) == [1, 2, 3, 4, 5, 6]
    finally:
        await runner.cleanup()
