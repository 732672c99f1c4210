"""The Tape page on a tape written by the store's own writers (``tape_seed``): the OHLCV
chart with volume, liquidations per bar and side, completeness per day, and the gaps
repaired and the holes left with their ids, each shown with the seeded numbers."""

from __future__ import annotations

import time

import asyncpg
import pytest
from playwright.async_api import expect

from tests.e2e.api.harness import ApiUnderTest
from tests.e2e.api.tape_seed import HOUR, btc_price, seed_tape
from tests.e2e.dashboard.browser import NEEDS_BROWSER, canvas_drawn, check_page, log_in, open_page

pytestmark = [pytest.mark.asyncio(loop_scope="module"), NEEDS_BROWSER]


async def test_the_tape_of_a_symbol_with_its_gaps_holes_days_and_liquidations(
    api: ApiUnderTest, browser: object
) -> None:
    conn = await asyncpg.connect(api.db_url)
    try:
        seed = await seed_tape(conn, int(time.time() * 1000))
    finally:
        await conn.close()
    session = await api.new_user("tapereader")
    async with open_page(browser, api.base) as tab:
        page = tab.page
        await log_in(tab, session.username, session.password, then="/tape?symbol=BTCUSDT")
        # The last 24 hours by default; the seeded tape is one and two days old.
        await expect(page.locator("#tape-range")).to_have_value("24h")
        await page.select_option("#tape-range", "7d")
        # The 15 m bars still fit in 7 days (672 of at most 1500) and stay; 1 h bars asked.
        await expect(page.locator("#tape-interval")).to_have_value("15m")
        await page.select_option("#tape-interval", "1h")
        assert "range=7d&interval=1h" in page.url
        await expect(page.locator("#tape-summary h2")).to_have_text("BTCUSDT tape")
        # 40 trades on day A, 90 of ids 41–140 on day B: 130 of 140 ids, one hole left.
        stats = page.locator("#tape-summary")
        await expect(stats.locator('[data-stat="rows"] .stat-value')).to_have_text("130")
        await expect(stats.locator('[data-stat="ids"] .stat-value')).to_have_text("1 – 140")
        await expect(stats.locator('[data-stat="completeness"] .stat-value')).to_have_text("92.86%")
        await expect(stats.locator('[data-stat="gaps-repaired"] .stat-value')).to_have_text("2")
        await expect(stats.locator('[data-stat="holes-left"] .stat-value')).to_have_text("1")

        # Seven 1 h bars (two on day A, five on day B) of two trades per aggTrade.
        await expect(page.locator("#tape-chart-note")).to_have_text(
            f"7 bars of 1h over the last 7 days: 260 trades, last close {btc_price(140):.2f} USDT, "
            "volume 3.900 BTC."
        )
        assert await canvas_drawn(tab, "#tape-chart .chart")

        day_b = page.locator(f'#tape-days tr[data-day="{seed.day_b.isoformat()}"]')
        await expect(day_b.locator("td.completeness")).to_have_text("90.00%")
        await expect(day_b.locator("td.rows")).to_have_text("90")
        await expect(day_b.locator("td.missing")).to_have_text("10")
        day_a = page.locator(f'#tape-days tr[data-day="{seed.day_a.isoformat()}"]')
        await expect(day_a.locator("td.completeness")).to_have_text("100.00%")

        gaps = page.locator("#tape-gaps tbody tr")
        await expect(gaps).to_have_count(3)
        hole = page.locator('#tape-gaps tr[data-gap="90-99"]')
        await expect(hole.locator("td.outcome")).to_have_text("hole")
        await expect(hole.locator("td.count")).to_have_text("10")
        # Placed in time between the stored trades around it (UTC on hover).
        await expect(hole.locator("td.after time")).to_have_attribute(
            "datetime", _iso(seed.btc_ts[89])
        )
        await expect(hole.locator("td.before time")).to_have_attribute(
            "datetime", _iso(seed.btc_ts[100])
        )
        repaired = page.locator('#tape-gaps tr[data-gap="60-69"]')
        await expect(repaired.locator("td.outcome")).to_have_text("repaired")

        # Liquidations: two longs in the 10:00 bar of day B, one short at 12:00.
        totals = page.locator("#tape-liquidation-totals")
        await expect(totals.locator('[data-stat="longs"] .stat-value')).to_have_text(
            "2 · 45,070 USDT"
        )
        await expect(totals.locator('[data-stat="shorts"] .stat-value')).to_have_text(
            "1 · 12,100 USDT"
        )
        bar = page.locator(
            f'#tape-liquidation-bars tr[data-ts="{seed.day_b_ms + 10 * HOUR}"][data-side="SELL"]'
        )
        await expect(bar.locator("td.count")).to_have_text("2")
        await expect(bar.locator("td.qty")).to_have_text("0.750 BTC")
        await expect(bar.locator("td.notional")).to_have_text("45,070 USDT")
        assert await canvas_drawn(tab, "#tape-liquidations .chart")
        await check_page(tab, "tape")

        # Another symbol from the picker: its own records, and the URL follows.
        await page.select_option("#tape-symbol", "ETHUSDT")
        await expect(page.locator("#tape-summary h2")).to_have_text("ETHUSDT tape")
        partly = page.locator('#tape-gaps tr[data-gap="10-19"]')
        await expect(partly.locator("td.outcome")).to_have_text("partly repaired")
        open_gap = page.locator('#tape-gaps tr[data-gap="30-31"]')
        await expect(open_gap.locator("td.outcome")).to_have_text("being repaired")
        await expect(page.locator("#tape-liquidation-bars")).to_have_text(
            "No liquidation in this range."
        )
        assert "symbol=ETHUSDT" in page.url
        # 7 days of 5 m bars would be more than the 1500 a chart takes: not offered.
        await expect(page.locator('#tape-interval option[value="5m"]')).to_be_disabled()
        await page.select_option("#tape-interval", "15m")
        assert "interval=15m" in page.url
        await expect(page.locator("#tape-chart-note")).to_contain_text("bars of 15m")
        assert tab.problems == []


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
