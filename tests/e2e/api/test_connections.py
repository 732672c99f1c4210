"""Connections that make no progress are closed, and beyond the cap new ones are refused.

Real sockets against a real daemon with short deadlines: a client that opens a
connection and says nothing, one that trickles its headers, one that never
finishes its body, one that reads none of its answer, and more connections
than the cap allows. Which deadline closed a connection is read from the
daemon's metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest
import pytest_asyncio

from tests.e2e.api.harness import (
    ApiUnderTest,
    api_env,
    running_api,
    start_api,
    stop_api,
)
from tests.support.daemon import DaemonProcess
from tests.support.postgres import PgTestServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEEPALIVE_S = 3.0
HEADER_S = 1.0
BODY_S = 1.0
SEND_S = 1.0
CAP = 3


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def strict(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    async with running_api(
        pg_server,
        tmp_path_factory.mktemp("strict"),
        {
            "ARB_HTTP_KEEPALIVE_TIMEOUT": f"{KEEPALIVE_S:g}s",
            "ARB_HTTP_HEADER_TIMEOUT": f"{HEADER_S:g}s",
            "ARB_HTTP_BODY_TIMEOUT": f"{BODY_S:g}s",
            "ARB_HTTP_SEND_TIMEOUT": f"{SEND_S:g}s",
        },
    ) as under_test:
        yield under_test


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def capped(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    async with running_api(
        pg_server, tmp_path_factory.mktemp("capped"), {"ARB_HTTP_MAX_CONNECTIONS": str(CAP)}
    ) as under_test:
        yield under_test


# -- a raw HTTP/1.1 client: the point is to misbehave in ways a client library will not --------


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, object]:
        parsed = orjson.loads(self.body)
        assert isinstance(parsed, dict)
        return parsed


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, api: ApiUnderTest) -> Connection:
        url = urlsplit(api.base)
        return cls(*await asyncio.open_connection(url.hostname, url.port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def get(self, path: str) -> Raw:
        await self.send(f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        return await self.response()

    async def response(self, timeout: float = 30.0) -> Raw:
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return Raw(int(status_line.split()[1]), headers, body)

    async def closed_by_server(self, timeout: float = 30.0) -> float:
        """Seconds until the server closes (or resets) the connection; fails after timeout."""
        started = time.monotonic()

        async def until_closed() -> None:
            with contextlib.suppress(ConnectionResetError):
                while await self.reader.read(65536):
                    pass

        await asyncio.wait_for(until_closed(), timeout)
        return time.monotonic() - started

    def close(self) -> None:
        self.writer.close()


async def metric(api: ApiUnderTest, name: str) -> float:
    reply = await api.get("/metrics")
    assert reply.status == 200
    for line in reply.body.decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0


def timed_out(phase: str) -> str:
    return f'arb_api_connections_timed_out_total{{phase="{phase}"}}'


# -- deadlines ----------------------------------------------------------------------------------


async def test_idle_connections_are_closed_after_the_keepalive_timeout(
    strict: ApiUnderTest,
) -> None:
    before = await metric(strict, timed_out("idle"))
    fresh = await Connection.open(strict)  # never says a word
    used = await Connection.open(strict)
    assert (await used.get("/api/health")).status == 200  # then says nothing more
    waited = await asyncio.gather(fresh.closed_by_server(), used.closed_by_server())
    assert min(waited) >= KEEPALIVE_S - 0.5
    assert await metric(strict, timed_out("idle")) >= before + 2


async def test_headers_trickling_in_are_cut_off_at_the_header_timeout(
    strict: ApiUnderTest,
) -> None:
    before = await metric(strict, timed_out("headers"))
    slow = await Connection.open(strict)
    await slow.send(b"GET /api/health HTTP/1.1\r\nHost: test\r\n")

    async def trickle() -> None:
        # A header line every quarter second: never idle, never finished (slowloris).
        with contextlib.suppress(ConnectionError):
            for n in range(1000):
                await slow.send(f"X-Slow-{n}: 1\r\n".encode())
                await asyncio.sleep(0.25)

    trickling = asyncio.create_task(trickle())
    try:
        waited = await slow.closed_by_server()
    finally:
        trickling.cancel()
    assert waited >= HEADER_S - 0.2
    assert waited < KEEPALIVE_S  # the header deadline closed it, not the idle one
    assert await metric(strict, timed_out("headers")) == before + 1


async def test_a_body_that_never_arrives_is_answered_408_and_the_connection_closed(
    strict: ApiUnderTest,
) -> None:
    before = await metric(strict, timed_out("body"))
    slow = await Connection.open(strict)
    await slow.send(
        b"POST /api/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b'Content-Length: 200\r\n\r\n{"username": "alice", '
    )
    reply = await slow.response()
    assert reply.status == 408
    assert reply.json()["error"] == {
        "code": "request_timeout",
        "message": f"the request body did not arrive within {BODY_S:g} s",
        "field": None,
    }
    assert reply.headers["connection"] == "close"
    await slow.closed_by_server()
    assert await metric(strict, timed_out("body")) == before + 1


async def test_a_client_that_reads_none_of_its_answers_is_dropped(strict: ApiUnderTest) -> None:
    now = int(time.time() * 1000)
    rows = [("SOLUSDT", now - 3_000_000 + k * 500, 150.0, 149.9, 0.0001) for k in range(5000)]
    await strict.sql_many(
        "INSERT INTO rate_snapshots (symbol, ts, known_at, mark_price, index_price, "
        "funding_rate) VALUES ($1, $2, $2, $3, $4, $5)",
        rows,
    )
    session = await strict.new_user()
    answer = await strict.get("/api/snapshots?symbol=SOLUSDT&limit=5000", token=session.access)
    assert answer.status == 200
    assert len(answer.body["rows"]) == 5000
    request = (
        "GET /api/snapshots?symbol=SOLUSDT&limit=5000 HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Bearer {session.access}\r\n\r\n"
    ).encode()
    pipelined = 16  # about 13 MB of answers: more than the socket buffers between us hold
    before = await metric(strict, timed_out("send"))
    url = urlsplit(strict.base)
    loop = asyncio.get_running_loop()
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await loop.sock_connect(sock, (url.hostname, url.port))
        await loop.sock_sendall(sock, request * pipelined)

        async def dropped() -> bool:
            return await metric(strict, timed_out("send")) >= before + 1

        await eventually(dropped, timeout=60, what="the unread answers to be dropped")
        received = 0
        with contextlib.suppress(ConnectionResetError):
            while chunk := await asyncio.wait_for(loop.sock_recv(sock, 1 << 20), 30):
                received += len(chunk)
    assert received < pipelined * 700_000  # the rest was never sent


# -- the connection cap -------------------------------------------------------------------------


async def test_beyond_the_cap_connections_are_refused_while_the_others_are_served(
    capped: ApiUnderTest,
) -> None:
    held = [await Connection.open(capped) for _ in range(CAP)]
    for connection in held:
        assert (await connection.get("/api/health")).status == 200

    refusals = []
    for _ in range(2):
        extra = await Connection.open(capped)
        refusals.append(await extra.get("/api/health"))
        await extra.closed_by_server()
        extra.close()
    for refused in refusals:
        assert refused.status == 503
        assert refused.headers["connection"] == "close"
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "too_many_connections"

    # The connections it has are still answered.
    metrics = await held[0].get("/metrics")
    assert metrics.status == 200
    text = metrics.body.decode()
    assert "arb_api_connections_refused_total 2.0" in text
    assert f"arb_api_connections_open {CAP}.0" in text
    assert f"arb_api_connections_limit {CAP}.0" in text
    # Refusals are logged at most once per interval, with a count, not once each.
    logged = capped.daemon.events("api.connections_refused")
    assert [(e["refused"], e["limit"]) for e in logged] == [(1, CAP)]

    # A connection closed makes room for a new one.
    held.pop().close()

    async def admitted() -> bool:
        connection = await Connection.open(capped)
        try:
            return (await connection.get("/api/health")).status == 200
        finally:
            connection.close()

    await eventually(admitted, what="a new connection to be served")
    for connection in held:
        connection.close()


# -- the descriptor reserve ---------------------------------------------------------------------


async def test_the_soft_descriptor_limit_is_raised_to_the_hard_one(
    pg_server: PgTestServer, tmp_path: Path
) -> None:
    hard = 4000
    api, name = await start_api(pg_server, tmp_path, nofile=(600, hard))
    try:
        raised = api.daemon.events("api.descriptor_limit_raised")
        assert [(e["before"], e["after"]) for e in raised] == [(600, hard)]
        listening = api.daemon.events("api.listening")
        assert listening[0]["max_connections"] == hard - 1024 - 64
    finally:
        await stop_api(api, pg_server, name)


async def test_connections_are_capped_so_the_reserve_remains(
    pg_server: PgTestServer, tmp_path: Path
) -> None:
    # The hard limit cannot be raised: 2000 descriptors, 1500 kept for the rest.
    api, name = await start_api(
        pg_server, tmp_path, {"ARB_HTTP_DESCRIPTOR_RESERVE": "1500"}, nofile=(2000, 2000)
    )
    try:
        assert api.daemon.events("api.descriptor_limit_raised") == []
        assert await metric(api, "arb_api_connections_limit") == 2000 - 1500 - 64
    finally:
        await stop_api(api, pg_server, name)


async def test_a_reserve_that_leaves_no_connections_stops_the_daemon_with_one_line(
    pg_server: PgTestServer, tmp_path: Path
) -> None:
    name = await pg_server.create_database()
    env = api_env(pg_server.url_for(name), tmp_path, "k" * 48)
    daemon = DaemonProcess(tmp_path, env, nofile=(1000, 1000))
    try:
        await daemon.start()
        assert await daemon.wait_exit(60) == 2
        errors = [line for line in daemon.raw if line.startswith("arbengine:")]
        assert errors == [
            "arbengine: config error: [http] descriptor_reserve (1024) leaves no file "
            "descriptors for API connections: the process may open 1000 (RLIMIT_NOFILE, less "
            "64 for refusals); lower descriptor_reserve or raise the limit (ulimit -n)"
        ]
        assert not any("Traceback" in line for line in daemon.raw)
    finally:
        await daemon.kill()
        await pg_server.drop_database(name)
