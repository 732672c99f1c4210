"""Live trading reads for users, and the run-time live configuration for admins.

The executor (trading/) writes ``live_trades``, ``live_orders`` and ``live_events``; these
handlers only read them, through ``queries``. The configuration an admin stores here is a
new ``live_config`` row (the latest is in force, from the executor's next tick) with a
``live.config_changed`` event saying who changed what.
"""

from __future__ import annotations

from typing import Any

import msgspec
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
from arbengine.domain.engine_rows import PaperTradeExits
from arbengine.domain.live_parity import (
    PaperTwin,
    TwinComparison,
    compare,
    exit_reasons,
    summarise,
)
from arbengine.domain.live_rows import Fill, LiveTradeRow
from arbengine.logs import get_logger

CONFIG_HISTORY = 100
STOP_ROLES = frozenset({"sl", "breakeven_sl"})
"""The roles of the executor's stops (``live_ids.OrderRole``): a position with one open is
protected."""


_PAPER_COLUMNS = (
    "paper_status",
    "paper_r_distance",
    "paper_risk_usd",
    "paper_exits",
    "paper_fees",
    "paper_funding",
)


def _comparison(fields: dict[str, Any]) -> TwinComparison | None:
    """The trade against its paper twin (None without one); takes the twin's columns out."""
    paper = {name: fields.pop(name) for name in _PAPER_COLUMNS}
    if paper["paper_status"] is None:
        return None
    exits = msgspec.json.decode(paper["paper_exits"], type=PaperTradeExits)
    live = msgspec.convert(
        {k: v for k, v in fields.items() if k in LiveTradeRow.__struct_fields__}, LiveTradeRow
    )
    return compare(
        live,
        PaperTwin(
            entry_price=fields["paper_entry_price"],
            r_distance=paper["paper_r_distance"],
            risk_usd=paper["paper_risk_usd"],
            fills=exits.fills,
            fees=paper["paper_fees"],
            funding=paper["paper_funding"],
            result_r=fields["paper_result_r"],
            closed=paper["paper_status"] == "closed",
        ),
    )


def _trade(record: Any) -> tuple[LiveTrade, TwinComparison | None]:
    fields = dict(record)
    for name in ("entry_fills", "exit_fills", "plan_differences"):
        fields[name] = orjson.loads(fields[name])
    c = _comparison(fields)
    trade = LiveTrade(
        **fields,
        entry_slippage_bps=c.entry_slippage_bps if c else None,
        entry_slippage_r=c.entry_slippage_r if c else None,
        exit_slippage_r=c.exit_slippage_r if c else None,
        exit_slippage_bps=c.exit_slippage_bps if c else None,
        fees_r=c.fees_r if c else None,
        paper_fees_r=c.paper_fees_r if c else None,
        funding_r=c.funding_r if c else None,
        paper_funding_r=c.paper_funding_r if c else None,
        split_r=c.split_r if c else None,
        r_vs_paper=c.r_vs_paper if c else None,
        exit_reasons=exit_reasons(msgspec.convert(fields["exit_fills"], list[Fill])),
        paper_exit_reasons=c.paper_exit_reasons if c else None,
        same_exits=c.same_exits if c else None,
    )
    return trade, c


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
    out = [_trade(r)[0] for r in rows[: q.limit]]
    return LiveTrades(from_=w.start, to=w.end, rows=out, truncated=len(rows) > q.limit)


async def positions(call: Call) -> LivePositions:
    q: LivePositionsQuery = call.query
    db = call.services.db()
    open_trades = [_trade(r)[0] for r in await queries.live_open_trades(db, q.strategy, q.symbol)]
    orders: dict[int, list[LiveOrder]] = {t.id: [] for t in open_trades}
    for record in await queries.live_open_orders_of(db, list(orders)):
        orders[record["trade_id"]].append(_order(record))
    return LivePositions(
        rows=[
            LivePosition(
                trade=t,
                orders=orders[t.id],
                protected=any(o.role in STOP_ROLES for o in orders[t.id]),
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
    db = call.services.db()
    rows = await queries.live_summary(db, q.strategy, q.symbol, w.start, w.end)
    compared: dict[str, list[TwinComparison]] = {}
    for record in await queries.live_trades_in(db, q.strategy, q.symbol, w.start, w.end):
        _, c = _trade(record)
        if c is not None:
            compared.setdefault(record["strategy"], []).append(c)
    out = []
    for r in rows:
        parity = summarise(compared.get(r["strategy"], []))
        out.append(
            LiveStrategySummary(
                **dict(r),
                win_rate=r["wins"] / r["closed"] if r["closed"] else None,
                **msgspec.structs.asdict(parity),
            )
        )
    return LiveSummary(from_=w.start, to=w.end, strategies=out)


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
