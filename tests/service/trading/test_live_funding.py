"""Funding in a live trade's result: the FUNDING_FEE income the exchange paid or charged
the position between its opening and its close (``/fapi/v1/income``), recorded on the trade
at its close (by the executor, or by reconciliation for a trade the exchange closed) and
counted in its realised USD and R."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import aiohttp
import pytest

from arbengine.exchange.rest import BinanceRest
from arbengine.runtime.clock import ManualClock
from arbengine.sim import SimServer
from arbengine.store.live_records import LiveRecords
from arbengine.trading.live_executor import LiveExecutor
from arbengine.trading.live_reconcile import CloseWithFills
from arbengine.trading.live_reconciler import LiveReconciler, ReconcileSettings
from tests.service.sim.conftest import BASE
from tests.service.sim.simclient import signed
from tests.service.trading.conftest import RISK_USD, advance
from tests.service.trading.test_live_exits import assert_closed, opened
from tests.service.trading.test_live_reconciler import orphan

FUNDING_TIME = 1_700_006_400_000  # 2023-11-15T00:00Z, a funding time of BTCUSDT (every 8 h)
START = FUNDING_TIME - 60_000


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    """The sim a minute before a funding time (overrides the package's fixture)."""
    server = SimServer(replace(BASE, check_timestamps=False, start_ms=START))
    await server.start()
    await server.advance_to(START + 10_000)
    yield server
    await server.stop()


async def funding_income(http: aiohttp.ClientSession, sim: SimServer) -> list[dict]:
    status, rows, _ = await signed(
        http, sim, "GET", "/fapi/v1/income", {"symbol": "BTCUSDT", "incomeType": "FUNDING_FEE"}
    )
    assert status == 200, rows
    assert isinstance(rows, list)
    return rows


async def test_the_funding_paid_while_open_is_in_the_trades_result(
    sim: SimServer,
    http: aiohttp.ClientSession,
    market_time: ManualClock,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    trade_id = await opened(executor, http, sim)
    assert await funding_income(http, sim) == []
    await advance(sim, market_time, 60_000)  # through the funding time
    [income] = await funding_income(http, sim)
    assert income["time"] >= FUNDING_TIME
    assert float(income["income"]) != 0
    await executor.flatten(trade_id)

    await assert_closed(executor, records, http, sim, trade_id, "flatten")
    stored = await records.trade(trade_id)
    assert stored is not None
    assert stored.funding == pytest.approx(float(income["income"]))
    assert stored.entry_price is not None
    gross = sum((f.price - stored.entry_price) * f.quantity for f in stored.exit_fills)
    assert stored.realised_usd == pytest.approx(gross - stored.fees + stored.funding)
    assert stored.realised_r == pytest.approx(
        stored.realised_usd / (stored.r_distance * stored.quantity)
    )


async def test_reconciliation_closing_a_trade_the_exchange_closed_counts_its_funding(
    sim: SimServer,
    http: aiohttp.ClientSession,
    market_time: ManualClock,
    rest: BinanceRest,
    records: LiveRecords,
    executor: LiveExecutor,
) -> None:
    trade_id = await opened(executor, http, sim)
    trade = executor.trade(trade_id)
    assert trade is not None
    await advance(sim, market_time, 60_000)  # through the funding time
    [income] = await funding_income(http, sim)
    await orphan(http, sim, "SELL", str(trade.sized.qty))  # closed by hand on the exchange
    recon = LiveReconciler(rest, records, ReconcileSettings("protect", RISK_USD))

    assert CloseWithFills(trade_id, "BTCUSDT") in await recon.reconcile_once()
    stored = await records.trade(trade_id)
    assert stored is not None
    assert stored.status == "closed"
    assert stored.funding == pytest.approx(float(income["income"]))
    assert stored.entry_price is not None
    gross = sum((f.price - stored.entry_price) * f.quantity for f in stored.exit_fills)
    assert stored.realised_usd == pytest.approx(gross - stored.fees + stored.funding)
