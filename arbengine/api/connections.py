"""How many connections the API holds, and how long each may hold one without progress.

Every connection costs a file descriptor, and the process shares its
descriptors with the collectors, the database pool and trading. aiohttp closes
a keep-alive connection that stays idle, but gives a request's headers no
deadline (one byte a second keeps a connection forever), and caps nothing. So
each connection's aiohttp protocol is wrapped, at the transport seam, in a
``ConnectionGuard`` that:

- refuses a connection beyond the cap at once: ``503`` with a JSON error and
  ``Connection: close``, then closes it (``Connections``);
- closes a connection with no request under way after ``keepalive_timeout``
  (a fresh one included, which older aiohttp releases never close);
- closes one whose request line and headers are not complete within
  ``header_timeout`` of their first byte;
- drops one that takes none of a response for ``send_timeout``.

The middleware tells the guard when a request's headers are complete and when
it is answered (``serving``); the body deadline lives with the code that reads
the body (``app._wrap``, 408). The cap is sized at start so that a reserve of
descriptors always remains (``descriptor_budget``).
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal, cast

import orjson
from aiohttp import web
from prometheus_client import Counter, Gauge

from arbengine.domain.errors import ConfigError
from arbengine.logs import get_logger
from arbengine.settings import HttpSettings

log = get_logger("api.connections")

REFUSING_MAX = 64
"""Refused connections kept open at once so their 503 is read; beyond, they close at once."""
REFUSAL_LINGER_S = 1.0
"""How long a refused connection waits for its client to close, so the 503 is not lost to a
reset when the client's request arrives after we closed."""
REFUSAL_LOG_INTERVAL_S = 10.0
"""At most one ``api.connections_refused`` line per interval, with the count since the last."""
LINGER_S = 1.0
"""aiohttp reads and drops an unread request body this long before closing (its default: 10 s)."""

Phase = Literal["idle", "headers", "request"]

OPEN = Gauge("arb_api_connections_open", "API connections open now")
LIMIT = Gauge("arb_api_connections_limit", "API connections allowed at once (after the reserve)")
REFUSED = Counter(
    "arb_api_connections_refused_total", "API connections refused at the connection limit"
)
TIMED_OUT = Counter(
    "arb_api_connections_timed_out_total",
    "API connections closed for making no progress: idle, headers, body or send",
    ["phase"],
)


def _refusal() -> bytes:
    """The 503 a refused connection gets, written as bytes: no request was read to answer."""
    body = orjson.dumps(
        {
            "error": {
                "code": "too_many_connections",
                "message": "the server is at its connection limit; try again shortly",
                "field": None,
            }
        }
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "Retry-After: 1\r\n"
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Server: arbengine\r\n"
        "\r\n"
    )
    return head.encode("ascii") + body


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    max_connections: int
    keepalive_s: float
    header_s: float
    body_s: float
    send_s: float


def raise_descriptor_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit where allowed; returns the soft limit."""
    unlimited = 1 << 20  # what "no limit" amounts to: the usual kernel maximum per process
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return unlimited
    target = unlimited if hard == resource.RLIM_INFINITY else hard
    if soft >= target:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("api.descriptor_limit_kept", soft=soft, hard=hard, error=str(exc))
        return soft
    log.info("api.descriptor_limit_raised", before=soft, after=target)
    return target


def descriptor_budget(http: HttpSettings, descriptors: int) -> ConnectionLimits:
    """Limits for the API's connections, the cap lowered so ``descriptor_reserve`` remains."""
    room = descriptors - http.descriptor_reserve - REFUSING_MAX
    if room < 1:
        raise ConfigError(
            f"[http] descriptor_reserve ({http.descriptor_reserve}) leaves no file descriptors "
            f"for API connections: the process may open {descriptors} (RLIMIT_NOFILE, less "
            f"{REFUSING_MAX} for refusals); lower descriptor_reserve or raise the limit "
            "(ulimit -n)"
        )
    return ConnectionLimits(
        max_connections=min(http.max_connections, room),
        keepalive_s=http.keepalive_timeout.seconds,
        header_s=http.header_timeout.seconds,
        body_s=http.body_timeout.seconds,
        send_s=http.send_timeout.seconds,
    )


