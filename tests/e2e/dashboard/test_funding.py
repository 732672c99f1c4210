"""The Funding page: one symbol's funding rate and mark price over a chosen interval and
range, its settlements, its newest samples, and every symbol's 7-day and YTD statistics.

The expected bar counts are worked out here from the seeded sample times the way the
daemon buckets them (bar start = ts − ts mod interval) over the window the page asks for.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from playwright.async_api import expect

from tests.e2e.api.harness import ApiUnderTest
from tests.e2e.dashboard.browser import (
    NEEDS_BROWSER,
    PageUnderTest,
    canvas_drawn,
    check_page,
    log_in,
    open_page,
)

pytestmark = [pytest.mark.asyncio(loop_scope="module"), NEEDS_BROWSER]

SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@dataclass(frozen=True)
class Seeded:
    now: int
    samples: list[int]
    """Times of BTCUSDT's premiumIndex samples."""
    ytd: dict[str, str]
    """BTCUSDT's year-to-date figures as the page shows them."""

    def bars(self, interval_ms: int, span_ms: int) -> int:
        """Bars of ``interval_ms`` in the last ``span_ms`` before now (give or take the
        few seconds between seeding and asking, far from any sample)."""
        start = int(time.time() * 1000) - span_ms
        return len({ts - ts % interval_ms for ts in self.samples if ts >= start})


async def seed(conn: asyncpg.Connection, now: int) -> Seeded:
    # BTCUSDT: every 10 minutes for the last two hours (the newest 30 s ago: mark 111,
    # index 110.9, funding 0.0600%), and three samples two days ago.
    recent = [now - 30 * SECOND - (11 - k) * 10 * MINUTE for k in range(12)]
    old = [now - 2 * DAY + j * MINUTE for j in range(3)]
    rows = [
        ("BTCUSDT", ts, 100.0 + k, 99.9 + k, 0.0001 * (k - 5), now + HOUR)
        for k, ts in enumerate(recent)
    ]
    rows += [("BTCUSDT", ts, 90.0, 90.1, -0.0002, now - 2 * DAY + HOUR) for ts in old]
    await conn.executemany(
        "INSERT INTO rate_snapshots (symbol, ts, known_at, mark_price, index_price, "
        "funding_rate, next_funding_time) VALUES ($1, $2, $2, $3, $4, $5, $6)",
        rows,
    )
    # Settled: 0.0001 (mark 101.5, 20 hours ago), 0.0003 (mark 102.5) and −0.0001 in the
    # last 7 days; 0.0005 eight days ago (this year's figures only).
    settled = [
        (now - 20 * HOUR, 0.0001, '{"mark_price": 101.5}'),
        (now - 2 * DAY, 0.0003, '{"mark_price": 102.5}'),
        (now - 3 * DAY, -0.0001, "{}"),
        (now - 8 * DAY, 0.0005, "{}"),
    ]
    await conn.executemany(
        "INSERT INTO market_indicators (symbol, kind, ts, known_at, value, data) "
        "VALUES ('BTCUSDT', 'funding_rate', $1, $1, $2, $3::jsonb)",
        settled,
    )
    year = dt.datetime.fromtimestamp(now / 1000, dt.UTC).year
    start_of_year = int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    this_year = [v for ts, v, _ in settled if ts >= start_of_year]
    mean = sum(this_year) / len(this_year)
    ytd = {
        "mean": f"{mean * 100:.4f}%",
        "cumulative": f"{sum(this_year) * 100:.4f}%",
        "annualised": f"{mean * 3 * 365 * 100:.2f}%",
    }
    return Seeded(now, recent + old, ytd)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(api: ApiUnderTest) -> Seeded:
    conn = await asyncpg.connect(api.db_url)
    try:
        return await seed(conn, int(time.time() * 1000))
    finally:
        await conn.close()


