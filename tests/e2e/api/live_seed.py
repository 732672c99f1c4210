"""Live trading rows as the executor writes them (through store/live_sql), for the API tests.

Values are chosen so the expected answers can be worked out by hand:

- v52 BTCUSDT, 10 h ago: long, closed at +1.3 R (13 USD), fees 0.2, funding −0.05;
  entered at 100.1 where its paper twin (closed at +1.5 R) entered at 100.0 with
  r_distance 2: entry slippage 10 bps, 0.05 R; out at TP2 at 102.7 where the paper's
  TP2 filled at 102.6: exit slippage −0.05 R (−9.75 bps, better); fees 0.02 R, funding
  −0.005 R, the paper's none; 0.2 R worse than paper.
- v52 ETHUSDT, 8 h ago: short, closed at −1 R (−10 USD), fees 0.1, no twin.
- v52 SOLUSDT, 1 h ago: short, open, protected by a stop-loss and a take-profit (algo
  orders still NEW); its entry order FILLED.
- v51 BTCUSDT, 30 min ago: pending, its entry order UNKNOWN (sent, not answered): not
  protected.
- v52 XRPUSDT, 2 h ago: not_opened (the entry was rejected).
- Events: an info (order placed, v52 SOLUSDT, 50 min ago), a warning (orphan found,
  XRPUSDT, 20 min ago) and an error (v51 BTCUSDT, 10 min ago).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg
import msgspec

from arbengine.domain.engine_rows import ExitRule, PaperExit, PaperTradeExits, PaperTradeState
from arbengine.domain.live_rows import Fill, LiveEventRow, LiveOrderRow, LiveTradeRow
from arbengine.store import live_sql

MINUTE = 60_000
HOUR = 3_600_000


@dataclass(frozen=True)
class LiveSeed:
    now: int
    won: int
    """The v52 BTCUSDT trade with a paper twin."""
    lost: int
    open: int
    """The v52 SOLUSDT trade, protected."""
    pending: int
    not_opened: int


def _trade(**fields: object) -> LiveTradeRow:
    base: dict[str, object] = {
        "strategy_hash": "h52",
        "quantity": 1.0,
        "stop_price": 98.0,
        "r_distance": 2.0,
        "risk_usd": 10.0,
    }
    return LiveTradeRow(**{**base, **fields})  # type: ignore[arg-type]


def _order(client_id: str, trade_id: int, role: str, **fields: object) -> LiveOrderRow:
    return LiveOrderRow(client_order_id=client_id, trade_id=trade_id, role=role, **fields)  # type: ignore[arg-type]


async def seed_live_data(conn: asyncpg.Connection, now: int) -> LiveSeed:
    won_tick, lost_tick = now - 10 * HOUR, now - 8 * HOUR
    await conn.execute(
        "INSERT INTO paper_trades (strategy, strategy_hash, symbol, direction, entry_tick, "
        "entry_price, r_distance, stop_loss, quantity, risk_usd, status, exits, closed_at, "
        "result_r, result_usd) VALUES ('v52', 'h52', 'BTCUSDT', 1, $1, 100.0, 2.0, 98.0, 5.0, "
        "10.0, 'closed', $3::jsonb, $2, 1.5, 15.0)",
        won_tick,
        won_tick + HOUR,
        msgspec.json.encode(
            PaperTradeExits(
                fills=[PaperExit(won_tick + HOUR, 7, 102.6, 1.0, "tp2")],
                funding=[],
                state=PaperTradeState(0.0, False, False, won_tick + HOUR),
                rule=ExitRule(sl_atr=1.5, tp2_atr=3.0, risk_usd=10.0),
            )
        ).decode(),
    )
    won = await live_sql.upsert_trade(
        conn,
        _trade(
            strategy="v52",
            symbol="BTCUSDT",
            signal_tick=won_tick,
            direction=1,
            status="closed",
            quantity=5.0,
            entry_price=100.1,
            entry_fills=[
                Fill(time=won_tick + 50, price=100.1, quantity=5.0, fee=0.1, client_order_id="e1")
            ],
            exit_fills=[
                Fill(
                    time=won_tick + HOUR,
                    price=102.7,
                    quantity=5.0,
                    fee=0.1,
                    client_order_id="x1",
                    reason="tp2",
                )
            ],
            fees=0.2,
            funding=-0.05,
            realised_r=1.3,
            realised_usd=13.0,
            exit_reason="tp2",
            paper_entry_tick=won_tick,
            opened_at=won_tick + 50,
            closed_at=won_tick + HOUR,
        ),
    )
    lost = await live_sql.upsert_trade(
        conn,
        _trade(
            strategy="v52",
            symbol="ETHUSDT",
            signal_tick=lost_tick,
            direction=-1,
            status="closed",
            entry_price=2000.0,
            stop_price=2020.0,
            r_distance=20.0,
            fees=0.1,
            realised_r=-1.0,
            realised_usd=-10.0,
            exit_reason="sl",
            opened_at=lost_tick + 40,
            closed_at=lost_tick + 2 * HOUR,
        ),
    )
    open_tick = now - HOUR
    opened = await live_sql.upsert_trade(
        conn,
        _trade(
            strategy="v52",
            symbol="SOLUSDT",
            signal_tick=open_tick,
            direction=-1,
            status="open",
            entry_price=50.0,
            stop_price=51.0,
            r_distance=1.0,
            opened_at=open_tick + 30,
        ),
    )
    pending = await live_sql.upsert_trade(
        conn,
        _trade(
            strategy="v51",
            strategy_hash="h51",
            symbol="BTCUSDT",
            signal_tick=now - 30 * MINUTE,
            direction=1,
            status="pending",
        ),
    )
    not_opened = await live_sql.upsert_trade(
        conn,
        _trade(
            strategy="v52",
            symbol="XRPUSDT",
            signal_tick=now - 2 * HOUR,
            direction=1,
            status="not_opened",
            quantity=0.0,
        ),
    )
    common = {"symbol": "SOLUSDT", "status_time": open_tick + 30}
    for order in (
        _order(
            "e-sol",
            opened,
            "entry",
            kind="order",
            side="SELL",
            type="MARKET",
            quantity=10.0,
            status="FILLED",
            filled_quantity=10.0,
            average_price=50.0,
            exchange_order_id=11,
            **common,
        ),
        _order(
            "sl-sol",
            opened,
            "sl",
            kind="algo",
            side="BUY",
            type="STOP_MARKET",
            trigger_price=51.0,
            close_position=True,
            status="NEW",
            exchange_order_id=12,
            **common,
        ),
        _order(
            "tp1-sol",
            opened,
            "tp1",
            kind="algo",
            side="BUY",
            type="TAKE_PROFIT_MARKET",
            quantity=5.0,
            trigger_price=48.5,
            reduce_only=True,
            status="NEW",
            exchange_order_id=13,
            **common,
        ),
        _order(
            "e-btc",
            pending,
            "entry",
            kind="order",
            side="BUY",
            type="MARKET",
            quantity=5.0,
            symbol="BTCUSDT",
            status="UNKNOWN",
            status_time=now - 29 * MINUTE,
        ),
        _order(
            "e-xrp",
            not_opened,
            "entry",
            kind="order",
            side="BUY",
            type="MARKET",
            quantity=5.0,
            symbol="XRPUSDT",
            status="REJECTED",
            status_time=now - 2 * HOUR,
        ),
    ):
        await live_sql.upsert_order(conn, order)
    await live_sql.upsert_order(
        conn,
        _order(
            "sl-sol",
            opened,
            "sl",
            kind="algo",
            side="BUY",
            type="STOP_MARKET",
            trigger_price=51.0,
            close_position=True,
            status="NEW",
            exchange_order_id=12,
            symbol="SOLUSDT",
            status_time=open_tick + 40,
        ),
        note="acknowledged",
    )

    def at(ms: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ms / 1000, dt.UTC)

    for event in (
        LiveEventRow(
            at=at(now - 50 * MINUTE),
            kind="live.order_placed",
            symbol="SOLUSDT",
            strategy="v52",
            detail={"client_order_id": "sl-sol"},
            who="executor",
        ),
        LiveEventRow(
            at=at(now - 20 * MINUTE),
            level="warning",
            kind="live.orphan_found",
            symbol="XRPUSDT",
            detail={"quantity": 3.0},
            who="reconciler",
        ),
        LiveEventRow(
            at=at(now - 10 * MINUTE),
            level="error",
            kind="live.entry_unknown",
            symbol="BTCUSDT",
            strategy="v51",
            detail={},
            who="executor",
        ),
    ):
        await live_sql.append_event(conn, event)
    return LiveSeed(now, won, lost, opened, pending, not_opened)
