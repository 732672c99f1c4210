"""Live trading's records through the real tables: what is written is what comes back,
every write may be made twice, and a stale or repeated report changes nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest

from arbengine.domain.events import Signal
from arbengine.domain.live_rows import (
    Fill,
    LiveConfigRow,
    LiveEventRow,
    LiveOrderRow,
    LiveTradeRow,
    PlanDifference,
    StatusChange,
    TradeClose,
)
from arbengine.settings import DatabaseSettings
from arbengine.store.database import Database, open_database
from arbengine.store.live_records import LiveRecords
from arbengine.store.migrations import MigrationError, apply_migrations, available_migrations

T0 = 1_700_002_800_000
MIN = 60_000


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    async with open_database(DatabaseSettings(url=database_url), owner=False) as database:
        yield database


TRADE = LiveTradeRow(
    strategy="v52",
    strategy_hash="h" * 64,
    symbol="BTCUSDT",
    signal_tick=T0,
    direction=1,
    status="pending",
    quantity=0.004,
    stop_price=97_500.0,
    r_distance=2_500.0,
    risk_usd=10.0,
    paper_entry_tick=T0,
)
ENTRY = LiveOrderRow(
    client_order_id="arb-v52-BTCUSDT-1700002800000-e",
    kind="order",
    role="entry",
    symbol="BTCUSDT",
    side="BUY",
    type="MARKET",
    quantity=0.004,
    status="PENDING",
    status_time=T0 + 10,
)


def a_trade(**changes: Any) -> LiveTradeRow:
    return msgspec.structs.replace(TRADE, **changes)


def an_order(**changes: Any) -> LiveOrderRow:
    return msgspec.structs.replace(ENTRY, **changes)


async def test_an_order_keeps_its_status_history_and_ignores_stale_reports(db: Database) -> None:
    records = LiveRecords(db)
    trade_id = await records.upsert_trade(a_trade())
    sent = await records.upsert_order(an_order(trade_id=trade_id))
    assert without_write_clock(sent.status_history) == [StatusChange("PENDING", T0 + 10)]
    assert sent.created_at is not None
    assert sent.is_open

    unknown = an_order(status="UNKNOWN", status_time=T0 + 5_010)
    await records.upsert_order(unknown, note="timeout after sending")
    await records.upsert_order(unknown, note="timeout after sending")  # a retried write
    filled = an_order(
        status="FILLED",
        status_time=T0 + 6_000,
        exchange_order_id=4_711,
        filled_quantity=0.004,
        average_price=100_010.0,
    )
    stored = await records.upsert_order(filled)
    # A late NEW from the stream (older, and leaving a final status) changes nothing.
    late = await records.upsert_order(an_order(status="NEW", status_time=T0 + 20))
    again = await records.upsert_order(an_order(status="NEW", status_time=T0 + 7_000))

    assert late == again == stored == await records.order(filled.client_order_id)
    assert without_write_clock(stored.status_history) == [
        StatusChange("PENDING", T0 + 10),
        StatusChange("UNKNOWN", T0 + 5_010, "timeout after sending"),
        StatusChange("FILLED", T0 + 6_000),
    ]
    assert (stored.exchange_order_id, stored.filled_quantity, stored.average_price) == (
        4_711,
        0.004,
        100_010.0,
    )
    assert (stored.trade_id, stored.kind, stored.role, stored.quantity) == (
        trade_id,
        "order",
        "entry",
        0.004,
    )
    assert not stored.is_open
    assert await records.open_orders() == []
    assert await records.order("no-such-id") is None
    # The database's clock at each change: the order they were written in, to the µs.
    written = [c.written_us for c in stored.status_history]
    assert written == sorted(set(written))
    assert written[0] == sent.status_history[0].written_us


def without_write_clock(history: list[StatusChange]) -> list[StatusChange]:
    assert all(c.written_us is not None for c in history)
    return [msgspec.structs.replace(c, written_us=None) for c in history]


async def test_an_order_the_exchange_never_had_may_be_sent_again(db: Database) -> None:
    records = LiveRecords(db)
    await records.upsert_order(an_order(status="UNKNOWN", status_time=T0 + 100))
    await records.upsert_order(an_order(status="NOT_FOUND", status_time=T0 + 200))
    assert await records.open_orders() == []
    resent = await records.upsert_order(an_order(status="PENDING", status_time=T0 + 300))
    assert [c.status for c in resent.status_history] == [
        "UNKNOWN",
        "NOT_FOUND",
        "PENDING",
    ]
    assert [o.client_order_id for o in await records.open_orders()] == [resent.client_order_id]


async def test_open_orders_are_the_unfinished_ones_by_symbol(db: Database) -> None:
    records = LiveRecords(db)
    trade_id = await records.upsert_trade(a_trade(status="open"))
    stop = an_order(
        client_order_id="arb-sl",
        kind="algo",
        role="stop_loss",
        side="SELL",
        type="STOP_MARKET",
        quantity=None,
        trigger_price=97_500.0,
        close_position=True,
        status="NEW",
        trade_id=trade_id,
    )
    tp = an_order(
        client_order_id="arb-tp1",
        kind="algo",
        role="take_profit_1",
        side="SELL",
        type="TAKE_PROFIT_MARKET",
        quantity=0.002,
        trigger_price=103_750.0,
        reduce_only=True,
        status="NEW",
        trade_id=trade_id,
    )
    other = an_order(client_order_id="arb-eth", symbol="ETHUSDT", status="NEW")
    for order in (stop, tp, other):
        await records.upsert_order(order)
    await records.upsert_order(an_order(client_order_id="arb-tp1", status="FINISHED",
                                        status_time=T0 + MIN))  # fmt: skip

    assert [o.client_order_id for o in await records.open_orders()] == ["arb-sl", "arb-eth"]
    (open_stop,) = await records.open_orders("BTCUSDT")
    assert (open_stop.kind, open_stop.close_position, open_stop.quantity) == ("algo", True, None)
    assert [o.client_order_id for o in await records.orders_of_trade(trade_id)] == [
        "arb-sl",
        "arb-tp1",
    ]
    now = datetime.now(UTC)
    hour = timedelta(hours=1)
    between = await records.orders_between(now - hour, now + hour, symbol="ETHUSDT")
    assert [o.client_order_id for o in between] == ["arb-eth"]
    assert await records.orders_between(now + hour, now + 2 * hour) == []


async def test_a_trade_keeps_the_signal_it_was_written_with(db: Database) -> None:
    """What a restart rebuilds the trade's plan from; a write without it keeps it."""
    records = LiveRecords(db)
    signal = Signal(tick_ms=T0, symbol="BTCUSDT", strategy="v52", strategy_hash="h" * 64,
                    direction=1, score=81.5, coverage=100.0, price=100_000.1, atr=1_666.7,
                    features={"rsi": 28.0}, contributions={"rsi": 20.0})  # fmt: skip
    trade_id = await records.upsert_trade(a_trade(signal=signal))
    assert await records.upsert_trade(a_trade(status="open")) == trade_id
    stored = await records.trade(trade_id)
    assert stored is not None
    assert (stored.status, stored.signal) == ("open", signal)
    assert (await records.open_trades())[0].signal == signal


