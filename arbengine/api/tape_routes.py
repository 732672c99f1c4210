"""The tape's continuity records, per symbol: completeness per UTC day and each gap with
what became of it. ``/api/trades/meta`` sums these up; these say which days and which
trade ids, so a person can see where the tape is incomplete and why.

The continuity check and the collectors write ``agg_trades_daily`` and
``agg_trades_gaps``; these handlers only read them, through ``queries``.
"""

from __future__ import annotations

import datetime as dt

from arbengine.api import queries
from arbengine.api.schemas import (
    TradesDay,
    TradesDays,
    TradesDaysQuery,
    TradesGap,
    TradesGaps,
    TradesGapsQuery,
)
from arbengine.api.services import Call


def _utc_day(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()


async def days(call: Call) -> TradesDays:
    q: TradesDaysQuery = call.query
    w = call.range
    # Every day the range touches: from the day of its start to the day of its last instant.
    rows = await queries.trade_days(
        call.services.db(),
        q.symbol,
        _utc_day(w.start),
        _utc_day(w.end - 1) + dt.timedelta(days=1),
    )
    return TradesDays(
        symbol=q.symbol, from_=w.start, to=w.end, days=[TradesDay(**dict(r)) for r in rows]
    )


async def gaps(call: Call) -> TradesGaps:
    q: TradesGapsQuery = call.query
    w = call.range
    rows = await queries.trade_gaps(call.services.db(), q.symbol, w.start, w.end, q.limit + 1)
    return TradesGaps(
        symbol=q.symbol,
        from_=w.start,
        to=w.end,
        rows=[TradesGap(**dict(r)) for r in rows[: q.limit]],
        truncated=len(rows) > q.limit,
    )
