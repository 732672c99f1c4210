"""The funding-rate page in real headless Chromium: log in, watch the table fill and refresh.

Debian's chromium, driven by Playwright through ``executable_path`` (Playwright's
own browser download is never used). The page is also held to the server's
Content-Security-Policy: any console error (a blocked inline script would be
one) fails the test.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.e2e.api.harness import PASSWORD, ApiUnderTest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)",
    ),
]


async def test_log_in_and_see_the_rates_table_fill_and_refresh(api: ApiUnderTest) -> None:
    from playwright.async_api import async_playwright, expect

    now = int(time.time() * 1000)
    await api.sql_many(
        "INSERT INTO rate_snapshots (symbol, ts, known_at, mark_price, index_price, "
        "funding_rate, next_funding_time) VALUES ($1, $2, $2, $3, $4, $5, $6)",
        [
            ("BTCUSDT", now - 1000, 65000.5, 64990.0, 0.0001, now + 3_600_000),
            ("ETHUSDT", now - 1000, 3200.25, 3199.0, -0.0002, now + 3_600_000),
        ],
    )
    session = await api.new_user("browser")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            problems: list[str] = []
            page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
            page.on(
                "console",
                lambda msg: (
                    problems.append(f"console: {msg.text}") if msg.type == "error" else None
                ),
            )
            await page.goto(api.base + "/")
            await expect(page.locator("#login-view")).to_be_visible()

            await page.fill("#username", session.username)
            await page.fill("#password", "not the password")
            await page.click("#login-submit")
            await expect(page.locator("#login-error")).to_have_text("wrong username or password")
            # Chromium logs that refused login as a failed load; it is the one expected.
            assert [p for p in problems if "status of 401" not in p] == []
            problems.clear()

            await page.fill("#password", PASSWORD)
            await page.click("#login-submit")
            await expect(page.locator("#rates-view")).to_be_visible()
            await expect(page.locator("#whoami")).to_have_text(f"{session.username} (user)")

            btc = page.locator('#rates tbody tr[data-symbol="BTCUSDT"]')
            await expect(btc.locator("td.mark")).to_have_text("65000.50")
            await expect(btc.locator("td.funding")).to_have_text("0.0100%")
            await expect(btc.locator("td.annualised")).to_have_text("10.95%")  # ×3×365
            await expect(btc.locator("td.interval")).to_have_text("8h")
            eth = page.locator('#rates tbody tr[data-symbol="ETHUSDT"]')
            await expect(eth.locator("td.funding")).to_have_text("-0.0200%")
            await expect(eth.locator("td.funding")).to_have_class("num funding neg")
            await expect(page.locator("#rates tbody tr")).to_have_count(4)
            await expect(
                page.locator('#rates tbody tr[data-symbol="XRPUSDT"] td.mark')
            ).to_have_text("—")

            # A newer sample shows up on a later refresh, without reloading the page.
            await api.sql(
                "INSERT INTO rate_snapshots (symbol, ts, known_at, mark_price, index_price, "
                "funding_rate) VALUES ('BTCUSDT', $1, $1, 66000.0, 65990.0, 0.0003)",
                int(time.time() * 1000),
            )
            await expect(btc.locator("td.mark")).to_have_text("66000.00", timeout=15_000)
            await expect(btc.locator("td.funding")).to_have_text("0.0300%")

            # A reload keeps the session (the refresh token rotates in sessionStorage).
            await page.reload()
            await expect(page.locator("#rates-view")).to_be_visible()
            await page.click("#logout")
            await expect(page.locator("#login-view")).to_be_visible()
            assert problems == []
        finally:
            await browser.close()
