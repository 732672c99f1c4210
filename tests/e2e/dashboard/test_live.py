"""The Live page against a daemon trading live on the simulated exchange (no collection:
the live rows are seeded as the executor writes them, ``live_seed``), and against one
without live trading.

The sim holds a position no trade of ours accounts for (an orphan, reported by the
reconciler's first round, which runs at start); the rows are seeded after that round and
the next one is an hour away, so the open trades stay as seeded while the page shows them.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from playwright.async_api import expect

from arbengine.sim.server import SimConfig, SimServer
from tests.e2e.api.harness import ApiUnderTest, Session, running_api, start_api, stop_api
from tests.e2e.api.live_seed import LiveSeed, seed_live_data
from tests.e2e.dashboard.browser import NEEDS_BROWSER, check_page, log_in, open_page
from tests.e2e.live.conftest import sim_account
from tests.support.postgres import PgTestServer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asyncio(loop_scope="module"), NEEDS_BROWSER]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[SimServer]:
    now = int(time.time() * 1000) // 1000 * 1000
    config = SimConfig(port=0, manual=True, seed=16, trade_rate=1.0, start_ms=now - 60_000,
                       history_days=1)  # fmt: skip
    async with SimServer(config) as server:
        await server.advance_to(now)
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory, sim: SimServer
) -> AsyncIterator[ApiUnderTest]:
    await sim_account(sim, {"orphan": {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.010"}})
    async with running_api(
        pg_server,
        tmp_path_factory.mktemp("live"),
        {
            "ARB_EXCHANGE_REST_URL": sim.rest_url,
            "ARB_EXCHANGE_WS_URL": sim.market_ws_url,
            "ARB_EXCHANGE_COINBASE_URL": sim.coinbase_url,
            "ARB_EXCHANGE_API_KEY": sim.config.api_key,
            "ARB_EXCHANGE_API_SECRET": sim.config.api_secret,
            "ARB_LIVE_ENABLED": "true",
            "ARB_LIVE_STRATEGIES": "v52",
            "ARB_LIVE_REST_URL": sim.rest_url,
            "ARB_LIVE_PRIVATE_WS_URL": sim.private_ws_url,
            "ARB_LIVE_ORPHAN_POLICY": "alert",
            "ARB_LIVE_RECONCILE_INTERVAL": "1h",
        },
    ) as under_test:
        yield under_test


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seed(api: ApiUnderTest) -> LiveSeed:
    async def reconciled() -> bool:
        rows = await api.sql("SELECT 1 FROM live_events WHERE kind = 'reconcile.orphan_found'")
        return bool(rows)

    await eventually(reconciled, 30, what="the reconciler's first round")
    conn = await asyncpg.connect(api.db_url)
    try:
        return await seed_live_data(conn, int(time.time() * 1000))
    finally:
        await conn.close()


async def _admin(api: ApiUnderTest) -> Session:
    session = await api.new_user("operator")
    await api.sql("UPDATE users SET role = 'admin' WHERE id = $1", session.user_id)
    return session


async def test_an_admin_sees_the_live_records_and_pauses_entries_from_the_page(
    api: ApiUnderTest, seed: LiveSeed, browser: object
) -> None:
    admin = await _admin(api)
    async with open_page(browser, api.base) as tab:
        page = tab.page
        await log_in(tab, admin.username, admin.password, then="/live")
        risk = page.locator("#live-risk")
        await expect(risk.locator(".risk-state")).to_have_text("ACTIVE entries allowed")

        # The open SOLUSDT short with its stop at 51 and a take-profit for half at 48.5.
        sol = page.locator(f'#live-positions tr[data-trade="{seed.open}"]')
        await expect(sol.locator("td.side")).to_have_text("short")
        await expect(sol.locator("td.entry")).to_have_text("50.0000")
        await expect(sol.locator("td.stop")).to_have_text("51.0000")
        await expect(sol.locator("td.protected")).to_have_text("stop in place")
        await expect(sol.locator('td.orders li[data-role="sl"]')).to_have_text(
            "stop-loss stop market at 51.0000 (whole position) NEW"
        )
        await expect(sol.locator('td.orders li[data-role="tp1"]')).to_have_text(
            "TP1 take profit market at 48.5000 × 5.000 NEW"
        )
        # The pending entry nobody answered yet: no stop covers it.
        pending = page.locator(f'#live-positions tr[data-trade="{seed.pending}"]')
        await expect(pending.locator("td.protected")).to_have_text("no stop")

        # The won trade against its paper twin: entered 10 bps (0.05 R) worse, exited
        # 0.05 R better, 0.2 R behind paper in all.
        won = page.locator(f'#live-trades tr[data-trade="{seed.won}"]')
        await expect(won.locator("td.entry")).to_have_text("100.10")
        await expect(won.locator("td.paper-entry")).to_have_text("100.00")
        await expect(won.locator("td.entry-slip-bps")).to_have_text("+10.0 bps")
        await expect(won.locator("td.entry-slip-r")).to_have_text("+0.05 R")
        await expect(won.locator("td.exit-slip-r")).to_have_text("-0.05 R")
        await expect(won.locator("td.result")).to_have_text("+1.30 R")
        await expect(won.locator("td.paper-result")).to_have_text("+1.50 R")
        await expect(won.locator("td.vs-paper")).to_have_text("-0.20 R")
        await expect(won.locator("td.exits")).to_have_text("tp2")
        v52 = page.locator('#live-summary tr[data-strategy="v52"]')
        await expect(v52.locator("td.total-r")).to_have_text("+0.30 R")
        await expect(page.locator('#live-orders tr[data-order="sl-sol"] td.price')).to_have_text(
            "51.0000"
        )
        events = page.locator("#live-events")
        await expect(events.locator('tr[data-kind="live.orphan_found"] td.who')).to_have_text(
            "reconciler"
        )
        # This daemon's own reconciler found the sim's orphan at start.
        found = events.locator('tr[data-kind="reconcile.orphan_found"]')
        await expect(found.locator("td.level")).to_have_text("error")

        # Pause asks first, naming what happens; cancelling changes nothing.
        await page.click("#control-pause")
        await expect(page.locator("#confirm-title")).to_have_text("Pause live entries?")
        await expect(page.locator("#confirm-text")).to_contain_text("No new live trade is opened")
        await page.click("#confirm-no")
        await expect(page.locator("#confirm")).to_have_count(0)
        assert await api.sql("SELECT 1 FROM live_commands") == []

        await page.click("#control-pause")
        await page.click("#confirm-yes")
        await expect(page.locator("#live-ack-result")).to_have_text(
            "done pause: paused: no new entries, open trades still driven."
        )
        await expect(page.locator("#live-ack-state")).to_have_text(
            "Entries paused · positions on the exchange: BTCUSDT 0.010 · open orders: 0"
        )
        await expect(risk.locator(".risk-state")).to_have_text("ACTIVE entries paused")
        [command] = await api.sql("SELECT command, who, status FROM live_commands")
        assert dict(command) == {
            "command": "pause",
            "who": f"admin:{admin.username}",
            "status": "done",
        }
        await check_page(tab, "live")


async def test_an_admin_flattens_a_symbol_from_the_page(
    api: ApiUnderTest, seed: LiveSeed, browser: object
) -> None:
    admin = await _admin(api)
    async with open_page(browser, api.base) as tab:
        page = tab.page
        await log_in(tab, admin.username, admin.password, then="/live")
        # The symbols held: the orphan's on the exchange, the open trade's in the records.
        await expect(page.locator("#flatten-symbol option")).to_have_text(["BTCUSDT", "SOLUSDT"])
        await page.select_option("#flatten-symbol", "BTCUSDT")
        await page.click("#control-flatten-symbol")
        await expect(page.locator("#confirm-title")).to_have_text("Flatten BTCUSDT?")
        await expect(page.locator("#confirm-text")).to_contain_text("closed at market")
        await page.click("#confirm-yes")
        await expect(page.locator("#live-ack-result")).to_contain_text("requested flatten:")

        async def flat() -> list[asyncpg.Record]:
            return await api.sql(
                "SELECT who, status FROM live_commands WHERE command = 'flatten' "
                "AND symbol = 'BTCUSDT' AND status = 'done'"
            )

        [row] = await eventually(flat, 30, what="the flatten verified")
        assert row["who"] == f"admin:{admin.username}"
        assert tab.problems == []


async def test_a_user_sees_the_records_and_no_control(
    api: ApiUnderTest, seed: LiveSeed, browser: object
) -> None:
    session = await api.new_user("watcher")
    status = await api.get("/api/live/status", session.access)
    assert status.body == {"enabled": True, "environment": "testnet"}
    async with open_page(browser, api.base) as tab:
        page = tab.page
        await log_in(tab, session.username, session.password, then="/live")
        sol = page.locator(f'#live-positions tr[data-trade="{seed.open}"]')
        await expect(sol.locator("td.stop")).to_have_text("51.0000")
        await expect(page.locator("#live-risk .risk-state")).to_contain_text("ACTIVE")
        await expect(page.locator("#live-controls")).to_have_count(0)
        await expect(page.locator('[data-action="flatten-trade"]')).to_have_count(0)
        await expect(page.locator("button")).to_have_text(["Log out"])
        assert tab.problems == []


async def test_without_live_trading_the_page_says_so_and_how_to_turn_it_on(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory, browser: object
) -> None:
    off, name = await start_api(pg_server, tmp_path_factory.mktemp("live-off"))
    try:
        session = await off.new_user("curious")
        async with open_page(browser, off.base) as tab:
            # The page learns it from /api/live/status: nothing answers with an error.
            await log_in(tab, session.username, session.password, then="/live")
            notice = tab.page.locator("#live-off")
            await expect(notice.locator("h2")).to_have_text("Live trading is off")
            await expect(notice).to_contain_text("[live] enabled = true")
            await expect(notice).to_contain_text("ARB_EXCHANGE_API_KEY_FILE")
            await expect(tab.page.locator("#live-risk")).to_have_count(0)
            await check_page(tab, "live-off")
    finally:
        await stop_api(off, pg_server, name)
