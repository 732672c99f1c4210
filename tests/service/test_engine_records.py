"""The engine's rows through the real tables: what the signal writer stores is what a
restart reads back, as typed rows and as the same live positions."""

from __future__ import annotations

import orjson
import pytest

from arbengine.domain.engine_rows import (
    EvaluationBreakdown,
    EvaluationRow,
    FactorDetail,
    GateDetail,
    PaperTradeRow,
    SignalRow,
)
from arbengine.pipeline.records import paper_row, position_from_row
from arbengine.settings import DatabaseSettings
from arbengine.store import engine_sql
from arbengine.store.database import open_database
from arbengine.store.engine_records import EngineRecords
from arbengine.trading.paper import ExitRule, FundingSettlement, PaperBook, open_position

T0 = 1_700_002_800_000  # on the hour, as funding times are
MIN = 60_000
RULE = ExitRule(sl_atr=1.5, tp1_atr=1.5, tp1_fraction=0.5, tp2_atr=3.0, fee_bps=4.0,
                slippage_bps=1.0, breakeven_after_tp1=True, max_hold_ms=600 * MIN)  # fmt: skip


def positions() -> PaperBook:
    """Two trades on one book: one half closed at tp1 with funding charged, one stopped out."""
    book = PaperBook()
    for symbol, direction in (("BTCUSDT", 1), ("ETHUSDT", -1)):
        position = open_position(
            strategy="s",
            strategy_hash="h" * 64,
            symbol=symbol,
            direction=direction,
            tick=T0,
            price=100.0,
            atr=2.0,
            rule=RULE,
        )
        book.add(position)
    book.on_trades("BTCUSDT", [1, 2], [T0 + MIN, T0 + 61 * MIN], [101.0, 103.5])
    book.on_funding(FundingSettlement("BTCUSDT", T0 + 60 * MIN, 0.0001, 103.0))
    book.on_trades("ETHUSDT", [7], [T0 + 2 * MIN], [104.0])
    return book


@pytest.mark.asyncio
async def test_paper_trades_come_back_from_the_table_as_they_were(database_url: str) -> None:
    book = positions()
    (still_open,), (closed,) = book.open, book.closed
    assert still_open.tp1_done, "the open trade must carry state"
    assert still_open.funding, "the open trade must carry state"
    rows = [paper_row(p) for p in (still_open, closed)]
    async with open_database(DatabaseSettings(url=database_url), owner=False) as db:
        async with db.acquire() as conn:
            await engine_sql.upsert_paper_trades(conn, rows)
            await engine_sql.upsert_paper_trades(conn, rows)  # a rewrite changes nothing
        restored = await EngineRecords(db).open_paper()
        assert restored == [rows[0]]
        assert all(isinstance(r, PaperTradeRow) for r in restored)
        assert position_from_row(restored[0]) == still_open

        later = PaperBook()
        later.restore([position_from_row(restored[0])])
        later.on_trades(
            "BTCUSDT",
            [3],
            [
                T0 + 62 * MIN,
            ],
            [90.0],
        )
        async with db.acquire() as conn:
            await engine_sql.upsert_paper_trades(conn, [paper_row(later.closed[0])])
        assert await EngineRecords(db).open_paper() == []
        async with db.acquire() as conn:
            stored = await conn.fetchval("SELECT count(*) FROM paper_trades")
        assert stored == 2


def evaluation(symbol: str, tick: int, fired: bool) -> EvaluationRow:
    return EvaluationRow(
        strategy="s", strategy_hash="h" * 64, symbol=symbol, tick=tick, direction=1,
        score=62.5 if fired else 20.0, coverage=100.0, fired=fired,
        reason=None if fired else "below_threshold", features={"flow_fast": 0.25},
        contributions=EvaluationBreakdown(
            contributions={"flow_fast": 1.25},
            factors={"flow_fast": FactorDetail(weight=2.0, value=0.25, score=0.625,
                                               contribution=1.25)},
        ),
        gates={"spread": GateDetail(low=None, high=5.0, value=1.0, passed=True)},
    )  # fmt: skip


def signal(symbol: str, tick: int) -> SignalRow:
    return SignalRow(
        strategy="s", strategy_hash="h" * 64, symbol=symbol, tick=tick, direction=1, score=62.5,
        coverage=100.0, price=100.0, atr=2.0, features={"flow_fast": 0.25},
        contributions={"flow_fast": 1.25},
    )  # fmt: skip


@pytest.mark.asyncio
async def test_the_restart_state_is_the_last_stored_and_fired_tick(database_url: str) -> None:
    evaluations = [
        evaluation("BTCUSDT", T0, True),
        evaluation("BTCUSDT", T0 + 15_000, False),
        evaluation("ETHUSDT", T0, False),
    ]
    async with open_database(DatabaseSettings(url=database_url), owner=False) as db:
        records = EngineRecords(db)
        assert (await records.last_evaluated(), await records.last_fired()) == ({}, {})
        async with db.acquire() as conn:
            await engine_sql.insert_evaluations(conn, evaluations)
            await engine_sql.insert_signals(conn, [signal("BTCUSDT", T0)])
            stored = await conn.fetchrow(
                "SELECT contributions::text, gates::text FROM signal_indicators WHERE tick = $1 "
                "AND symbol = 'BTCUSDT'",
                T0,
            )
        assert await records.last_evaluated() == {
            ("s", "BTCUSDT"): T0 + 15_000,
            ("s", "ETHUSDT"): T0,
        }
        assert await records.last_fired() == {("s", "BTCUSDT"): T0}
    # The JSON columns keep their documented shape.
    assert orjson.loads(stored["contributions"]) == {
        "contributions": {"flow_fast": 1.25},
        "factors": {
            "flow_fast": {"weight": 2.0, "value": 0.25, "score": 0.625, "contribution": 1.25}
        },
    }
    assert orjson.loads(stored["gates"]) == {
        "spread": {"low": None, "high": 5.0, "value": 1.0, "passed": True}
    }
