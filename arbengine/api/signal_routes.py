"""Evaluations over time, one evaluation in full, and the strategies the engine runs.

The dashboard's Signals page draws a strategy's score at every tick against its
threshold and explains any one tick: the list is kept light (a day of 15-second
ticks is thousands of rows) and the breakdown is fetched for the tick asked about.
"""

from __future__ import annotations

from typing import Any

import orjson

from arbengine.api import queries
from arbengine.api.context import CONTEXT
from arbengine.api.schemas import (
    EvaluationAt,
    EvaluationInfo,
    EvaluationPoint,
    Evaluations,
    SignalsEvaluationQuery,
    SignalsEvaluationsQuery,
    Strategies,
    StrategyInfo,
)
from arbengine.api.services import Call


async def evaluations(call: Call) -> Evaluations:
    q: SignalsEvaluationsQuery = call.query
    w = call.range
    rows = await queries.evaluations(
        call.services.db(), q.strategy, q.symbol, w.start, w.end, q.limit + 1
    )
    return Evaluations(
        strategy=q.strategy,
        symbol=q.symbol,
        from_=w.start,
        to=w.end,
        rows=[EvaluationPoint(**dict(r)) for r in rows[: q.limit]],
        truncated=len(rows) > q.limit,
    )


def _json(text: str) -> Any:
    return orjson.loads(text)


async def evaluation(call: Call) -> EvaluationAt:
    q: SignalsEvaluationQuery = call.query
    rows = await queries.evaluation_at(call.services.db(), q.strategy, q.symbol, q.at)
    if not rows:
        return EvaluationAt(evaluation=None)
    fields = dict(rows[0])
    for name in ("features", "contributions", "gates"):
        fields[name] = _json(fields[name])
    return EvaluationAt(evaluation=EvaluationInfo(**fields))


async def strategies(call: Call) -> Strategies:
    loaded = call.request.app[CONTEXT].strategy_definitions()
    return Strategies(
        strategies=[
            StrategyInfo(
                name=d.name,
                hash=d.hash,
                enabled=d.enabled,
                symbols=list(d.symbols),
                tick_ms=d.tick_ms,
                threshold=d.threshold,
                min_coverage=d.min_coverage,
                document=d.document,
            )
            for d in sorted(loaded, key=lambda d: d.name)
        ]
    )
