"""Parity: the daemon on the sim trades the shipped v52 strategy live and on paper from the
same signals, and each live trade is its paper twin plus the recorded costs.

The strategy is ``strategies/v52.json`` as shipped in everything the comparison is about:
its name, 15 s tick, exit plan (stop 1.5 ATR, TP1 1.5 ATR for half, breakeven, TP2
3 ATR, 70 min hold), costs and paper settings. Only what decides *when* it fires is the
engine tests' probe (short windows, few inputs, a 1-minute cooldown), on BTCUSDT alone:
v52's own rule needs a day of history and inputs the sim does not move on demand, and
parity is a property of the exits, not of the firing rule. (max_open_per_symbol = 1 as
in v52, so the paper, like the live side, holds one position at a time.)

The sim's clock is manual: the test moves it in small steps until a live trade opens,
holds it while the daemon protects the position, then jumps the price (``shock_bps``)
through the level each scenario wants: the stop; TP1 then back through the breakeven
stop; TP1 then TP2; and steps on while the paper waits for the tick that holds its exit
to be over (the engine walks a tick's trades once the tick ends). Both sides see the
same tape. Checked for every closed live trade (every driven one is): its
paper twin exists (same strategy, symbol, tick = ``paper_entry_tick``, direction; the
signal row is the same), both exited by the same rules in the same order, and
live R − paper R = −entry slippage − exit slippage − (fees − paper fees) + (funding −
paper funding) + split (``domain/live_parity.py``) within 1e-6 R, the split (the lot
step's TP1 quantity against the paper's exact half) within 0.02 R.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest

from arbengine.domain.engine_rows import PaperTradeExits
from arbengine.domain.live_parity import PaperTwin, compare, explained_r
from arbengine.domain.live_rows import LiveTradeRow
from arbengine.sim.server import SimServer
from tests.conftest import REPO
from tests.e2e.engine.conftest import PROBE, write_strategy
from tests.e2e.live.conftest import fetch
from tests.service.sim.simclient import control
from tests.support.daemon import DaemonProcess
from tests.support.waiting import eventually

SYMBOL = "BTCUSDT"
SCENARIOS = (("sl",), ("tp1", "breakeven"), ("tp1", "tp2"))
IDENTITY_TOLERANCE_R = 1e-6
SPLIT_TOLERANCE_R = 0.02


def parity_v52() -> dict[str, Any]:
    shipped = json.loads((REPO / "strategies" / "v52.json").read_text())
    firing = {k: PROBE[k] for k in ("windows", "atr_percentile_min_values", "direction",
                                    "factors")}  # fmt: skip
    doc = {**shipped, **firing, "symbols": [SYMBOL]}
    doc.pop("gates", None)
    doc["entry"] = {**PROBE["entry"], "max_open_per_symbol": 1}
    return doc


@pytest.fixture
def parity_env(live_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    strategies = tmp_path / "parity-strategies"
    strategies.mkdir()
    write_strategy(strategies, parity_v52(), "v52.json")
    return {
        **live_env,
        "ARB_ENGINE_STRATEGIES_DIR": str(strategies),
        "ARB_LIVE_STRATEGIES": "v52",
        "ARB_LIVE_RISK_PER_TRADE_USD": "100",  # v52's paper risk: a quantity of many lot steps
    }


class Market:
    """The sim's clock and BTCUSDT's price, moved by the test."""

    def __init__(self, sim: SimServer, http: aiohttp.ClientSession, url: str) -> None:
        self.sim, self.http, self.url = sim, http, url

    async def step(self, ms: int = 250) -> None:
        await self.sim.advance_to(self.sim.sim_time_ms + ms)

    async def mid(self) -> float:
        async with self.http.get(f"{self.sim.control_url}/state") as response:
            state = (await response.json())["symbols"][SYMBOL]
        return (float(state["bid"]) + float(state["ask"])) / 2

    async def jump_to(self, target: float) -> None:
        """Move the mid to ``target`` from the next simulated second, and let 3 s of
        trades run there."""
        bps = (target / await self.mid() - 1) * 1e4
        await control(self.http, self.sim, "market", {"symbol": SYMBOL, "shock_bps": bps})
        for _ in range(12):
            await self.step()

    async def rows(self, query: str, *args: object) -> list[asyncpg.Record]:
        return await fetch(self.url, query, *args)


async def next_protected_trade(market: Market, seen: set[int]) -> asyncpg.Record:
    """Step the clock until a new live trade opens, then hold it (no trade runs) until the
    daemon has its stop on the exchange and the paper twin is stored."""

    async def opened() -> list[asyncpg.Record]:
        rows = await market.rows(
            "SELECT * FROM live_trades WHERE NOT (id = ANY($1::bigint[])) ORDER BY id",
            list(seen),
        )
        if not rows:
            await market.step()
        return rows

    [trade, *_] = await eventually(opened, 240, interval=0.05, what="a new live trade")

    async def protected() -> asyncpg.Record | None:
        rows = await market.rows(
            "SELECT t.* FROM live_trades t JOIN live_orders o ON o.trade_id = t.id "
            "JOIN paper_trades p ON p.strategy = t.strategy AND p.symbol = t.symbol "
            "AND p.entry_tick = t.paper_entry_tick "
            "WHERE t.id = $1 AND o.role = 'sl' AND o.status = 'NEW'",
            trade["id"],
        )
        return rows[0] if rows else None

    found = await eventually(protected, 30, what=f"live trade {trade['id']} protected")
    assert found is not None
    return found


async def paper_of(market: Market, trade: asyncpg.Record) -> asyncpg.Record:
    [paper] = await market.rows(
        "SELECT * FROM paper_trades WHERE strategy = $1 AND symbol = $2 AND entry_tick = $3",
        trade["strategy"], trade["symbol"], trade["paper_entry_tick"],
    )  # fmt: skip
    return paper


async def drive(market: Market, trade: asyncpg.Record, scenario: tuple[str, ...]) -> None:
    """Take the trade through ``scenario``'s exits, waiting for both sides at each."""
    paper = await paper_of(market, trade)
    d, e, r = paper["direction"], paper["entry_price"], paper["r_distance"]
    if scenario[0] == "sl":
        await market.jump_to(e - d * 1.6 * r)
    else:
        await market.jump_to(e + d * 1.5 * r)  # past TP1 (1 R), short of TP2 (2 R)

        async def at_breakeven() -> bool:
            moved = await market.rows(
                "SELECT 1 FROM live_orders WHERE trade_id = $1 AND role = 'breakeven_sl' "
                "AND status = 'NEW'",
                trade["id"],
            )
            tp1 = await market.rows(
                "SELECT 1 FROM paper_trades WHERE id = $1 AND exits->'fills' @> "
                """'[{"reason": "tp1"}]'::jsonb""",
                paper["id"],
            )
            if moved and not tp1:
                await market.step()  # the paper walks a tick's trades once the tick is over
            return bool(moved and tp1)

        await eventually(at_breakeven, 30, what=f"trade {trade['id']} at breakeven")
        if scenario[1] == "breakeven":
            await market.jump_to(e - d * 0.6 * r)
        else:
            await market.jump_to(e + d * 2.6 * r)

    async def both_closed() -> bool:
        [live] = await market.rows("SELECT * FROM live_trades WHERE id = $1", trade["id"])
        [twin] = await market.rows("SELECT * FROM paper_trades WHERE id = $1", paper["id"])
        sides[:] = [dict(live), dict(twin)]
        if live["status"] == "closed" and twin["status"] != "closed":
            await market.step()  # the paper walks a tick's trades once the tick is over
        return live["status"] == twin["status"] == "closed"

    sides: list[dict[str, Any]] = []
    try:
        await eventually(both_closed, 60, what=f"trade {trade['id']} closed on both sides")
    except AssertionError as exc:
        orders = await market.rows(
            "SELECT role, type, status, status_history::text FROM live_orders WHERE trade_id = $1",
            trade["id"],
        )
        raise AssertionError(f"{exc}: {scenario} {sides} {[dict(o) for o in orders]}") from None


