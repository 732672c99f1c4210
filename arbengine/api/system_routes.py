"""Health, server state, metrics and the OpenAPI document."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Literal

import msgspec
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from arbengine.api import queries
from arbengine.api.context import CONTEXT, OPENAPI
from arbengine.api.schemas import (
    BackfillSeries,
    DatabaseInfo,
    DegradationInfo,
    EngineInfo,
    Health,
    PartitionedTable,
    PartitionInfo,
    RestBudgetInfo,
    ServerInfo,
    SymbolsInfo,
    TableSize,
)
from arbengine.api.services import Call


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


# A range partition's bound as PostgreSQL prints it: FOR VALUES FROM (1704067200000) TO (…),
# a number possibly quoted; MINVALUE, MAXVALUE or DEFAULT do not match and read as null.
_RANGE_BOUND = re.compile(r"FROM \('?(-?\d+)'?\) TO \('?(-?\d+)'?\)")


async def server_database(call: Call) -> DatabaseInfo:
    """Read on its own route rather than in ``/api/server``: the catalogue walk costs more
    than the in-memory snapshots there, and sizes change slowly, so a page asks less often."""
    db = call.services.db()
    size = await queries.database_size(db)
    tables = [
        TableSize(
            name=r["name"],
            bytes=r["bytes"],
            rows_estimate=r["rows_estimate"],
            partitions=r["partitions"],
        )
        for r in await queries.table_sizes(db)
    ]
    by_table: dict[str, tuple[str, list[PartitionInfo]]] = {}
    for r in await queries.partitions(db):
        bound = _RANGE_BOUND.search(r["bound"] or "")
        by_table.setdefault(r["table_name"], (r["key"], []))[1].append(
            PartitionInfo(
                name=r["name"],
                from_ms=int(bound.group(1)) if bound else None,
                to_ms=int(bound.group(2)) if bound else None,
                bytes=r["bytes"],
                rows_estimate=r["rows_estimate"],
            )
        )
    partitioned = []
    for table, (key, parts) in sorted(by_table.items()):
        parts.sort(key=lambda p: (p.from_ms is None, p.from_ms or 0, p.name))
        starts = [p.from_ms for p in parts if p.from_ms is not None]
        ends = [p.to_ms for p in parts if p.to_ms is not None]
        partitioned.append(
            PartitionedTable(
                table=table,
                key=key,
                count=len(parts),
                bytes=sum(p.bytes for p in parts),
                oldest_ms=min(starts, default=None),
                newest_ms=max(ends, default=None),
                partitions=parts,
            )
        )
    return DatabaseInfo(size_bytes=size, tables=tables, partitioned=partitioned)


async def openapi_document(call: Call) -> bytes:
    return call.request.app[OPENAPI]


async def metrics(call: Call) -> web.Response:
    response = web.Response(body=generate_latest(REGISTRY))
    response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
    response.charset = "utf-8"
    return response