class Connections:
    """The connections of one listening socket: counted, capped, refusals reported."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open = 0
        self._refusing: set[ConnectionGuard] = set()
        self._unlogged = 0
        self._log_timer: asyncio.TimerHandle | None = None
        self._refusal = _refusal()
        LIMIT.set(limits.max_connections)

    def protocol_factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        return lambda: ConnectionGuard(self, server)

    def _admit(self) -> bool:
        if self.open >= self.limits.max_connections:
            return False
        self.open += 1
        OPEN.inc()
        return True

    def _closed(self, guard: ConnectionGuard, admitted: bool) -> None:
        if admitted:
            self.open -= 1
            OPEN.dec()
        else:
            self._refusing.discard(guard)

    def _refuse(self, guard: ConnectionGuard, transport: asyncio.Transport) -> None:
        REFUSED.inc()
        self._unlogged += 1
        if self._log_timer is None:
            self._report_refusals()
        transport.write(self._refusal)
        if len(self._refusing) >= REFUSING_MAX or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self._refusing.add(guard)
        guard.close_after(REFUSAL_LINGER_S)

    def _report_refusals(self) -> None:
        if not self._unlogged:
            self._log_timer = None
            return
        log.warning(
            "api.connections_refused",
            refused=self._unlogged,
            open=self.open,
            limit=self.limits.max_connections,
        )
        self._unlogged = 0
        loop = asyncio.get_running_loop()
        self._log_timer = loop.call_later(REFUSAL_LOG_INTERVAL_S, self._report_refusals)

    def close(self) -> None:
        """At shutdown: report what is unreported and close refused connections now."""
        if self._log_timer is not None:
            self._log_timer.cancel()
            self._log_timer = None
        if self._unlogged:
            self._report_refusals()
            if self._log_timer is not None:
                self._log_timer.cancel()
                self._log_timer = None
        for guard in list(self._refusing):
            guard.abort()


class ConnectionGuard(asyncio.Protocol):
    """One connection: aiohttp's protocol inside, deadlines around it."""

    def __init__(self, connections: Connections, server: web.Server) -> None:
        self._connections = connections
        self._server = server
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._phase: Phase = "idle"
        self._timer: asyncio.TimerHandle | None = None
        self._send_timer: asyncio.TimerHandle | None = None
        self._writing_paused = False

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        transport = cast(asyncio.Transport, transport)
        self._transport = transport
        if not self._connections._admit():
            self._connections._refuse(self, transport)
            return
        self._inner = self._server()
        self._inner.connection_made(transport)
        self._await_request()

    def data_received(self, data: bytes) -> None:
        if self._inner is None:
            return  # refused: whatever the client sends is dropped
        if self._phase == "idle":
            self._phase = "headers"
            self._arm(self._connections.limits.header_s, "headers")
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is None:
            return None  # refused, and the client is done: close now
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._timer, self._send_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._send_timer = None
        self._connections._closed(self, admitted=self._inner is not None)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._writing_paused = True
        if self._send_timer is None:
            loop = asyncio.get_running_loop()
            limit = self._connections.limits.send_s
            self._send_timer = loop.call_later(limit, self._expire, "send")
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._send_timer is not None:
            self._send_timer.cancel()
            self._send_timer = None
        if self._phase == "idle":
            self._await_request()  # idle counts from the end of the response
        if self._inner is not None:
            self._inner.resume_writing()

    # -- what the middleware reports ------------------------------------------------------

    def request_started(self) -> None:
        self._phase = "request"
        self._disarm()

    def request_finished(self) -> None:
        self._await_request()

    # -- deadlines --------------------------------------------------------------------------

    def _await_request(self) -> None:
        self._phase = "idle"
        self._arm(self._connections.limits.keepalive_s, "idle")

    def _arm(self, seconds: float, phase: str) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_later(seconds, self._expire, phase)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, phase: str) -> None:
        if phase == "idle" and self._writing_paused:
            return  # still sending a response: send_timeout decides; idle restarts after it
        if phase != "send":
            self._timer = None
        else:
            self._send_timer = None
        TIMED_OUT.labels(phase).inc()
        log.debug("api.connection_timed_out", phase=phase)
        self.abort()

    def close_after(self, seconds: float) -> None:
        """For a refused connection: close once the client had time to read the refusal."""
        self._timer = asyncio.get_running_loop().call_later(seconds, self.abort)

    def abort(self) -> None:
        """Close now, dropping anything unsent: the descriptor is what matters.

        Also when the transport is already closing: a close waits for unsent data to
        leave, which a client that reads nothing never lets happen.
        """
        if self._transport is not None:
            self._transport.abort()


def _guard_of(request: web.BaseRequest) -> ConnectionGuard | None:
    transport = request.transport
    protocol = transport.get_protocol() if transport is not None else None
    return protocol if isinstance(protocol, ConnectionGuard) else None


@contextlib.contextmanager
def serving(request: web.BaseRequest) -> Iterator[None]:
    """Tell the request's connection guard that a request is under way, until it is answered."""
    guard = _guard_of(request)
    if guard is not None:
        guard.request_started()
    try:
        yield
    finally:
        if guard is not None:
            guard.request_finished()


class GuardedSite(web.BaseSite):
    """A TCP site whose connections are made through ``Connections``."""

    __slots__ = ("_connections", "_host", "_port", "bound_port")

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, connections: Connections
    ) -> None:
        super().__init__(runner, backlog=1024)
        self._host = host
        self._port = port
        self._connections = connections
        self.bound_port = port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.bound_port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._connections.protocol_factory(server),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=True,
        )
        if self._server.sockets:
            self.bound_port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        await super().stop()
        self._connections.close()