def now_stat(tab: PageUnderTest, key: str) -> Any:
    return tab.page.locator(f'#funding-now [data-stat="{key}"] .stat-value')


async def choose(tab: PageUnderTest, picker: str, value: str, interval: str) -> None:
    """Pick ``value`` and wait for the view it asks for (its mark-price bars request)."""
    async with tab.page.expect_request(
        lambda req: (
            "/api/kline" in req.url
            and "series=mark_price" in req.url
            and f"interval={interval}" in req.url
        )
    ):
        await tab.page.select_option(f"#{picker}", value)
    await expect(tab.page.locator("body")).to_have_attribute("data-view", "ready")


async def test_one_symbol_over_the_interval_and_range_picked(
    api: ApiUnderTest, seeded: Seeded, browser: object
) -> None:
    session = await api.new_user("funder")
    async with open_page(browser, api.base) as tab:
        await log_in(tab, session.username, session.password, then="/funding?symbol=BTCUSDT")
        await expect(tab.page.locator("#pick-symbol")).to_have_value("BTCUSDT")
        await expect(tab.page.locator("#pick-interval")).to_have_value("1h")
        await expect(tab.page.locator("#pick-range")).to_have_value("7d")

        await expect(now_stat(tab, "mark")).to_have_text("111.00 USDT")
        await expect(now_stat(tab, "funding")).to_have_text("0.0600%")
        await expect(now_stat(tab, "annualised")).to_have_text("65.70%")
        await expect(now_stat(tab, "week")).to_have_text("10.95%")
        await expect(now_stat(tab, "ytd")).to_have_text(seeded.ytd["annualised"])

        # Both charts, in hourly bars over 7 days.
        rate_chart = tab.page.locator("#funding-rate .chart")
        mark_chart = tab.page.locator("#mark-price .chart")
        hourly = seeded.bars(HOUR, 7 * DAY)
        await expect(rate_chart).to_have_attribute("data-bars", str(hourly))
        await expect(mark_chart).to_have_attribute("data-bars", str(hourly))
        await expect(tab.page.locator("#mark-bars")).to_have_text(f"{hourly} bars of 1h, USDT.")
        assert await canvas_drawn(tab, "#funding-rate .chart")
        assert await canvas_drawn(tab, "#mark-price .chart")

        # The settlements of the last 7 days, charted and listed newest first.
        await expect(tab.page.locator("#settled .chart")).to_have_attribute("data-settled", "3")
        assert await canvas_drawn(tab, "#settled .chart")
        settled = tab.page.locator("#settled tbody tr")
        await expect(settled.locator(".rate")).to_have_text(["0.0100%", "0.0300%", "-0.0100%"])
        await expect(settled.locator(".annualised")).to_have_text(["10.95%", "32.85%", "-10.95%"])
        await expect(settled.locator(".mark")).to_have_text(["101.50", "102.50", "—"])

        # The last five minutes of samples: the newest one only.
        samples = tab.page.locator("#samples tbody tr")
        await expect(samples).to_have_count(1)
        await expect(samples.locator(".mark")).to_have_text("111.00")
        await expect(samples.locator(".premium")).to_have_text("0.0902%")
        await expect(samples.locator(".funding")).to_have_text("0.0600%")

        # Every symbol's statistics; the one shown is marked.
        btc = tab.page.locator('#stats tbody tr[data-symbol="BTCUSDT"]')
        await expect(btc).to_have_class(re.compile(r"\bselected\b"))
        await expect(btc.locator(".week-mean")).to_have_text("0.0100%")
        await expect(btc.locator(".week-min")).to_have_text("-0.0100%")
        await expect(btc.locator(".week-max")).to_have_text("0.0300%")
        await expect(btc.locator(".week-annualised")).to_have_text("10.95%")
        await expect(btc.locator(".ytd-mean")).to_have_text(seeded.ytd["mean"])
        await expect(btc.locator(".ytd-cumulative")).to_have_text(seeded.ytd["cumulative"])
        await expect(btc.locator(".ytd-annualised")).to_have_text(seeded.ytd["annualised"])
        await expect(
            tab.page.locator('#stats tbody tr[data-symbol="ETHUSDT"] .week-mean')
        ).to_have_text("—")
        await check_page(tab, "funding")

        # 5-minute bars: 7 days would be more than 1500 of them, so the last 125 hours.
        await choose(tab, "pick-interval", "5m", "5m")
        await expect(tab.page).to_have_url(re.compile(r"interval=5m"))
        await expect(tab.page.locator("#range-note")).to_have_text(
            "5m bars cover at most 125 hours (1,500 bars): showing the last 125 hours of 7 days."
        )
        five = seeded.bars(5 * MINUTE, 125 * HOUR)
        assert five != hourly
        await expect(mark_chart).to_have_attribute("data-bars", str(five))
        await expect(rate_chart).to_have_attribute("data-bars", str(five))

        # The last 24 hours: the samples of two days ago drop out.
        await choose(tab, "pick-range", "24h", "5m")
        await expect(tab.page).to_have_url(re.compile(r"range=24h"))
        day = seeded.bars(5 * MINUTE, DAY)
        assert day != five
        await expect(mark_chart).to_have_attribute("data-bars", str(day))
        await expect(rate_chart).to_have_attribute("data-bars", str(day))
        await expect(tab.page.locator("#range-note")).to_have_text("24 hours in 5m bars.")
        assert await canvas_drawn(tab, "#mark-price .chart")

        # A symbol with nothing stored says so in place of each chart and table.
        await choose(tab, "pick-symbol", "SOLUSDT", "5m")
        await expect(tab.page.locator("#funding-rate .empty")).to_have_text(
            "No premiumIndex samples for SOLUSDT in this range — the collector stores one "
            "every few seconds while it runs."
        )
        await expect(tab.page.locator("#settled .empty")).to_have_text(
            "No settled funding for SOLUSDT in the last 7 days — settlements are read from "
            "the exchange every hour while collection runs."
        )
        await expect(tab.page.locator("#samples .empty")).to_have_text(
            "No sample of SOLUSDT in the last 5 minutes — the collector stores one every few "
            "seconds while it runs."
        )
        await expect(now_stat(tab, "mark")).to_have_text("—")
        await expect(tab.page.locator("#stats tbody tr.selected")).to_have_attribute(
            "data-symbol", "SOLUSDT"
        )
        # The choice is in the address: a reload shows the same view.
        await tab.page.reload()
        await tab.ready()
        await expect(tab.page.locator("#pick-symbol")).to_have_value("SOLUSDT")
        await expect(tab.page.locator("#pick-interval")).to_have_value("5m")
        await expect(tab.page.locator("#pick-range")).to_have_value("24h")


async def test_an_empty_deployment_says_what_will_be_there(
    empty_api: ApiUnderTest, browser: object
) -> None:
    session = await empty_api.new_user("early")
    async with open_page(browser, empty_api.base) as tab:
        await log_in(tab, session.username, session.password, then="/funding")
        await expect(tab.page.locator("#pick-symbol")).to_have_value("BTCUSDT")
        await expect(now_stat(tab, "mark")).to_have_text("—")
        await expect(now_stat(tab, "week")).to_have_text("—")
        await expect(tab.page.locator("#funding-rate .empty")).to_have_text(
            "No premiumIndex samples for BTCUSDT in this range — the collector stores one "
            "every few seconds while it runs."
        )
        await expect(tab.page.locator("#mark-price .empty")).to_have_count(1)
        await expect(tab.page.locator("#settled .empty")).to_have_count(1)
        await expect(tab.page.locator("#stats .empty")).to_have_text(
            "No settled funding yet — settlements are read from the exchange every hour "
            "while collection runs."
        )
        await check_page(tab, "funding-empty")
