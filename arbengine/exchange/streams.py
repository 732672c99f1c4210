"""Binance combined market streams over one websocket, kept alive for good.

- One connection per ≤ 200 streams (``<base>/stream?streams=a/b/c``); each
  message is ``{"stream": name, "data": payload}``.
- Reconnects after any failure, waiting as its ``RetryPolicy`` says.
- Binance closes a connection after 24 h. Before that (``max_age``) we open
  a second connection, switch to it once it delivers, then close the first:
  the overlap means no gap (consumers drop the duplicates by id). A hand-over
  that fails is logged and tried again later (the first connection serves on).
  A quiet stream (``silence_s`` None: a user data stream) may send nothing for
  hours, so its watchdog hands over: once the next connection is open, it
  closes the first, whose reader then serves the next.
- Connection age, silence and backoff are measured and waited on the injected clock.
- A watchdog reconnects a connection that stays silent for ``silence``.
- A frame the consumer cannot decode is logged, counted and skipped; it
  never takes the connection down.
- While a connection is down it is reported on the health board (``stream``,
  subject the connection's name), from the first failure until it is back.
- A stream whose address changes (a user data stream names a listen key, which
  expires) is given ``url_for_next``: asked before every connection is opened,
  it may fail retryably (the REST call behind it) like the connection itself.
  ``reconnect_now`` ends the current connection and opens the next one without
  waiting. An error logged never shows the address's query (it may hold a key).

The consumer is a plain callback run for every frame (no await per frame),
plus ``on_connected`` so the consumer can repair what a reconnect may have
missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiohttp
import msgspec
from prometheus_client import Counter, Gauge

from arbengine.domain.errors import RetryableError
from arbengine.logs import get_logger
from arbengine.runtime.backoff import EXCHANGE_STREAM_RETRY, RetryPolicy
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.runtime.health import HealthBoard

MALFORMED = Counter("arb_ws_malformed_frames", "Frames skipped as malformed", ["connection"])
RECONNECTS = Counter("arb_ws_reconnects", "Websocket reconnections by reason", ["reason"])
CONNECTED = Gauge("arb_ws_connected", "1 while the connection is open", ["connection"])

MAX_STREAMS_PER_CONNECTION = 200

OnFrame = Callable[[bytes], None]
"""Decodes and handles one frame; raising ValueError/TypeError/KeyError or a msgspec
error marks the frame malformed (logged, counted, skipped)."""
OnConnected = Callable[[int], Awaitable[None]]
UrlForNext = Callable[[], Awaitable[str]]


@dataclass(frozen=True)
class StreamPolicy:
    max_age_s: float = 23 * 3600.0
    silence_s: float | None = 30.0
    """None: a quiet connection is normal (a user data stream); ``heartbeat_s`` watches it."""
    heartbeat_s: float | None = None
    """Our own pings every so often; a pong that does not come ends the connection."""
    reconnect: RetryPolicy = EXCHANGE_STREAM_RETRY
    """Waits between reconnects after a failure, and between tries of a failed hand-over."""
    open_timeout_s: float = 10.0


def combined_url(base_url: str, streams: Sequence[str]) -> str:
    return f"{base_url.rstrip('/')}/stream?streams={'/'.join(s.lower() for s in streams)}"


def split_streams(
    streams: Sequence[str], per_connection: int = MAX_STREAMS_PER_CONNECTION
) -> list[list[str]]:
    return [list(streams[i : i + per_connection]) for i in range(0, len(streams), per_connection)]


class _Silent(Exception):
    pass


class _Closed(Exception):
    """The server closed the connection, or it broke (a protocol error, a reset)."""


_RETRYABLE = (OSError, aiohttp.ClientError, TimeoutError, RetryableError, _Silent, _Closed)


_DATA = (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY)


class CombinedStream:
    def __init__(
        self,
        name: str,
        base_url: str,
        streams: Sequence[str],
        on_frame: OnFrame,
        *,
        session: aiohttp.ClientSession,
        on_connected: OnConnected | None = None,
        policy: StreamPolicy | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        may_read: asyncio.Event | None = None,
        health: HealthBoard | None = None,
        url_for_next: UrlForNext | None = None,
    ) -> None:
        if not streams and url_for_next is None:
            raise ValueError("a combined stream needs at least one stream name")
        if len(streams) > MAX_STREAMS_PER_CONNECTION:
            raise ValueError(f"at most {MAX_STREAMS_PER_CONNECTION} streams per connection")
        self.name = name
        self.base_url = base_url
        self.streams = list(streams)
        self.url = combined_url(base_url, streams) if streams else base_url
        self._url_for_next = url_for_next
        self._reconnect_requested = False
        self._current: aiohttp.ClientWebSocketResponse | None = None
        self._next: aiohttp.ClientWebSocketResponse | None = None
        """A quiet stream's next connection, opened by the watchdog at the age limit."""
        self._hand_over_at = 0.0
        self._hand_over_failures = 0
        self._closing: set[asyncio.Task[object]] = set()
        self._health = health
        self._session = session
        self._on_frame = on_frame
        self._on_connected = on_connected
        self.policy = policy or StreamPolicy()
        self._clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._log = get_logger("stream", connection=name)
        self.connections = 0
        self.malformed = 0
        self._stop = asyncio.Event()
        # Cleared by the consumer when it cannot keep up: reading pauses (TCP backpressure).
        self._may_read = may_read
        self._last_message = 0.0
        self._went_silent = False

    @property
    def connected(self) -> bool:
        """A connection is open and being read now."""
        return self._current is not None

    def request_stop(self) -> None:
        """Return from ``run`` promptly (graceful shutdown), even from a quiet connection."""
        self._stop.set()

    def reconnect_now(self) -> None:
        """End the current connection and open the next one at once (no backoff): its
        address has changed (``url_for_next`` will say how)."""
        self._reconnect_requested = True
        ws = self._current
        if ws is not None and not ws.closed:
            task: asyncio.Task[object] = asyncio.ensure_future(ws.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    def _redact(self, text: str) -> str:
        """``text`` without the query of any address we used (it may hold a listen key)."""
        base = self.url.split("?")[0]
        return text.replace(self.url, base) if "?" in self.url else text

    def remove(self, names: Sequence[str]) -> None:
        """Leave ``names`` out from the next connection on (their data is ignored until then);
        a connection left with no stream stops."""
        gone = {n.lower() for n in names}
        kept = [s for s in self.streams if s.lower() not in gone]
        if len(kept) == len(self.streams):
            return
        self.streams = kept
        if kept:
            self.url = combined_url(self.base_url, kept)
        else:
            self.request_stop()

    async def run(self) -> None:
        """Stay connected until ``request_stop``; reconnect after every failure."""
        try:
            await self._reconnecting()
        finally:
            if self._health is not None:
                self._health.clear("stream", subject=self.name)

    async def _reconnecting(self) -> None:
        """One connection after another, in a flat loop: a hand-over returns the next
        connection here rather than serving it from inside the old one's frame."""
        attempt = 0
        ws: aiohttp.ClientWebSocketResponse | None = None
        while not self._stop.is_set():
            try:
                if ws is None:
                    ws = await self._open()
                attempt = 0
                handed_to = await self._serve(ws)
                if handed_to is None:  # stopping
                    await ws.close()
                ws = handed_to
            except _RETRYABLE as exc:
                if ws is not None:
                    await ws.close()
                    ws = None
                if self._stop.is_set():
                    return
                attempt += 1
                reason = "silent" if isinstance(exc, _Silent) else type(exc).__name__
                RECONNECTS.labels(reason).inc()
                delay = self.policy.reconnect.delay(attempt, self._rng)
                error = self._redact(str(exc))[:200]
                self._log.warning(
                    "stream.reconnecting",
                    reason=reason,
                    error=error,
                    delay_s=round(delay, 3),
                )
                if self._health is not None:
                    self._health.report(
                        "stream",
                        f"disconnected ({reason}: {error}), reconnecting",
                        subject=self.name,
                    )
                await self._clock.sleep(delay, self._stop)
            except BaseException:
                if ws is not None:
                    await ws.close()
                raise
        if ws is not None:
            await ws.close()

    async def _open(self) -> aiohttp.ClientWebSocketResponse:
        if self._url_for_next is not None:
            self._reconnect_requested = False  # the address asked for now is the new one
            self.url = await self._url_for_next()
        # aiohttp's websocket reader is compiled: it parses frames about twice as fast as a
        # pure-Python one, which is most of the cost of a busy stream.
        connecting = self._session.ws_connect(
            self.url,
            timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=2.0),
            autoping=True,  # the server pings; pongs are automatic
            heartbeat=self.policy.heartbeat_s,  # else the watchdog covers silence
            max_msg_size=2**22,
            compress=0,
        )
        return await asyncio.wait_for(connecting, self.policy.open_timeout_s)

    async def _serve(
        self, ws: aiohttp.ClientWebSocketResponse
    ) -> aiohttp.ClientWebSocketResponse | None:
        """Read one connection until it falls silent or we stop (None), or until it ages out:
        then the next connection, already delivering, is returned and this one is closed."""
        self.connections += 1
        self._current = ws
        CONNECTED.labels(self.name).set(1)
        if self._health is not None:
            self._health.clear("stream", subject=self.name)
        self._log.info("stream.connected", streams_url=self.url.split("?")[0], n=self.connections)
        clock = self._clock
        hand_over_at = clock.monotonic() + self.policy.max_age_s
        self._hand_over_at = hand_over_at
        self._hand_over_failures = 0
        quiet = self.policy.silence_s is None
        hand_over_failures = 0
        self._last_message = clock.monotonic()
        # A watchdog beside the reader, rather than a timeout on every receive: at tens of
        # thousands of messages a second a per-message timer costs more than the parsing.
        watchdog = asyncio.create_task(self._watch(ws), name=f"{self.name}:watchdog")
        try:
            if self._on_connected is not None:
                await self._on_connected(self.connections)
            receive = ws.receive
            handle = self._handle
            may_read = self._may_read
            while not self._stop.is_set():
                if self._reconnect_requested:
                    self._reconnect_requested = False
                    self._log.info("stream.reconnecting_now")
                    return None
                if not quiet and clock.monotonic() >= hand_over_at:
                    try:
                        return await self._hand_over(ws)
                    except (
                        OSError,
                        aiohttp.ClientError,
                        TimeoutError,
                        RetryableError,
                        _Closed,
                    ) as exc:
                        # The old connection still serves (the exchange ends it only at
                        # 24 h): keep reading it, and try again after the policy's delay.
                        hand_over_failures += 1
                        delay = self.policy.reconnect.delay(hand_over_failures, self._rng)
                        hand_over_at = clock.monotonic() + delay
                        RECONNECTS.labels("hand_over_failed").inc()
                        self._log.warning(
                            "stream.hand_over_failed",
                            error=self._redact(f"{type(exc).__name__}: {exc}")[:200],
                            attempt=hand_over_failures,
                            retry_in_s=round(delay, 3),
                        )
                if may_read is not None and not may_read.is_set():
                    await may_read.wait()
                message = await receive()
                if message.type not in _DATA:
                    if self._stop.is_set():
                        return None
                    if self._reconnect_requested:
                        continue  # the loop's head opens the next connection
                    if self._next is not None:  # the watchdog handed over
                        handed_to, self._next = self._next, None
                        return handed_to
                    if self._went_silent:
                        raise _Silent(f"no message for {self.policy.silence_s:g}s")
                    raise _Closed(f"{message.type.name}: {message.extra or message.data or ''}")
                self._last_message = clock.monotonic()
                data = message.data
                handle(data if isinstance(data, bytes) else data.encode())
            return None
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog
            self._current = None
            if self._next is not None:  # stopping amid a hand-over
                await self._next.close()
                self._next = None
            CONNECTED.labels(self.name).set(0)

    async def _watch(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Close the connection when it falls silent, or at once when asked to stop."""
        self._went_silent = False
        silence = self.policy.silence_s
        period = max(0.05, silence / 4) if silence is not None else 1.0
        clock = self._clock
        while await clock.sleep(period, self._stop):
            if silence is None:
                if clock.monotonic() >= self._hand_over_at and await self._open_next(ws):
                    return
                continue
            if clock.monotonic() - self._last_message > silence:
                self._went_silent = True
                await ws.close()
                return
        await ws.close()

    async def _open_next(self, old: aiohttp.ClientWebSocketResponse) -> bool:
        """A quiet stream's hand-over, from the watchdog (the reader may wait for hours):
        open the next connection, then close this one. The reader gets what this one still
        holds, then its close, and serves the next (the overlap's duplicates are the
        consumer's to drop). False when the next one could not be opened: tried again
        after the policy's delay, this one serving on."""
        self._log.info("stream.rotating", age_limit_s=self.policy.max_age_s)
        RECONNECTS.labels("max_age").inc()
        try:
            self._next = await self._open()
        except (OSError, aiohttp.ClientError, TimeoutError, RetryableError) as exc:
            self._hand_over_failures += 1
            delay = self.policy.reconnect.delay(self._hand_over_failures, self._rng)
            self._hand_over_at = self._clock.monotonic() + delay
            RECONNECTS.labels("hand_over_failed").inc()
            self._log.warning(
                "stream.hand_over_failed",
                error=self._redact(f"{type(exc).__name__}: {exc}")[:200],
                attempt=self._hand_over_failures,
                retry_in_s=round(delay, 3),
            )
            return False
        await old.close()
        return True

    async def _hand_over(
        self, old: aiohttp.ClientWebSocketResponse
    ) -> aiohttp.ClientWebSocketResponse:
        """Open the next connection and, once it delivers (a quiet stream: once it is open),
        drain and close this one, so nothing falls between (the consumer drops the
        overlap's duplicates by id).

        Returns the new connection for the caller's loop to serve. A failure (the new
        connection refused, or silent) closes the new connection and is raised: the old
        one is left open."""
        self._log.info("stream.rotating", age_limit_s=self.policy.max_age_s)
        RECONNECTS.labels("max_age").inc()
        new = await self._open()
        first: aiohttp.WSMessage | None = None
        try:
            if self.policy.silence_s is not None:
                first = await asyncio.wait_for(new.receive(), self.policy.silence_s)
                if first.type not in _DATA:
                    raise _Closed(f"the next connection: {first.type.name}")
            # else a quiet stream: the new connection is subscribed once it is open.
            # Drain what the old connection still holds, then switch.
            while True:
                try:
                    message = await asyncio.wait_for(old.receive(), 0.05)
                except TimeoutError:
                    break
                if message.type not in _DATA:
                    break
                self._handle(_bytes(message.data))
        except BaseException:
            await new.close()
            raise
        await old.close()
        if first is not None:
            self._handle(_bytes(first.data))
        return new

    def _handle(self, frame: bytes) -> None:
        try:
            self._on_frame(frame)
        except (ValueError, TypeError, KeyError, msgspec.MsgspecError) as exc:
            self._malformed(frame, exc)

    def _malformed(self, frame: bytes, exc: Exception) -> None:
        self.malformed += 1
        MALFORMED.labels(self.name).inc()
        # One line per bad frame is fine: they are rare, and each one is worth seeing.
        self._log.warning(
            "stream.malformed_frame",
            error=f"{type(exc).__name__}: {exc}"[:200],
            frame=frame[:200].decode(errors="replace"),
        )


def _bytes(data: bytes | str) -> bytes:
    return data if isinstance(data, bytes) else data.encode()
