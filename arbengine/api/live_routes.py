"""Live trading reads for users, and the run-time live configuration for admins.

The executor (trading/) writes ``live_trades``, ``live_orders`` and ``live_events``; these
handlers only read them, through ``queries``. The configuration an admin stores here is a
new ``live_config`` row (the latest is in force, from the executor's next tick) with a
``live.config_changed`` event saying who changed what.
"""

from __future__ import annotations

from typing import Any

import orjson

from arbengine.api import queries
from arbengine.api.context import CONTEXT
from arbengine.api.http_errors import bad_request
from arbengine.api.schemas import (
    LiveConfig,
    LiveConfigBody,
    LiveConfigView,
    LiveEvent,
    LiveEvents,
    LiveEventsQuery,
    LiveOrder,
    LiveOrders,
    LiveOrdersQuery,
    LivePosition,
    LivePositions,
    LivePositionsQuery,
    LiveStrategySummary,
    LiveSummary,
    LiveSummaryQuery,
    LiveTrade,
    LiveTrades,
    LiveTradesQuery,
)
from arbengine.api.services import Call
from arbengine.logs import get_logger

CONFIG_HISTORY = 100
STOP_LOSS_ROLE = "stop_loss"


def _trade(record: Any) -> LiveTrade:
    fields = dict(record)
    for name in ("entry_fills", "exit_fills", "plan_differences"):
        fields[name] = orjson.loads(fields[name])
    entry, paper_entry = fields["entry_price"], fields["paper_entry_price"]
    direction, r_distance = fields["direction"], fields["r_distance"]
    moved = direction * (entry - paper_entry) if None not in (entry, paper_entry) else None
    realised, paper_r = fields["realised_r"], fields["paper_result_r"]
    return LiveTrade(
        **fields,
        entry_slippage_bps=moved / paper_entry * 10_000 if moved is not None else None,
        entry_slippage_r=moved / r_distance if moved is not None else None,
        r_vs_paper=(
            realised - paper_r
            if fields["status"] == "closed" and None not in (realised, paper_r)
            else None
        ),
    )


def _order(record: Any) -> LiveOrder:
    fields = dict(record)
    fields["status_history"] = orjson.loads(fields["status_history"])
    return LiveOrder(**fields)


async def trades(call: Call) -> LiveTrades:
    q: LiveTradesQuery = call.query
    w = call.range
    rows = await queries.live_trades(
        call.services.db(), q.strategy, q.symbol, q.status, w.start, w.end, q.limit + 1
    )
    out = [_trade(r) for r in rows[: q.limit]]
    return LiveTrades(from_=w.start, to=w.end, rows=out, truncated=len(rows) > q.limit)


async def positions(call: Call) -> LivePositions:
    q: LivePositionsQuery = call.query
    db = call.services.db()
    open_trades = [_trade(r) for r in await queries.live_open_trades(db, q.strategy, q.symbol)]
    orders: dict[int, list[LiveOrder]] = {t.id: [] for t in open_trades}
    for record in await queries.live_open_orders_of(db, list(orders)):
        orders[record["trade_id"]].append(_order(record))
    return LivePositions(
        rows=[
            LivePosition(
                trade=t,
                orders=orders[t.id],
                protected=any(o.role == STOP_LOSS_ROLE for o in orders[t.id]),
            )
            for t in open_trades
        ]
    )


async def orders(call: Call) -> LiveOrders:
    q: LiveOrdersQuery = call.query
    w = call.range
    rows = await queries.live_orders(
        call.services.db(), q.strategy, q.symbol, q.role, q.state, w.start, w.end, q.limit + 1
    )
    out = [_order(r) for r in rows[: q.limit]]
    return LiveOrders(from_=w.start, to=w.end, rows=out, truncated=len(rows) > q.limit)


async def events(call: Call) -> LiveEvents:
    q: LiveEventsQuery = call.query
    w = call.range
    rows = await queries.live_events(
        call.services.db(), q.strategy, q.symbol, q.kind, q.level, w.start, w.end, q.limit + 1
    )
    out = []
    for r in rows[: q.limit]:
        fields = dict(r)
        fields["detail"] = orjson.loads(fields["detail"])
        out.append(LiveEvent(**fields))
    return LiveEvents(from_=w.start, to=w.end, rows=out, truncated=len(rows) > q.limit)


async def summary(call: Call) -> LiveSummary:
    q: LiveSummaryQuery = call.query
    w = call.range
    rows = await queries.live_summary(call.services.db(), q.strategy, q.symbol, w.start, w.end)
    return LiveSummary(
        from_=w.start,
        to=w.end,
        strategies=[
            LiveStrategySummary(
                **dict(r), win_rate=r["wins"] / r["closed"] if r["closed"] else None
            )
            for r in rows
        ],
    )


# -- configuration (admins) ---------------------------------------------------------------------


def _stored(record: Any) -> LiveConfig:
    return LiveConfig(
        strategies=orjson.loads(record["strategies"]),
        risk_per_trade_usd=record["risk_per_trade_usd"],
        max_positions=record["max_positions"],
        paused=record["paused"],
        source="api",
        changed_by=record["changed_by"],
        changed_at=record["changed_at"],
    )


async def _view(call: Call) -> LiveConfigView:
    history = [_stored(r) for r in await queries.live_config_history(call.services.db())]
    if history:
        current = history[0]
    else:
        live = call.request.app[CONTEXT].live_file() or call.services.settings.live
        current = LiveConfig(
            strategies=list(live.strategies),
            risk_per_trade_usd=live.risk_per_trade_usd,
            max_positions=live.max_positions,
            paused=False,
            source="settings",
            changed_by=None,
            changed_at=None,
        )
    loaded = call.request.app[CONTEXT].strategies()
    return LiveConfigView(
        current=current,
        history=history[:CONFIG_HISTORY],
        loaded_strategies=sorted(loaded) if loaded is not None else None,
    )


async def get_config(call: Call) -> LiveConfigView:
    return await _view(call)


async def put_config(call: Call) -> LiveConfigView:
    body: LiveConfigBody = call.body
    seen: set[str] = set()
    for name in body.strategies:
        if name in seen:
            raise bad_request("invalid_body", f"strategies: {name!r} is listed twice", "strategies")
        seen.add(name)
    loaded = call.request.app[CONTEXT].strategies()
    unknown = [name for name in body.strategies if loaded is None or name not in loaded]
    if unknown:
        known = ", ".join(sorted(loaded)) if loaded else "none (the engine is off)"
        raise bad_request(
            "unknown_strategy",
            f"strategies: {unknown[0]!r} is not a loaded strategy (loaded: {known})",
            "strategies",
        )
    assert call.user is not None  # an admin route is authenticated
    row = await queries.change_live_config(
        call.services.db(),
        queries.LiveConfigChange(
            strategies=list(body.strategies),
            risk_per_trade_usd=body.risk_per_trade_usd,
            max_positions=body.max_positions,
            paused=body.paused,
            changed_by=call.user.username,
        ),
    )
    get_logger("api").info(
        "live.config_changed",
        component="api",
        who=call.user.username,
        strategies=list(body.strategies),
        risk_per_trade_usd=body.risk_per_trade_usd,
        max_positions=body.max_positions,
        paused=body.paused,
        changed_at=row["changed_at"].isoformat(),
    )
    return await _view(call)
