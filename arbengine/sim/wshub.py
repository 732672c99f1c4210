"""Websocket connections of the sim: subscriptions, batched publishing, Binance's connection rules.

aiohttp performs the handshake and parses what clients send (pings, pongs,
SUBSCRIBE…); everything the server sends is a pre-built frame written straight
to the transport (see ``frames``). Publishing is synchronous: the clock step
formats each message once per stream form (raw or combined), appends the frames
to every subscriber's pending list and ``flush()`` writes each connection's
pending bytes with one ``transport.write``. No await per message.

Rules enforced, as Binance does: at most ``max_streams`` streams per connection,
at most ``max_client_msgs_per_s`` messages a second from the client (more:
disconnect), a ping every ``ping_interval_s`` and a disconnect when no pong
came within ``pong_timeout_s``, a disconnect at ``max_age_ms`` of *simulated*
time (24 h by default, so a speed-10 sim closes connections after 2.4 h), and a
disconnect of a consumer so slow its backlog passes ``max_backlog_bytes``.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from arbengine.sim import frames
from arbengine.sim.faults import FaultState

_ids = itertools.count(1)

_KINDS = {
    "aggtrade": "aggTrade",
    "markprice": "markPrice",
    "markprice@1s": "markPrice@1s",
    "forceorder": "forceOrder",
    "bookticker": "bookTicker",
}
_ALL_STREAMS = {
    "!forceorder@arr": "!forceOrder@arr",
    "!markprice@arr": "!markPrice@arr",
    "!markprice@arr@1s": "!markPrice@arr@1s",
}


def canonical_stream(name: str) -> str:
    """Binance's spelling of a stream name; the event part is case-insensitive.

    The symbol part must be lowercase as Binance requires: ``BTCUSDT@aggTrade``
    stays as written and, like on Binance, never carries data.
    """
    low = name.lower()
    if low in _ALL_STREAMS:
        return _ALL_STREAMS[low]
    symbol, sep, kind = name.partition("@")
    if not sep:
        return name
    canon = _KINDS.get(kind.lower())
    return f"{symbol}@{canon}" if canon else name


@dataclass(frozen=True, slots=True)
class WsRules:
    max_streams: int = 1024
    max_client_msgs_per_s: int = 10
    ping_interval_s: float = 180.0
    pong_timeout_s: float = 600.0
    max_age_ms: int = 86_400_000
    max_backlog_bytes: int = 64 * 1024 * 1024


class Conn:
    """One client websocket. ``kind`` is "market" or "private"."""

    __slots__ = (
        "closed",
        "combined",
        "connected_sim_ms",
        "delayed",
        "events",
        "hub",
        "id",
        "kind",
        "last_pong",
        "listen_keys",
        "msg_count",
        "msg_window",
        "pending",
        "protocol",
        "ready",
        "request",
        "streams",
        "transport",
    )

    def __init__(self, hub: Hub, request: web.Request, kind: str, combined: bool) -> None:
        self.id = next(_ids)
        self.hub = hub
        self.request = request
        self.kind = kind
        self.combined = combined
        self.transport = request.transport
        self.protocol = request.protocol
        self.streams: set[str] = set()
        self.listen_keys: set[str] = set()
        self.events: set[str] | None = None
        self.pending: list[bytes] = []
        self.delayed: deque[tuple[float, bytes]] = deque()
        self.ready = False
        self.closed = False
        self.connected_sim_ms = hub.sim_now()
        self.last_pong = time.monotonic()
        self.msg_window = int(time.monotonic())
        self.msg_count = 0

    def queue(self, data: bytes) -> None:
        if self.closed:
            return
        self.pending.append(data)
        self.hub.dirty.add(self)

    def send_now(self, data: bytes) -> None:
        self.queue(data)
        self.flush()

    def flush(self) -> None:
        if self.closed or not self.ready or not self.pending:
            return
        faults = self.hub.faults
        now = time.monotonic()
        if faults.hanging("ws", now):
            self.hub.schedule_flush(faults.hanging("ws", now))
            return
        data = self.pending[0] if len(self.pending) == 1 else b"".join(self.pending)
        self.pending.clear()
        if faults.ws_latency_ms or self.delayed:
            self.delayed.append((now + faults.ws_latency_ms / 1000.0, data))
            self.hub.schedule_delayed(self)
            return
        self._write(data)

    def release_delayed(self) -> float | None:
        """Write what is due; seconds until the next delayed write (None when none left)."""
        now = time.monotonic()
        while self.delayed and self.delayed[0][0] <= now:
            self._write(self.delayed.popleft()[1])
        return self.delayed[0][0] - now if self.delayed else None

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            self.closed = True
            return
        transport.write(data)
        if transport.get_write_buffer_size() > self.hub.rules.max_backlog_bytes:
            self.hub.log.warning(
                "sim.ws.slow_consumer", conn=self.id, backlog=transport.get_write_buffer_size()
            )
            self.abort()

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Close frame after what is pending, then close the socket."""
        if self.closed:
            return
        self.ready = True
        self.queue(frames.close_frame(code, reason))
        self.flush_all_now()
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def flush_all_now(self) -> None:
        data = b"".join([d for _, d in self.delayed] + self.pending)
        self.delayed.clear()
        self.pending.clear()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (what a network failure looks like)."""
        self.closed = True
        self.pending.clear()
        self.delayed.clear()
        if self.transport is not None:
            self.transport.abort()

    async def drain(self) -> None:
        if self.closed or self.transport is None:
            return
        try:
            await self.request.writer.drain()
        except (ConnectionError, RuntimeError):
            self.closed = True

    @property
    def writing_paused(self) -> bool:
        return bool(self.protocol is not None and self.protocol.writing_paused)


class Hub:
    def __init__(
        self,
        faults: FaultState,
        rules: WsRules,
        log: Any,
        sim_now: Callable[[], int],
        listen_key_valid: Callable[[str], bool],
    ) -> None:
        self.faults = faults
        self.rules = rules
        self.log = log
        self.sim_now = sim_now
        self.listen_key_valid = listen_key_valid
        self.conns: set[Conn] = set()
        self.subs: dict[str, set[Conn]] = {}
        self.user_conns: set[Conn] = set()
        self.dirty: set[Conn] = set()
        self.messages_sent = 0
        self.pings_sent = 0
        self.market_joined = asyncio.Event()
        """Set whenever a market client connects (the as-fast-as-possible clock waits on it)."""
        self._flush_timer: asyncio.TimerHandle | None = None
        self._delay_timers: dict[int, asyncio.TimerHandle] = {}
        self._prefix: dict[str, bytes] = {}

    # -- registry -------------------------------------------------------------------------

    def register(self, conn: Conn) -> None:
        self.conns.add(conn)
        if conn.kind == "market":
            self.market_joined.set()

    def unregister(self, conn: Conn) -> None:
        conn.closed = True
        self.conns.discard(conn)
        self.user_conns.discard(conn)
        self.dirty.discard(conn)
        for name in conn.streams:
            subs = self.subs.get(name)
            if subs is not None:
                subs.discard(conn)
                if not subs:
                    del self.subs[name]
        timer = self._delay_timers.pop(conn.id, None)
        if timer is not None:
            timer.cancel()

    def subscribe(self, conn: Conn, names: Iterable[str]) -> str | None:
        """Add streams; an error message when the connection would pass the stream limit."""
        wanted = []
        for raw in names:
            if not raw:
                continue
            if self.listen_key_valid(raw):
                conn.listen_keys.add(raw)
                self.user_conns.add(conn)
                continue
            wanted.append(canonical_stream(raw))
        if len(conn.streams | set(wanted)) > self.rules.max_streams:
            return f"Invalid request: too many streams (max {self.rules.max_streams})"
        for name in wanted:
            if name not in conn.streams:
                conn.streams.add(name)
                self.subs.setdefault(name, set()).add(conn)
        return None

    def unsubscribe(self, conn: Conn, names: Iterable[str]) -> None:
        for raw in names:
            name = canonical_stream(raw)
            conn.listen_keys.discard(raw)
            if name in conn.streams:
                conn.streams.discard(name)
                subs = self.subs.get(name)
                if subs is not None:
                    subs.discard(conn)
                    if not subs:
                        del self.subs[name]
        if not conn.listen_keys:
            self.user_conns.discard(conn)

    def has_subscribers(self, stream: str) -> bool:
        return stream in self.subs

    def market_conns(self) -> list[Conn]:
        return [c for c in self.conns if c.kind == "market"]

    # -- publishing -----------------------------------------------------------------------

    def _wrap(self, stream: str) -> bytes:
        prefix = self._prefix.get(stream)
        if prefix is None:
            prefix = b'{"stream":' + orjson.dumps(stream) + b',"data":'
            self._prefix[stream] = prefix
        return prefix

    def publish(
        self,
        stream: str,
        payloads: list[bytes],
        ids: list[int] | None = None,
        symbol: str | None = None,
    ) -> None:
        """Queue ``payloads`` (JSON bytes) to every subscriber of ``stream``."""
        subs = self.subs.get(stream)
        if not subs or not payloads:
            return
        if ids is not None and symbol is not None and self.faults.stream_faults_active(symbol):
            payloads = self.faults.mangle(symbol, payloads, ids)
            if not payloads:
                return
        raw: bytes | None = None
        combined: bytes | None = None
        for conn in subs:
            if conn.combined:
                if combined is None:
                    combined = frames.text_frames(payloads, self._wrap(stream), b"}")
                conn.queue(combined)
            else:
                if raw is None:
                    raw = frames.text_frames(payloads)
                conn.queue(raw)
            self.messages_sent += len(payloads)

    def publish_user(self, events: list[dict[str, Any]], listen_key: str | None = None) -> None:
        if not events or not self.user_conns:
            return
        if self.faults.silent("private", time.monotonic()):
            self.faults.silenced_messages += len(events)  # lost, as on a dead stream
            return
        encoded = [(e.get("e", ""), orjson.dumps(e)) for e in events]
        for conn in self.user_conns:
            keys = [k for k in conn.listen_keys if listen_key in (None, k)]
            keys = [k for k in keys if listen_key is not None or self.listen_key_valid(k)]
            if not keys:
                continue
            chosen = [
                p
                for kind, p in encoded
                if conn.events is None or kind in conn.events or kind == "listenKeyExpired"
            ]
            if not chosen:
                continue
            if conn.combined:
                conn.queue(frames.text_frames(chosen, self._wrap(keys[0]), b"}"))
            else:
                conn.queue(frames.text_frames(chosen))

    def flush(self) -> None:
        dirty, self.dirty = self.dirty, set()
        for conn in dirty:
            conn.flush()

    def schedule_flush(self, delay: float) -> None:
        if self._flush_timer is not None:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._flush_timer = None
            for conn in list(self.conns):
                if conn.pending:
                    self.dirty.add(conn)
            self.flush()

        self._flush_timer = loop.call_later(max(0.001, delay), fire)

    def schedule_delayed(self, conn: Conn) -> None:
        if conn.id in self._delay_timers:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._delay_timers.pop(conn.id, None)
            left = conn.release_delayed()
            if left is not None:
                self._delay_timers[conn.id] = loop.call_later(max(0.0005, left), fire)

        due = conn.delayed[0][0] - time.monotonic() if conn.delayed else 0.0
        self._delay_timers[conn.id] = loop.call_later(max(0.0005, due), fire)

    def inject_malformed(self, count: int, kind: str) -> None:
        """Bad frames to every market client: truncated JSON, or a reserved opcode."""
        bad = (
            frames.header(3, 0x3) + b"bad"
            if kind == "frame"
            else frames.frame(b'{"e":"aggTrade","E":17000000')
        )
        for conn in self.market_conns():
            for _ in range(count):
                conn.queue(bad)
        self.flush()

    # -- connection management ------------------------------------------------------------

    def drop(self, which: str = "all", mode: str = "abort") -> int:
        victims = [c for c in self.conns if which == "all" or c.kind == which]
        for conn in victims:
            if mode == "close":
                conn.close(1001, "simulated disconnect")
            else:
                conn.abort()
        return len(victims)

    def check_ages(self, sim_now: int) -> None:
        limit = self.rules.max_age_ms
        for conn in list(self.conns):
            if sim_now - conn.connected_sim_ms >= limit:
                self.log.info("sim.ws.max_age", conn=conn.id)
                conn.close(1000, "connection lifetime exceeded")

    def ping_all(self) -> None:
        now = time.monotonic()
        if self.faults.hanging("ws", now):
            return
        ping = frames.ping_frame(str(int(time.time() * 1000)).encode())
        self.pings_sent += 1
        for conn in list(self.conns):
            if now - conn.last_pong > self.rules.pong_timeout_s:
                self.log.info("sim.ws.pong_timeout", conn=conn.id)
                conn.abort()
                continue
            conn.send_now(ping)

    async def backpressure(self) -> None:
        """Wait until no market client is paused (the as-fast-as-possible clock)."""
        for conn in list(self.conns):
            if conn.writing_paused:
                await conn.drain()


# ---------------------------------------------------------------------------------------------
# The per-connection reader


def _error(code: int, msg: str, req_id: Any) -> bytes:
    return frames.frame(orjson.dumps({"error": {"code": code, "msg": msg}, "id": req_id}))


async def serve_connection(hub: Hub, conn: Conn) -> web.WebSocketResponse:
    """Handshake, then read client frames until the connection ends."""
    ws = web.WebSocketResponse(
        autoping=False, autoclose=False, compress=False, max_msg_size=1 << 20
    )
    hub.register(conn)
    try:
        await ws.prepare(conn.request)
        if conn.transport is None:
            conn.transport = conn.request.transport
        if conn.transport is not None and conn.kind == "market":
            conn.transport.set_write_buffer_limits(high=1 << 20, low=1 << 18)
        conn.ready = True
        conn.flush()
        await _read_loop(hub, conn, ws)
    finally:
        hub.unregister(conn)
        if conn.transport is not None and not conn.transport.is_closing():
            conn.transport.close()
    return ws


async def _read_loop(hub: Hub, conn: Conn, ws: web.WebSocketResponse) -> None:
    rules = hub.rules
    while not conn.closed:
        msg = await ws.receive()
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            if msg.type is WSMsgType.CLOSE:
                conn.close(1000)
            return
        hang = hub.faults.hanging("ws", time.monotonic())
        if hang:
            await asyncio.sleep(hang)
        now = time.monotonic()
        second = int(now)
        if second != conn.msg_window:
            conn.msg_window, conn.msg_count = second, 0
        conn.msg_count += 1
        if conn.msg_count > rules.max_client_msgs_per_s:
            hub.log.info("sim.ws.too_many_messages", conn=conn.id)
            conn.close(1008, "Too many requests")
            return
        if msg.type is WSMsgType.PING:
            conn.send_now(frames.pong_frame(msg.data))
        elif msg.type is WSMsgType.PONG:
            conn.last_pong = now
        elif msg.type is WSMsgType.TEXT:
            _handle_request(hub, conn, msg.data)
        else:
            conn.send_now(_error(3, "Invalid JSON: binary frames are not accepted", None))


def _handle_request(hub: Hub, conn: Conn, text: str) -> None:
    try:
        req = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        conn.send_now(_error(3, f"Invalid JSON: {exc}", None))
        return
    if not isinstance(req, dict):
        conn.send_now(_error(2, "Invalid request: expected an object", None))
        return
    req_id = req.get("id")
    method = req.get("method")
    params = req.get("params", [])
    if not isinstance(req_id, int | str) or isinstance(req_id, bool):
        conn.send_now(_error(2, "Invalid request: 'id' must be an integer or a string", req_id))
        return
    if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
        if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
            conn.send_now(_error(1, "Invalid value type: expected a list of strings", req_id))
            return
        if method == "SUBSCRIBE":
            problem = hub.subscribe(conn, params)
            if problem:
                conn.send_now(_error(2, problem, req_id))
                return
        else:
            hub.unsubscribe(conn, params)
        conn.send_now(frames.frame(orjson.dumps({"result": None, "id": req_id})))
    elif method == "LIST_SUBSCRIPTIONS":
        names = sorted(conn.streams | conn.listen_keys)
        conn.send_now(frames.frame(orjson.dumps({"result": names, "id": req_id})))
    elif method == "SET_PROPERTY":
        if params and params[0] == "combined" and len(params) == 2 and isinstance(params[1], bool):
            conn.combined = params[1]
            conn.send_now(frames.frame(orjson.dumps({"result": None, "id": req_id})))
        else:
            conn.send_now(_error(0, "Unknown property", req_id))
    elif method == "GET_PROPERTY":
        if params == ["combined"]:
            conn.send_now(frames.frame(orjson.dumps({"result": conn.combined, "id": req_id})))
        else:
            conn.send_now(_error(0, "Unknown property", req_id))
    else:
        conn.send_now(_error(2, f"Invalid request: unknown method {method!r}", req_id))
