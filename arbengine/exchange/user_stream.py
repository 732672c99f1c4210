"""The account's user data stream: fills, algo orders, balances and positions as they happen.

- A listen key is made over REST (``POST /fapi/v1/listenKey``, the API key only:
  the secret is never used here) before a connection needs one, and kept alive
  every ``keepalive_s`` (``PUT``; Binance lets a key lapse after 60 minutes).
- A key that is gone (``listenKeyExpired`` on the stream, ``-1125`` to a
  keep-alive) is replaced at once: a new key, a new connection.
- Connections, reconnects with backoff, the health board and the hand-over before
  24 h are :class:`~arbengine.exchange.streams.CombinedStream`'s; a user stream is
  quiet for hours, so our own pings (``heartbeat_s``) watch it instead of silence.
- After every connection the consumer gets a :class:`Resync` before any event of
  it: what happened while no connection was open is known only over REST. Events
  of a connection follow its ``Resync`` in the exchange's order.
- A frame seen twice (the overlap of a hand-over) is delivered once.

Delivery is one async callback, awaited per event in order (``on_event``): the live
executor has one entry point for the exchange's news, and a callback lets the stream
be wired to it in ``app.py`` without a loop of the consumer's own. Frames are decoded
as they arrive and queued, so a slow consumer never holds up the socket (user events
are few: one account's orders).
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Literal

import aiohttp
from prometheus_client import Counter

from arbengine.exchange.exchange_errors import ExchangeError, FatalExchangeError
from arbengine.exchange.replies import ListenKeyReply
from arbengine.exchange.rest import BinanceRest
from arbengine.exchange.streams import CombinedStream, StreamPolicy
from arbengine.exchange.user_events import ListenKeyExpired, Resync, UserEvent, decode_user_event
from arbengine.logs import get_logger
from arbengine.runtime.backoff import EXCHANGE_REST_RETRY, EXCHANGE_STREAM_RETRY
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.runtime.health import HealthBoard

LISTEN_KEY_PATH = "/fapi/v1/listenKey"
KEEPALIVE_S = 50 * 60.0
"""Binance keeps a key 60 minutes after its last keep-alive."""
KEY_GONE = -1125
USER_STREAM_POLICY = StreamPolicy(silence_s=None, heartbeat_s=30.0, reconnect=EXCHANGE_STREAM_RETRY)
_SEEN_FRAMES = 256

EVENTS = Counter("arb_user_stream_events", "User data stream events delivered, by kind", ["kind"])
NEW_KEYS = Counter("arb_user_stream_listen_keys", "Listen keys made, by why", ["reason"])

OnUserEvent = Callable[[UserEvent], Awaitable[None]]
ResyncReason = Literal["connected", "reconnected", "listen_key_expired", "listen_key_gone"]


class UserStream:
    def __init__(
        self,
        rest: BinanceRest,
        private_ws_url: str,
        on_event: OnUserEvent,
        *,
        session: aiohttp.ClientSession,
        policy: StreamPolicy = USER_STREAM_POLICY,
        keepalive_s: float = KEEPALIVE_S,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        health: HealthBoard | None = None,
    ) -> None:
        self._rest = rest
        self._base = private_ws_url.rstrip("/")
        self._on_event = on_event
        self._keepalive_s = keepalive_s
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._log = get_logger("user_stream")
        self._key: str | None = None
        self._connected_with_key = True
        """The last address asked for led to a connection (else the key may be what fails)."""
        self._pending: ResyncReason | None = None
        """Why the next connection is made, when it is not an ordinary reconnect."""
        self._queue: asyncio.Queue[UserEvent] = asyncio.Queue()
        self._seen: deque[bytes] = deque(maxlen=_SEEN_FRAMES)
        self._stop = asyncio.Event()
        self._failure: Exception | None = None
        self.keys_made = 0
        self.stream = CombinedStream(
            "user",
            self._base,
            [],
            self._on_frame,
            session=session,
            on_connected=self._on_connected,
            policy=policy,
            clock=self._clock,
            rng=self._rng,
            health=health,
            url_for_next=self._next_url,
        )

    @property
    def connected(self) -> bool:
        """A connection with a listen key is open now (what the risk guard watches)."""
        return self.stream.connected

    def request_stop(self) -> None:
        self._stop.set()
        self.stream.request_stop()

    async def run(self) -> None:
        """Deliver events until ``request_stop``. A fatal error (the API key refused, the
        consumer's own failure) stops the stream and is raised as it is."""
        helpers = [
            asyncio.create_task(self._guarded(self._deliver()), name="user_stream:deliver"),
            asyncio.create_task(self._guarded(self._keep_alive()), name="user_stream:keepalive"),
        ]
        try:
            await self.stream.run()
        finally:
            self._stop.set()
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
        if self._failure is not None:
            raise self._failure

    async def _guarded(self, work: Awaitable[None]) -> None:
        try:
            await work
        except Exception as exc:
            self._failure = exc
            self.request_stop()

    # -- the listen key --------------------------------------------------------

    async def _next_url(self) -> str:
        if self._key is not None and not self._connected_with_key:
            # The last try with this key did not connect: a key gone while no connection
            # was open is refused at the handshake, and only a keep-alive says why.
            await self._refresh_key()
        self._connected_with_key = False
        if self._key is None:
            reply = await self._rest.post(
                LISTEN_KEY_PATH, reply=ListenKeyReply, weight=1, api_key=True
            )
            if not reply.listenKey:
                raise FatalExchangeError(f"POST {LISTEN_KEY_PATH}: the answer has no listenKey")
            self._key = reply.listenKey
            self.keys_made += 1
            reason = self._pending or "connected"
            NEW_KEYS.labels(reason).inc()
            self._log.info("user_stream.listen_key_created", reason=reason, n=self.keys_made)
        return f"{self._base}/ws?listenKey={self._key}"

    async def _keep_alive(self) -> None:
        attempt = 0
        wait = self._keepalive_s
        while await self._clock.sleep(wait, self._stop):
            wait = self._keepalive_s
            if self._key is None:
                continue
            try:
                if not await self._refresh_key():
                    self.stream.reconnect_now()
            except ExchangeError as exc:  # retryable: the key lives on for a while yet
                attempt += 1
                wait = EXCHANGE_REST_RETRY.delay(attempt, self._rng)
                self._log.warning(
                    "user_stream.keepalive_failed", error=str(exc)[:200], retry_in_s=round(wait, 3)
                )
                continue
            attempt = 0
            self._log.debug("user_stream.keepalive")

    async def _refresh_key(self) -> bool:
        """Keep the key alive; False when it is gone (-1125): the next connection makes one."""
        try:
            await self._rest.put(LISTEN_KEY_PATH, reply=ListenKeyReply, weight=1, api_key=True)
        except FatalExchangeError as exc:
            if exc.code != KEY_GONE:
                raise
            self._log.warning("user_stream.listen_key_gone", error=str(exc)[:200])
            self._key = None
            self._pending = "listen_key_gone"
            return False
        return True

    def _replace_key(self, reason: ResyncReason) -> None:
        self._key = None
        self._pending = reason
        self.stream.reconnect_now()

    # -- frames and delivery ---------------------------------------------------

    async def _on_connected(self, connection: int) -> None:
        self._connected_with_key = True
        reason = self._pending or ("connected" if connection == 1 else "reconnected")
        self._pending = None
        self._log.info("user_stream.resync", reason=reason, connection=connection)
        self._queue.put_nowait(Resync(reason=reason, connection=connection))

    def _on_frame(self, frame: bytes) -> None:
        if frame in self._seen:
            return
        self._seen.append(frame)
        event = decode_user_event(frame)
        if event is None:
            return
        if isinstance(event, ListenKeyExpired):
            self._log.warning("user_stream.listen_key_expired")
            self._replace_key("listen_key_expired")
            return
        self._queue.put_nowait(event)

    async def _deliver(self) -> None:
        while True:
            event = await self._queue.get()
            EVENTS.labels(type(event).__name__).inc()
            await self._on_event(event)