async def test_a_trade_round_trips_and_its_first_close_stands(db: Database) -> None:
    records = LiveRecords(db)
    trade_id = await records.upsert_trade(a_trade())
    assert await records.upsert_trade(a_trade()) == trade_id  # a retried write: same row
    entry = Fill(time=T0 + 900, price=100_010.0, quantity=0.004, fee=0.16,
                 client_order_id="arb-e", trade_id=1)  # fmt: skip
    opened = a_trade(
        status="open",
        entry_price=100_010.0,
        entry_fills=[entry],
        fees=0.16,
        opened_at=T0 + 900,
        plan_differences=[PlanDifference("stop_price", 97_512.5, 97_500.0, "tick size 0.1")],
    )
    assert await records.upsert_trade(opened) == trade_id
    assert await records.open_trades() == [msgspec.structs.replace(opened, id=trade_id)]
    assert await records.trade_for_signal("v52", "BTCUSDT", T0) == msgspec.structs.replace(
        opened, id=trade_id
    )

    exit_fill = Fill(time=T0 + 30 * MIN, price=97_490.0, quantity=0.004, fee=0.156,
                     client_order_id="arb-sl", trade_id=2, reason="sl")  # fmt: skip
    close = TradeClose(
        closed_at=T0 + 30 * MIN,
        exit_reason="sl",
        exit_fills=[exit_fill],
        fees=0.316,
        funding=-0.01,
        realised_r=-1.04,
        realised_usd=-10.4,
    )
    assert await records.close_trade(trade_id, close) is True
    later = msgspec.structs.replace(close, exit_reason="tp2", realised_r=2.0)
    assert await records.close_trade(trade_id, later) is False  # found closed by another path
    # A stale state written after the close does not reopen it.
    assert await records.upsert_trade(opened) == trade_id

    stored = await records.trade(trade_id)
    assert stored is not None
    assert (stored.status, stored.exit_reason, stored.realised_r, stored.closed_at) == (
        "closed",
        "sl",
        -1.04,
        T0 + 30 * MIN,
    )
    assert (stored.entry_fills, stored.exit_fills) == ([entry], [exit_fill])
    assert stored.plan_differences == opened.plan_differences
    assert (stored.paper_entry_tick, stored.fees, stored.funding) == (T0, 0.316, -0.01)
    assert await records.open_trades() == []
    assert await records.trades_between(T0, T0 + 1) == [stored]
    assert await records.trades_between(T0, T0 + 1, symbol="ETHUSDT") == []
    assert await records.trades_between(T0 + 1, T0 + MIN) == []
    assert await records.close_trade(trade_id + 100, close) is False


