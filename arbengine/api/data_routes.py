"""Market, signal and paper-trading reads: validated query in, shaped rows out."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import orjson

from arbengine.api import queries
from arbengine.api.context import CONTEXT
from arbengine.api.jsonio import encode
from arbengine.api.schemas import (
    INTERVAL_MS,
    LIQUIDATION_NOTE,
    Bar,
    DailyCompleteness,
    EquityPoint,
    EvaluationInfo,
    FundingPoint,
    FundingStats,
    History,
    HistoryQuery,
    Kline,
    KlineQuery,
    LiquidationBar,
    Liquidations,
    LiquidationsQuery,
    LiquidationTotal,
    NotEvaluated,
    PaperSummary,
    PaperSummaryQuery,
    PaperTrade,
    PaperTrades,
    PaperTradesQuery,
    Rate,
    Rates,
    SignalHistory,
    SignalLatest,
    SignalLog,
    SignalsHistoryQuery,
    SignalsLatestQuery,
    Snapshot,
    Snapshots,
    SnapshotsQuery,
    Stats,
    StrategySummary,
    TradeBar,
    TradeMeta,
    TradesMeta,
    TradesSummary,
    TradesSummaryQuery,
    Ytd,
    YtdStats,
)
from arbengine.api.services import Call

DAY_MS = 86_400_000
DEFAULT_FUNDING_INTERVAL_H = 8.0
RATES_TTL_S = 3.0
STATS_TTL_S = 60.0
YTD_TTL_S = 3600.0


def annualise(rate: float | None, interval_hours: float) -> float | None:
    """A per-interval funding rate as a yearly one: rate × (24 / interval) × 365."""
    return None if rate is None else rate * (24.0 / interval_hours) * 365.0


def _interval(value: float | None) -> float:
    return float(value) if value else DEFAULT_FUNDING_INTERVAL_H


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


# -- funding ----------------------------------------------------------------------------------


async def rates(call: Call) -> bytes:
    services = call.services

    async def compute() -> bytes:
        rows = await queries.latest_rates(services.db(), services.symbols)
        out = []
        for r in rows:
            hours = _interval(r["interval_hours"])
            out.append(
                Rate(
                    symbol=r["symbol"],
                    ts=r["ts"],
                    mark_price=r["mark_price"],
                    index_price=r["index_price"],
                    funding_rate=r["funding_rate"],
                    funding_interval_hours=hours,
                    annualised_rate=annualise(r["funding_rate"], hours),
                    next_funding_time=r["next_funding_time"],
                )
            )
        return encode(Rates(as_of=call.now_ms(), rates=out))

    return await services.cache.get("rates", RATES_TTL_S, compute)


async def stats(call: Call) -> bytes:
    services = call.services

    async def compute() -> bytes:
        end = call.now_ms()
        start = end - 7 * DAY_MS
        rows = await queries.funding_stats(services.db(), services.symbols, start, end)
        out = []
        for r in rows:
            hours = _interval(r["interval_hours"])
            out.append(
                FundingStats(
                    symbol=r["symbol"],
                    samples=r["samples"],
                    mean=r["mean"],
                    min=r["min"],
                    max=r["max"],
                    annualised=annualise(r["mean"], hours),
                    funding_interval_hours=hours,
                    first_ts=r["first_ts"],
                    last_ts=r["last_ts"],
                )
            )
        return encode(Stats(as_of=end, from_=start, to=end, stats=out))

    return await services.cache.get("stats", STATS_TTL_S, compute)


async def stats_ytd(call: Call) -> bytes:
    services = call.services

    async def compute() -> bytes:
        end = call.now_ms()
        year = dt.datetime.fromtimestamp(end / 1000, dt.UTC).year
        start = int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
        rows = await queries.funding_stats(services.db(), services.symbols, start, end)
        out = []
        for r in rows:
            hours = _interval(r["interval_hours"])
            out.append(
                YtdStats(
                    symbol=r["symbol"],
                    samples=r["samples"],
                    mean=r["mean"],
                    cumulative=r["total"],
                    annualised=annualise(r["mean"], hours),
                    funding_interval_hours=hours,
                    first_ts=r["first_ts"],
                    last_ts=r["last_ts"],
                )
            )
        return encode(Ytd(as_of=end, year=year, from_=start, to=end, stats=out))

    return await services.cache.get("stats_ytd", YTD_TTL_S, compute)


async def history(call: Call) -> History:
    q: HistoryQuery = call.query
    end = call.now_ms()
    start = end - 7 * DAY_MS
    symbols = [q.symbol] if q.symbol else call.services.symbols
    rows = await queries.funding_history(call.services.db(), symbols, start, end)
    return History(
        from_=start,
        to=end,
        rows=[
            FundingPoint(
                symbol=r["symbol"],
                ts=r["ts"],
                funding_rate=r["funding_rate"],
                mark_price=r["mark_price"],
            )
            for r in rows
        ],
    )


async def snapshots(call: Call) -> Snapshots:
    q: SnapshotsQuery = call.query
    w = call.range
    rows = await queries.snapshots(call.services.db(), q.symbol, w.start, w.end, q.limit + 1)
    truncated = len(rows) > q.limit
    rows = rows[: q.limit]
    return Snapshots(
        symbol=q.symbol,
        from_=w.start,
        to=w.end,
        rows=[Snapshot(**dict(r)) for r in rows],
        next_from=rows[-1]["ts"] + 1 if truncated else None,
    )


async def kline(call: Call) -> Kline:
    q: KlineQuery = call.query
    w = call.range
    rows = await queries.rate_bars(
        call.services.db(), q.symbol, q.series, INTERVAL_MS[q.interval], w.start, w.end
    )
    return Kline(
        symbol=q.symbol,
        series=q.series,
        interval=q.interval,
        from_=w.start,
        to=w.end,
        bars=[Bar(**dict(r)) for r in rows],
    )


# -- trades ---------------------------------------------------------------------------------


async def trades_meta(call: Call) -> TradesMeta:
    services = call.services
    today = dt.datetime.fromtimestamp(call.now_ms() / 1000, dt.UTC).date()
    meta = await queries.trade_meta(services.db(), services.symbols)
    daily_rows = await queries.daily_completeness(
        services.db(), services.symbols, today - dt.timedelta(days=6)
    )
    daily: dict[str, list[DailyCompleteness]] = defaultdict(list)
    for d in daily_rows:
        daily[d["symbol"]].append(
            DailyCompleteness(
                day=d["day"],
                first_id=d["first_id"],
                last_id=d["last_id"],
                rows=d["rows"],
                completeness=d["completeness"],
            )
        )
    out = []
    for m in meta:
        span = (
            m["last_id"] - m["first_id"] + 1
            if m["first_id"] is not None and m["last_id"] is not None
            else 0
        )
        out.append(
            TradeMeta(
                symbol=m["symbol"],
                first_id=m["first_id"],
                last_id=m["last_id"],
                first_ts=m["first_ts"],
                last_ts=m["last_ts"],
                rows=m["rows"],
                gaps_seen=m["gaps_seen"],
                gaps_repaired=m["gaps_repaired"],
                holes_left=m["holes_left"],
                holes=[[int(a), int(b)] for a, b in orjson.loads(m["holes"])],
                completeness=min(1.0, m["rows"] / span) if span > 0 else None,
                daily=daily.get(m["symbol"], []),
                updated_at=m["updated_at"],
            )
        )
    return TradesMeta(symbols=out)


async def trades_summary(call: Call) -> TradesSummary:
    q: TradesSummaryQuery = call.query
    w = call.range
    rows = await queries.trade_bars(
        call.services.db(), q.symbol, INTERVAL_MS[q.interval], w.start, w.end
    )
    return TradesSummary(
        symbol=q.symbol,
        interval=q.interval,
        from_=w.start,
        to=w.end,
        bars=[TradeBar(**dict(r)) for r in rows],
    )


async def liquidations(call: Call) -> Liquidations:
    q: LiquidationsQuery = call.query
    w = call.range
    symbols = [q.symbol] if q.symbol else call.services.symbols
    rows = await queries.liquidation_bars(
        call.services.db(), symbols, INTERVAL_MS[q.interval], w.start, w.end
    )
    bars = [LiquidationBar(**dict(r)) for r in rows]
    totals: dict[tuple[str, str], list[float]] = {}
    for b in bars:
        t = totals.setdefault((b.symbol, b.side), [0, 0.0, 0.0])
        t[0] += b.count
        t[1] += b.qty
        t[2] += b.notional
    return Liquidations(
        note=LIQUIDATION_NOTE,
        interval=q.interval,
        from_=w.start,
        to=w.end,
        bars=bars,
        totals=[
            LiquidationTotal(symbol=s, side=side, count=int(c), qty=qty, notional=n)  # type: ignore[arg-type]
            for (s, side), (c, qty, n) in sorted(totals.items())
        ],
    )


# -- signals ---------------------------------------------------------------------------------


async def signals_history(call: Call) -> SignalHistory:
    q: SignalsHistoryQuery = call.query
    w = call.range
    rows = await queries.signal_history(
        call.services.db(), q.strategy, q.symbol, w.start, w.end, q.limit + 1
    )
    truncated = len(rows) > q.limit
    out = []
    for r in rows[: q.limit]:
        fields = dict(r)
        fields["features"] = _json(fields["features"])
        fields["contributions"] = _json(fields["contributions"])
        out.append(SignalLog(**fields))
    return SignalHistory(from_=w.start, to=w.end, rows=out, truncated=truncated)


async def signals_latest(call: Call) -> SignalLatest:
    q: SignalsLatestQuery = call.query
    rows = await queries.latest_evaluations(call.services.db(), q.strategy, q.symbol)
    out = []
    for r in rows:
        fields = dict(r)
        for name in ("features", "contributions", "gates"):
            fields[name] = _json(fields[name])
        out.append(EvaluationInfo(**fields))
    engine = call.request.app[CONTEXT].engine()
    waiting = [
        NotEvaluated(
            strategy=strategy,
            symbol=state["symbol"],
            waiting_for=state["waiting_for"],
            since=state["since"],
            reason=state["reason"],
        )
        for state in (engine["symbols"] if engine is not None else [])
        if state["state"] == "waiting" and q.symbol in (None, state["symbol"])
        for strategy in state["strategies"]
        if q.strategy in (None, strategy)
    ]
    return SignalLatest(rows=out, waiting=waiting)


# -- paper trading --------------------------------------------------------------------------


async def paper_trades(call: Call) -> PaperTrades:
    q: PaperTradesQuery = call.query
    w = call.range
    rows = await queries.paper_trades(
        call.services.db(), q.strategy, q.symbol, q.status, w.start, w.end, q.limit + 1
    )
    out = []
    for r in rows[: q.limit]:
        fields = dict(r)
        fields["exits"] = _json(fields["exits"])
        out.append(PaperTrade(**fields))
    return PaperTrades(from_=w.start, to=w.end, rows=out, truncated=len(rows) > q.limit)


async def paper_summary(call: Call) -> PaperSummary:
    q: PaperSummaryQuery = call.query
    db = call.services.db()
    counts = await queries.paper_summary(db, q.strategy, q.symbol)
    closes = await queries.paper_closes(db, q.strategy, q.symbol)
    curves: dict[str, list[EquityPoint]] = defaultdict(list)
    running: dict[str, float] = defaultdict(float)
    for c in closes:
        running[c["strategy"]] += c["result_r"]
        curves[c["strategy"]].append(
            EquityPoint(ts=c["closed_at"], trade_id=c["id"], r=running[c["strategy"]])
        )
    return PaperSummary(
        strategies=[
            StrategySummary(
                strategy=r["strategy"],
                trades=r["trades"],
                open=r["open"],
                closed=r["closed"],
                wins=r["wins"],
                losses=r["losses"],
                win_rate=r["wins"] / r["closed"] if r["closed"] else None,
                total_r=r["total_r"],
                total_usd=r["total_usd"],
                equity=curves.get(r["strategy"], []),
            )
            for r in counts
        ]
    )
