"""The Server page: components, channels, the database's partitions, version and uptime.

Its daemon collects one symbol from the simulated exchange (in this process, its clock
still), so the page has real components, channels and an exchange to lose: banning the
daemon's address at the sim makes it degraded while the page is open, and the page must
show it on its own.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from playwright.async_api import expect

from arbengine import __version__
from arbengine.sim.server import SimConfig, SimServer
from arbengine.store.partitions import add_months, month_start_ms
from tests.e2e.api.harness import ApiUnderTest, Session, running_api
from tests.e2e.dashboard.browser import NEEDS_BROWSER, check_page, log_in, open_page
from tests.support.daemon import BTC_STRATEGIES
from tests.support.postgres import PgTestServer
from tests.support.waiting import eventually

pytestmark = [pytest.mark.asyncio(loop_scope="module"), NEEDS_BROWSER]

SYMBOL = "BTCUSDT"
OLD_MONTH = (2024, 1)
OLD_TRADES = 3
UPTIME = re.compile(r"^(?:(\d+) d )?(\d\d):(\d\d):(\d\d)$")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sim() -> AsyncIterator[SimServer]:
    config = SimConfig(
        port=0,
        manual=True,
        seed=5,
        symbols=(SYMBOL,),
        trade_rate=5.0,
        start_ms=int(time.time()) * 1000,
        history_days=1,
    )
    async with SimServer(config) as server:
        yield server


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    pg_server: PgTestServer, sim: SimServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    """A daemon collecting from the sim: components, channels and a REST budget to show."""
    async with running_api(
        pg_server,
        tmp_path_factory.mktemp("server"),
        {
            "ARB_COLLECT_ENABLED": "true",
            "ARB_COLLECT_SYMBOLS": SYMBOL,
            "ARB_ENGINE_STRATEGIES_DIR": str(BTC_STRATEGIES),
            "ARB_EXCHANGE_REST_URL": sim.rest_url,
            "ARB_EXCHANGE_WS_URL": sim.market_ws_url,
            "ARB_EXCHANGE_COINBASE_URL": sim.coinbase_url,
            "ARB_COLLECT_HISTORY_BACKFILL": "1h",
        },
    ) as under_test:
        yield under_test


async def server_now(api: ApiUnderTest, session: Session) -> dict[str, Any]:
    reply = await api.get("/api/server", token=session.access)
    assert reply.status == 200, reply.body
    return dict(reply.body)


async def seed_an_old_month(api: ApiUnderTest) -> int:
    """A partition of January 2024 holding a few trades (as an import leaves one), analysed
    so that its row estimate is exact; returns how many partitions the tape has now."""
    lower = month_start_ms(*OLD_MONTH)
    upper = month_start_ms(*add_months(*OLD_MONTH, 1))
    await api.sql(
        f"CREATE TABLE agg_trades_202401 PARTITION OF agg_trades "
        f"FOR VALUES FROM ({lower}) TO ({upper})"
    )
    # A symbol this daemon does not collect: its tape is not disturbed.
    await api.sql_many(
        "INSERT INTO agg_trades (symbol, agg_id, ts, price, qty, first_trade_id, "
        "last_trade_id, is_buyer_maker) VALUES ('ETHUSDT', $1, $2, 2300.5, 1.5, $1, $1, true)",
        [(n, lower + n * 60_000) for n in range(1, OLD_TRADES + 1)],
    )
    await api.sql("ANALYZE agg_trades_202401")
    (row,) = await api.sql(
        "SELECT count(*) AS n FROM pg_inherits WHERE inhparent = 'agg_trades'::regclass"
    )
    return int(row["n"])


def seconds_of(uptime: str) -> int:
    match = UPTIME.match(uptime)
    assert match, uptime
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


async def test_the_server_page_shows_the_daemon_and_keeps_itself_current(
    api: ApiUnderTest, sim: SimServer, browser: object
) -> None:
    session = await api.new_user("operator")
    partitions = await seed_an_old_month(api)
    assert partitions == 4  # January 2024, this month and the two ahead

    async def healthy() -> dict[str, Any] | None:
        server = await server_now(api, session)
        tasks = {t["name"]: t["state"] for t in server["tasks"]}
        ready = not server["degraded"] and tasks.get("market-stream") == "running"
        return server if ready else None

    server = await eventually(healthy, 30, what="a collecting daemon with nothing degraded")
    market = next(c for c in server["channels"] if c["name"] == "market")

    async with open_page(browser, api.base) as tab:
        page = tab.page
        server_calls: list[str] = []
        page.on(
            "request",
            lambda r: server_calls.append(r.url) if r.url.endswith("/api/server") else None,
        )
        await log_in(tab, session.username, session.password, then="/server")
        stat = lambda key: page.locator(f'[data-stat="{key}"] .stat-value')  # noqa: E731

        # Version, and an uptime that is the daemon's and ticks.
        await expect(stat("version")).to_have_text(__version__)
        shown = await page.locator("#uptime").inner_text()
        uptime_s = (await server_now(api, session))["uptime_s"]
        assert abs(seconds_of(shown) - uptime_s) <= 5, (shown, uptime_s)
        await expect(page.locator("#uptime")).not_to_have_text(shown)

        # Components with their states, and the channels with their capacities.
        writer = page.locator('#server-components tr[data-component="writer"]')
        await expect(writer).to_have_attribute("data-state", "running")
        await expect(writer.locator("td.state")).to_have_text("running")
        await expect(writer.locator("td.restarts")).to_have_text("0")
        stream = page.locator('#server-components tr[data-component="market-stream"] td.state')
        await expect(stream).to_have_text("running")
        channel = page.locator('#server-channels tr[data-channel="market"]')
        await expect(channel.locator("td.capacity")).to_have_text(f"{market['capacity']:,}")
        await expect(channel.locator("td.policy")).to_have_text(market["policy"])
        symbol = page.locator(f'#server-symbols tr[data-symbol="{SYMBOL}"]')
        await expect(symbol.locator("td.collection")).to_have_text("collecting")

        # The database: the partitions PostgreSQL has, the oldest with its seeded trades.
        await expect(stat("partitions-agg_trades")).to_have_text(str(partitions))
        await expect(stat("partitions")).to_have_text(str(partitions))
        old = page.locator('#server-database tr[data-partition="agg_trades_202401"]')
        await expect(old.locator("td.rows")).to_have_text(str(OLD_TRADES))
        oldest = page.locator('[data-stat="oldest-agg_trades"] time')
        await expect(oldest).to_have_attribute("datetime", "2024-01-01T00:00:00.000Z")
        tape = page.locator('#server-database tr[data-table="agg_trades"] td.partitions')
        await expect(tape).to_have_text(str(partitions))

        # Healthy now; then the exchange bans the daemon's address. The page, left alone,
        # shows the daemon degraded and why, on its next poll.
        await expect(stat("status")).to_have_text("ok")
        await expect(page.locator("#server-degraded .empty")).to_have_text(
            "Nothing is degraded: every part of the daemon reports healthy."
        )
        calls_before = len(server_calls)
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{sim.control_url}/faults", json={"ban": {"seconds": 120}}) as reply,
        ):
            assert reply.status == 200, await reply.text()
        reason = page.locator('#server-degraded tr[data-component="rest"] td.reason')
        await expect(reason).to_contain_text("IP banned by the exchange (HTTP 418)", timeout=20_000)
        await expect(stat("status")).to_have_text(re.compile(r"^degraded \(\d+\)$"))
        assert len(server_calls) > calls_before  # it came by polling, not a reload
        await check_page(tab, "server")