async def test_events_are_stored_once_and_read_by_time_and_symbol(db: Database) -> None:
    records = LiveRecords(db)
    at = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
    placed = LiveEventRow(
        at=at,
        kind="live.order_placed",
        symbol="BTCUSDT",
        strategy="v52",
        detail={"client_order_id": "arb-e", "qty": 0.004},
        who="executor",
    )
    orphan = LiveEventRow(
        at=at + timedelta(seconds=30),
        level="warning",
        kind="live.orphan",
        symbol="ETHUSDT",
        detail={"policy": "protect"},
        who="reconciler",
    )
    for event in (placed, placed, orphan, orphan):  # each written twice
        await records.append_event(event)

    assert await records.events_between(at, at + timedelta(minutes=1)) == [placed, orphan]
    assert await records.events_between(at, at + timedelta(minutes=1), symbol="ETHUSDT") == [orphan]
    assert await records.events_between(at, at + timedelta(seconds=30)) == [placed]
    assert await records.events_between(at, at + timedelta(minutes=1), limit=1) == [placed]


async def test_the_latest_config_change_is_in_force_and_the_history_kept(db: Database) -> None:
    records = LiveRecords(db)
    assert await records.current_config() is None
    first = await records.set_config(LiveConfigRow(strategies=["v52"], risk_per_trade_usd=10.0,
                                                   max_positions=1, paused=False,
                                                   changed_by="admin:alice"))  # fmt: skip
    assert first.changed_at is not None
    pause = LiveConfigRow(strategies=["v52", "v51"], risk_per_trade_usd=5.0, max_positions=2,
                          paused=True, changed_by="admin:bob")  # fmt: skip
    second = await records.set_config(pause)
    assert await records.set_config(pause) == second  # a retried write
    assert await records.current_config() == second
    assert (second.strategies, second.paused, second.changed_by) == (
        ["v52", "v51"],
        True,
        "admin:bob",
    )
    assert await records.config_history() == [second, first]


async def test_the_unused_placeholder_tables_are_replaced_only_when_empty(
    database_url: str,
) -> None:
    """Migration 0001 made live_* placeholders: 0011 replaces them, but never drops rows."""
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, "
                           "name text NOT NULL, checksum text NOT NULL, "
                           "applied_at timestamptz NOT NULL DEFAULT now())")  # fmt: skip
        for migration in available_migrations():
            if migration.version >= 11:
                break
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
        await conn.execute("INSERT INTO live_events (kind, severity) VALUES ('x', 'info')")
        with pytest.raises(
            MigrationError,
            match=r"^migration 0011_live_trading.sql refused: live_trades, live_config or "
            "live_events holds rows: rename those tables",
        ):
            await apply_migrations(conn)
        await conn.execute("DELETE FROM live_events")
        assert [name for name in await apply_migrations(conn) if name.startswith("0011")]
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'live_events'"
        )
        assert "event_id" in {r["column_name"] for r in columns}
    finally:
        await conn.close()
