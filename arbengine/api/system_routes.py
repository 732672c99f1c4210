"""Health, server state, metrics, the OpenAPI document and the static page."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Literal

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from arbengine.api.context import CONTEXT, OPENAPI
from arbengine.api.schemas import (
    BackfillSeries,
    DegradationInfo,
    EngineInfo,
    Health,
    RestBudgetInfo,
    ServerInfo,
    SymbolsInfo,
)
from arbengine.api.services import Call

STATIC_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


async def health(call: Call) -> Health:
    """``unavailable`` (503) only when we cannot serve: the database does not answer.
    Anything else that is wrong (the exchange away, a stream down, a symbol skipped, a
    component restarting) is ``degraded`` (200), with the reasons."""
    ctx = call.request.app[CONTEXT]
    try:
        await asyncio.wait_for(ctx.db_ping(), timeout=ctx.health_timeout_s)
        database = "ok"
    except Exception as exc:  # any failure to answer means "not healthy", with the reason
        database = f"error: {type(exc).__name__}: {exc}".strip()[:300]
    reasons = _degradations(ctx.degradations())
    status: Literal["ok", "degraded", "unavailable"] = (
        "unavailable" if database != "ok" else "degraded" if reasons else "ok"
    )
    return Health(status=status, process="ok", database=database, reasons=reasons)


def health_status(value: Health) -> int:
    return 503 if value.status == "unavailable" else 200


def _degradations(entries: list[dict[str, object]]) -> list[DegradationInfo]:
    return [msgspec.convert(e, DegradationInfo) for e in entries]


async def server(call: Call) -> ServerInfo:
    ctx = call.request.app[CONTEXT]
    try:
        size: int | None = await asyncio.wait_for(ctx.db_size(), timeout=ctx.health_timeout_s)
    except Exception:  # the size is decoration; an unreachable database shows as null
        size = None
    symbols = ctx.symbols()
    backfill = ctx.backfill()
    rest = ctx.rest()
    engine = ctx.engine()
    return ServerInfo(
        version=ctx.version,
        started_at=ctx.started_at,
        uptime_s=round(time.monotonic() - ctx.started_monotonic, 3),
        tasks=ctx.tasks(),
        channels=ctx.channels(),
        database_size_bytes=size,
        symbols=msgspec.convert(symbols, SymbolsInfo) if symbols is not None else None,
        degraded=_degradations(ctx.degradations()),
        backfill=msgspec.convert(backfill, list[BackfillSeries]) if backfill is not None else None,
        rest=msgspec.convert(rest, RestBudgetInfo) if rest is not None else None,
        engine=msgspec.convert(engine, EngineInfo) if engine is not None else None,
    )


async def openapi_document(call: Call) -> bytes:
    return call.request.app[OPENAPI]


async def metrics(call: Call) -> web.Response:
    response = web.Response(body=generate_latest(REGISTRY))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response


def static_files() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once: name -> (content, content type)."""
    folder = resources.files("arbengine.api") / "static"
    files: dict[str, tuple[bytes, str]] = {}
    for entry in folder.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1] if "." in entry.name else ""
        if entry.is_file() and suffix in STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    return files


def static_handler(content: bytes, content_type: str) -> Callable[[Call], Awaitable[web.Response]]:
    async def handler(call: Call) -> web.Response:
        charset = "utf-8" if content_type.startswith("text/") else None
        response = web.Response(body=content, content_type=content_type, charset=charset)
        # Revalidate rather than store: a new release must reach open browsers.
        response.headers["Cache-Control"] = "no-cache"
        return response

    return handler