def live_row(record: asyncpg.Record) -> LiveTradeRow:
    fields = {k: record[k] for k in LiveTradeRow.__struct_fields__ if k in record}
    for name in ("entry_fills", "exit_fills", "plan_differences", "signal"):
        if fields.get(name) is not None:
            fields[name] = json.loads(fields[name])
    return msgspec.convert(fields, LiveTradeRow)


def paper_twin(record: asyncpg.Record) -> PaperTwin:
    exits = msgspec.json.decode(record["exits"], type=PaperTradeExits)
    return PaperTwin(
        entry_price=record["entry_price"],
        r_distance=record["r_distance"],
        risk_usd=record["risk_usd"],
        fills=exits.fills,
        fees=record["fees"],
        funding=record["funding"],
        result_r=record["result_r"],
        closed=record["status"] == "closed",
    )


async def test_live_trades_of_v52_are_their_paper_twins_plus_the_recorded_costs(
    live_sim: SimServer, parity_env: dict[str, str], database_url: str, spawn_daemon
) -> None:
    sim = live_sim
    daemon: DaemonProcess = await spawn_daemon(parity_env)
    await daemon.started()
    started = await daemon.wait_for("live.started")
    assert started["strategies"] == ["v52"]
    await daemon.wait_for("engine.warm_start")
    seen: set[int] = set()
    async with aiohttp.ClientSession() as http:
        for symbol in sim.config.symbols:  # quiet markets: the test's jumps decide the exits
            await control(http, sim, "market", {"symbol": symbol, "regime": "calm"})
        market = Market(sim, http, database_url)
        for scenario in SCENARIOS:
            trade = await next_protected_trade(market, seen)
            seen.add(trade["id"])
            await drive(market, trade, scenario)

        live = await market.rows("SELECT * FROM live_trades WHERE status = 'closed' ORDER BY id")
    # Every trade driven is closed; one the clock's last steps opened may still be open.
    assert seen <= {t["id"] for t in live}
    paths = []
    for record in live:
        # The same signal: the engine's signal row at the trade's tick, its direction.
        [signal] = await fetch(
            database_url,
            "SELECT * FROM signal_logs WHERE strategy = $1 AND symbol = $2 AND tick = $3",
            record["strategy"], record["symbol"], record["signal_tick"],
        )  # fmt: skip
        assert record["paper_entry_tick"] == record["signal_tick"]
        [paper] = await fetch(
            database_url,
            "SELECT * FROM paper_trades WHERE strategy = $1 AND symbol = $2 AND entry_tick = $3",
            record["strategy"], record["symbol"], record["paper_entry_tick"],
        )  # fmt: skip
        assert paper["status"] == "closed"
        assert signal["direction"] == paper["direction"] == record["direction"]
        trade, twin = live_row(record), paper_twin(paper)
        c = compare(trade, twin)
        # Exits by the same rule, in the same order.
        where = (dict(record), dict(paper))
        assert c.exit_reasons == c.paper_exit_reasons, (where, c)
        assert c.same_exits
        paths.append(tuple(c.exit_reasons))
        # The difference in R is the recorded slippage, fees and funding.
        explained = explained_r(c)
        assert explained is not None
        assert c.r_vs_paper == pytest.approx(explained, abs=IDENTITY_TOLERANCE_R), c
        assert c.split_r is not None
        assert abs(c.split_r) < SPLIT_TOLERANCE_R, c
        assert c.fees_r is not None
        assert c.fees_r > 0
        print(f"trade {record['id']}: {c.exit_reasons} live {trade.realised_r:+.4f} R, "
              f"paper {twin.result_r:+.4f} R, entry slip {c.entry_slippage_bps:+.2f} bps, "
              f"exit slip {c.exit_slippage_bps:+.2f} bps, fees {c.fees_r:.4f} R "
              f"(paper {c.paper_fees_r:.4f}), split {c.split_r:+.5f} R")  # fmt: skip
    assert set(SCENARIOS) <= set(paths), paths
