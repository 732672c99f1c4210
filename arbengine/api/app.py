"""The aiohttp application: routes, middleware, and how it is served.

The API reads the daemon's state through ``ApiContext`` callables that the
composition root provides, so this package needs no knowledge of how tasks,
channels or the database are built.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from arbengine.api.jsonio import json_response
from arbengine.api.middleware import errors_middleware
from arbengine.settings import Settings


@dataclass(frozen=True)
class ApiContext:
    """What the API may see of the daemon; built by the composition root."""

    version: str
    started_monotonic: float
    started_at: float
    db_ping: Callable[[], Awaitable[None]]
    db_size: Callable[[], Awaitable[int]]
    tasks: Callable[[], list[dict[str, Any]]]
    channels: Callable[[], list[dict[str, Any]]]
    pool: asyncpg.Pool | None = None
    """Database pool for the read routes (None only in tests of the bare app)."""
    settings: Settings | None = None
    health_timeout_s: float = 2.0


CONTEXT = web.AppKey("context", ApiContext)


async def health(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    try:
        await asyncio.wait_for(ctx.db_ping(), timeout=ctx.health_timeout_s)
        database = "ok"
    except Exception as exc:  # any failure to answer means "not healthy", with the reason
        database = f"error: {type(exc).__name__}: {exc}".strip()[:300]
    healthy = database == "ok"
    return json_response(
        {"status": "ok" if healthy else "unavailable", "process": "ok", "database": database},
        status=200 if healthy else 503,
    )


async def server(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    try:
        size: int | None = await asyncio.wait_for(ctx.db_size(), timeout=ctx.health_timeout_s)
    except Exception:
        size = None
    return json_response(
        {
            "version": ctx.version,
            "started_at": ctx.started_at,
            "uptime_s": round(time.monotonic() - ctx.started_monotonic, 3),
            "tasks": ctx.tasks(),
            "channels": ctx.channels(),
            "database_size_bytes": size,
        }
    )


async def metrics(request: web.Request) -> web.Response:
    body = generate_latest(REGISTRY)
    response = web.Response(body=body)
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


def build_app(ctx: ApiContext) -> web.Application:
    app = web.Application(middlewares=[errors_middleware], client_max_size=64 * 1024)
    app[CONTEXT] = ctx
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/server", server)
    app.router.add_get("/metrics", metrics)
    return app


@contextlib.asynccontextmanager
async def serve_http(app: web.Application, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``app`` until the context exits; yields the bound port (``port=0`` picks one)."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=5.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:
        bound = server.sockets[0].getsockname()[1]
    try:
        yield bound
    finally:
        await runner.cleanup()
