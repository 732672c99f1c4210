"""``arbengine bench api``: requests/s and latency of the cached routes, over loopback.

Without ``--url`` it builds a throw-away deployment: an embedded PostgreSQL in
a temporary directory with a few days of funding data, a user, and a real
daemon process (``arbengine run``, collection off). The load generator runs in
this process, the server in its own, as in production.

Two measurements per route:

- throughput: ``--connections`` keep-alive connections each sending the next
  request as soon as the last is answered, for ``--duration`` seconds;
- latency at a fixed rate (``--rate``, default 2000 requests/s): requests are
  scheduled on a clock and each one's latency counts from when it was *due*,
  not from when a connection was free, so a stalled server shows up in the
  percentiles instead of silently lowering the rate (no coordinated omission).

The client is a minimal HTTP/1.1 keep-alive protocol on the event loop, far
cheaper per request than a full client library, so on a two-core machine
the figures describe the server rather than the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from arbengine.benchmarks.bench_report import BenchReport, BenchRow

ROUTES = ("/api/rates", "/api/stats")
TARGET_RPS = 2000.0
TARGET_P99_MS = 20.0
BENCH_USER = "bench"
BENCH_PASSWORD = "bench-password-" + "x" * 8


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections")
    parser.add_argument("--rate", type=float, default=TARGET_RPS, help="requests/s for latency")
    parser.add_argument("--url", help="bench a running server instead (e.g. http://127.0.0.1:8080)")
    parser.add_argument("--token", help="access token for /api/stats with --url")


# -- a minimal HTTP/1.1 client ---------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One keep-alive connection with one request in flight; returns the status code."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._waiter: asyncio.Future[int] | None = None
        self._transport: asyncio.BaseTransport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(ConnectionError("connection lost"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self._buffer[:end]).lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line.startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        if len(self._buffer) < end + 4 + length:
            return
        status = int(head[9:12])
        del self._buffer[: end + 4 + length]
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(status)

    async def request(self, raw: bytes) -> int:
        assert self._transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(raw)  # type: ignore[attr-defined]
        return await self._waiter

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()


async def _connect(host: str, port: int) -> _Connection:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(_Connection, host, port)
    return protocol


def _raw_request(host: str, port: int, path: str, token: str | None) -> bytes:
    lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: application/json"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class _Result:
    completed: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    latencies_ms: list[float] | None = None


async def _closed_loop(conns: list[_Connection], raw: bytes, duration_s: float) -> _Result:
    result = _Result()
    deadline = time.perf_counter() + duration_s

    async def worker(conn: _Connection) -> None:
        while time.perf_counter() < deadline:
            status = await conn.request(raw)
            result.completed += 1
            if status != 200:
                result.errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in conns))
    result.elapsed_s = time.perf_counter() - started
    return result


async def _open_loop(
    conns: list[_Connection], raw: bytes, rate: float, duration_s: float
) -> _Result:
    total = int(rate * duration_s)
    due: asyncio.Queue[float | None] = asyncio.Queue()
    latencies: list[float] = []
    result = _Result(latencies_ms=latencies)

    async def worker(conn: _Connection) -> None:
        while (scheduled := await due.get()) is not None:
            status = await conn.request(raw)
            latencies.append((time.perf_counter() - scheduled) * 1000.0)
            if status != 200:
                result.errors += 1

    workers = [asyncio.create_task(worker(c)) for c in conns]
    started = time.perf_counter()
    sent = 0
    while sent < total:
        now = time.perf_counter()
        should = min(total, int((now - started) * rate) + 1)
        while sent < should:
            due.put_nowait(started + sent / rate)
            sent += 1
        await asyncio.sleep(0.0005)
    for _ in workers:
        due.put_nowait(None)
    await asyncio.gather(*workers)
    result.elapsed_s = time.perf_counter() - started
    result.completed = len(latencies)
    return result


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


async def _measure(args: argparse.Namespace, base: str, token: str | None) -> list[BenchRow]:
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    rows: list[BenchRow] = []
    for path in ROUTES:
        raw = _raw_request(host, port, path, token)
        conns = [await _connect(host, port) for _ in range(args.connections)]
        try:
            await _closed_loop(conns, raw, args.warmup)
            load = await _closed_loop(conns, raw, args.duration)
            paced = await _open_loop(conns, raw, args.rate, args.duration)
        finally:
            for conn in conns:
                conn.close()
        rps = load.completed / load.elapsed_s
        assert paced.latencies_ms is not None
        p50 = _percentile(paced.latencies_ms, 0.50)
        p99 = _percentile(paced.latencies_ms, 0.99)
        rows += [
            BenchRow(
                f"{path} throughput", rps, "req/s", f">= {TARGET_RPS:,.0f}", rps >= TARGET_RPS
            ),
            BenchRow(f"{path} p50 at {args.rate:,.0f} req/s", p50, "ms"),
            BenchRow(
                f"{path} p99 at {args.rate:,.0f} req/s",
                p99,
                "ms",
                f"<= {TARGET_P99_MS:.0f}",
                p99 <= TARGET_P99_MS,
            ),
            BenchRow(
                f"{path} non-200 answers",
                float(load.errors + paced.errors),
                "count",
                "0",
                load.errors + paced.errors == 0,
            ),
        ]
    return rows


# -- a throw-away deployment -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _seed(url: str, symbols: list[str]) -> None:
    """Four days of settled funding and a current premiumIndex per symbol, and a user."""
    import asyncpg

    from arbengine.api.tokens import Passwords
    from arbengine.store import admin_sql

    now = int(time.time() * 1000)
    conn = await asyncpg.connect(url)
    try:
        for i, symbol in enumerate(symbols):
            await conn.executemany(
                "INSERT INTO market_indicators (symbol, kind, ts, known_at, value) "
                "VALUES ($1, 'funding_rate', $2, $2, $3)",
                [(symbol, now - k * 8 * 3_600_000, 0.0001 * (1 + (k + i) % 3)) for k in range(12)],
            )
            await conn.execute(
                "INSERT INTO rate_snapshots (symbol, ts, known_at, mark_price, index_price, "
                "funding_rate, next_funding_time) VALUES ($1, $2, $2, $3, $3, 0.0001, $4)",
                symbol,
                now,
                100.0 + i,
                now + 3_600_000,
            )
        password_hash = Passwords().hash_sync(BENCH_PASSWORD)
        await admin_sql.create_user(conn, BENCH_USER, password_hash, "user")
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def _deployment(workdir: Path) -> AsyncIterator[tuple[str, str]]:
    """Yield (base URL, access token) of a daemon on a fresh embedded database."""
    import aiohttp

    from arbengine.settings import DatabaseSettings, Settings
    from arbengine.store.database import open_database

    symbols = list(Settings().collect.symbols)
    async with open_database(DatabaseSettings(data_dir=str(workdir / "pg"))) as db:
        await _seed(db.url, symbols)
        port = _free_port()
        env = {
            **os.environ,
            "ARB_DATABASE_URL": db.url,
            "ARB_HTTP_PORT": str(port),
            "ARB_COLLECT_ENABLED": "false",
            "ARB_AUTH_JWT_SECRET": secrets.token_urlsafe(48),
            "ARB_LOG_LEVEL": "warning",
        }
        env.pop("ARB_CONFIG", None)
        with (workdir / "daemon.log").open("wb") as log:
            daemon = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "arbengine",
                "run",
                cwd=workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            base = f"http://127.0.0.1:{port}"
            try:
                async with aiohttp.ClientSession() as http:
                    token = await _login(http, base, daemon)
                yield base, token
            finally:
                if daemon.returncode is None:
                    daemon.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(daemon.wait(), 30)
                    except TimeoutError:
                        daemon.kill()
                        await daemon.wait()


async def _login(http: Any, base: str, daemon: asyncio.subprocess.Process) -> str:
    import aiohttp

    deadline = time.monotonic() + 60
    while True:
        if daemon.returncode is not None:
            raise RuntimeError(f"the daemon exited with {daemon.returncode} before serving")
        try:
            async with http.get(f"{base}/api/health") as response:
                if response.status == 200:
                    break
        except aiohttp.ClientError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("the daemon did not become healthy within 60 s")
        await asyncio.sleep(0.1)
    async with http.post(
        f"{base}/api/login", json={"username": BENCH_USER, "password": BENCH_PASSWORD}
    ) as response:
        body = orjson.loads(await response.read())
        if response.status != 200:
            raise RuntimeError(f"bench login failed: {body}")
        return str(body["access_token"])


async def _bench(args: argparse.Namespace) -> tuple[list[BenchRow], str]:
    if args.url:
        return await _measure(args, args.url.rstrip("/"), args.token), args.url
    workdir = Path(tempfile.mkdtemp(prefix="arbengine-bench-"))
    try:
        async with _deployment(workdir) as (base, token):
            return await _measure(args, base, token), "fresh daemon, embedded PostgreSQL"
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run(args: argparse.Namespace) -> BenchReport:
    import uvloop

    rows, target = uvloop.run(_bench(args))
    return BenchReport(
        name="api",
        params={
            "target": target,
            "connections": args.connections,
            "duration_s": args.duration,
            "rate": args.rate,
            "cpus": os.cpu_count(),
        },
        rows=rows,
    )
