"""The Paper page: a strategy's equity curve in R, its summary, its trades, and the signal
that opened a trade, on paper trades the paper trader's own core walked (``engine_seed``).

v52's two BTCUSDT trades, by SIGNALS.md's arithmetic (fee 4 bps, slippage 1 bp, R = 1.5 × ATR
2 = 3, 100 USD a trade, so 33.33 units):

- the long entered at 100 × 1.0001 = 100.01; half left at TP1 on a trade at 103.5 (filled at
  103.5 × 0.9999 = 103.48965), the rest at TP2 on 106.2 (106.18938); between the two it paid
  funding 0.0001 × 104 × 0.5 = 0.0052 a unit (0.17 USD). Fees 0.0004 × (100.01 + 104.8395)
  = 0.08194 a unit (2.73 USD). R = (4.829515 − 0.08194 − 0.0052) / 3 = +1.58.
- the short entered at 104 × 0.9999 = 103.9896 and was stopped on 107.5 (filled at 107.51075):
  R = (−3.52115 − 0.0004 × 211.50035) / 3 = −1.20.

With the ETHUSDT long still open: 3 trades, 1 open, 1 win and 1 loss, 50 %, +0.38 R.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio
from playwright.async_api import expect

from tests.e2e.api.engine_seed import (
    FIRED_LONG,
    FIRED_SHORT,
    QUIET_ENGINE,
    EngineSeed,
    seed_engine_output,
)
from tests.e2e.api.harness import ApiUnderTest, Session, running_api
from tests.e2e.dashboard.browser import (
    NEEDS_BROWSER,
    PageUnderTest,
    canvas_drawn,
    check_page,
    log_in,
    open_page,
)
from tests.support.postgres import PgTestServer

pytestmark = [pytest.mark.asyncio(loop_scope="module"), NEEDS_BROWSER]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    async with running_api(pg_server, tmp_path_factory.mktemp("paper"), QUIET_ENGINE) as under_test:
        yield under_test


@dataclass
class Seeded:
    seed: EngineSeed
    session: Session
    ids: dict[str, int]
    """Paper trade ids: ``long``, ``short``, ``open``."""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(api: ApiUnderTest) -> Seeded:
    conn = await asyncpg.connect(api.db_url)
    try:
        seed = await seed_engine_output(conn, int(time.time() * 1000))
        rows = await conn.fetch("SELECT id, symbol, entry_tick FROM paper_trades")
    finally:
        await conn.close()
    by_entry = {(r["symbol"], r["entry_tick"]): r["id"] for r in rows}
    ids = {name: by_entry[(p.symbol, p.entry_tick)] for name, p in seed.paper.items()}
    return Seeded(seed, await api.new_user("paper"), ids)


async def sign_in_at(tab: PageUnderTest, session: Session, path: str) -> None:
    """Log in, then open ``path`` (``log_in`` puts its ``then`` into ``next=`` unencoded, so
    a query with more than one parameter would lose all but the first)."""
    await log_in(tab, session.username, session.password, then="/paper")
    await tab.goto(path)
    await tab.ready()


def stat(tab: PageUnderTest, key: str) -> object:
    return tab.page.locator(f'#paper-stats [data-stat="{key}"] .stat-value')


async def test_summary_equity_curve_and_trades_of_a_strategy(
    api: ApiUnderTest, browser: object, seeded: Seeded
) -> None:
    seed = seeded.seed
    async with open_page(browser, api.base) as tab:
        await sign_in_at(tab, seeded.session, "/paper?strategy=v52")
        page = tab.page
        await expect(page.locator("#strategy-picker")).to_have_value("v52")
        await expect(page.locator("#symbol-picker")).to_have_value("")
        await expect(stat(tab, "trades")).to_have_text("3")
        await expect(stat(tab, "open")).to_have_text("1")
        await expect(stat(tab, "closed")).to_have_text("2")
        await expect(stat(tab, "wins-losses")).to_have_text("1 / 1")
        await expect(stat(tab, "win-rate")).to_have_text("50.0%")
        await expect(stat(tab, "total-r")).to_have_text("+0.38 R")
        await expect(stat(tab, "total-usd")).to_have_text("+37.89 USDT")
        await expect(stat(tab, "mean-r")).to_have_text("+0.19 R")
        # Every trade's fees (the open one's entry fee included), and the long's funding.
        fees = sum(p.fees_per_unit * p.quantity for p in seed.paper.values())
        await expect(stat(tab, "fees")).to_have_text(f"{fees:.2f} USDT")
        await expect(stat(tab, "funding")).to_have_text("-0.17 USDT")

        rows = page.locator("#trades-panel tbody tr")
        await expect(rows).to_have_count(3)
        # Newest entry first: the short, the ETHUSDT one (an hour ago), the long.
        assert [await r.get_attribute("data-trade-id") for r in await rows.all()] == [
            str(seeded.ids[name]) for name in ("short", "open", "long")
        ]
        long = page.locator(f'#trades-panel tr[data-trade-id="{seeded.ids["long"]}"]')
        await expect(long.locator("td.side")).to_have_text("Long")
        await expect(long.locator("td.entry-price")).to_have_text("100.01")
        await expect(long.locator("td.exits")).to_have_text("tp1 50% @ 103.49 · tp2 50% @ 106.19")
        await expect(long.locator("td.exit-reason")).to_have_text("tp2")
        await expect(long.locator("td.r")).to_have_text("+1.58 R")
        await expect(long.locator("td.r")).to_have_class(re.compile(r"\bpos\b"))
        await expect(long.locator("td.r span")).to_have_attribute("title", "+158.08 USDT")
        await expect(long.locator("td.fees")).to_have_text("2.73 USDT")
        await expect(long.locator("td.funding")).to_have_text("-0.17 USDT")
        short = page.locator(f'#trades-panel tr[data-trade-id="{seeded.ids["short"]}"]')
        await expect(short.locator("td.exits")).to_have_text("sl 100% @ 107.51")
        await expect(short.locator("td.r")).to_have_text("-1.20 R")
        await expect(short.locator("td.r")).to_have_class(re.compile(r"\bneg\b"))
        still_open = page.locator(f'#trades-panel tr[data-trade-id="{seeded.ids["open"]}"]')
        await expect(still_open.locator("td.exit-reason")).to_have_text("open")
        await expect(still_open.locator("td.r")).to_have_text("—")

        await expect(page.locator("#equity-chart")).to_have_attribute("data-points", "2")
        assert await canvas_drawn(tab, "#equity-chart")
        await expect(page.locator("#equity-empty")).to_be_hidden()
        await check_page(tab, "paper")


async def test_a_trade_opens_its_entry_signal_inline_and_on_the_signals_page(
    api: ApiUnderTest, browser: object, seeded: Seeded
) -> None:
    seed = seeded.seed
    long_tick = seed.tick(FIRED_LONG)
    async with open_page(browser, api.base) as tab:
        await sign_in_at(tab, seeded.session, "/paper?strategy=v52")
        page = tab.page
        await page.locator(
            f'#trades-panel tr[data-trade-id="{seeded.ids["long"]}"] td.exits'
        ).click()
        await expect(page).to_have_url(f"{api.base}/paper?strategy=v52&trade={seeded.ids['long']}")
        shown = page.locator("#entry-signal-panel [data-breakdown]")
        await expect(shown).to_have_attribute("data-tick", str(long_tick))
        await expect(shown.locator('[data-stat="score"] .stat-value')).to_have_text("73.33 / 70")
        await expect(shown.locator("tr[data-factor] td.contribution")).to_have_text(
            ["20.00", "16.00", "10.00", "7.50", "5.00", "5.00", "2.50", "—"]
        )
        await expect(shown.locator('[data-field="hash"]')).to_have_text(seed.strategies["v52"].hash)
        link = page.locator("#entry-signal-link")
        await expect(link).to_have_attribute(
            "href", f"/signals?strategy=v52&symbol=BTCUSDT&at={long_tick}"
        )
        await check_page(tab, "paper-signal")

        # The link opens the Signals page at that very evaluation.
        await link.click()
        await page.wait_for_url(f"{api.base}/signals?strategy=v52&symbol=BTCUSDT&at={long_tick}")
        await tab.ready()
        await expect(page.locator("#breakdown-panel [data-breakdown]")).to_have_attribute(
            "data-tick", str(long_tick)
        )

        # A link to a trade opens it with its signal.
        await tab.goto(f"/paper?strategy=v52&trade={seeded.ids['short']}")
        await tab.ready()
        shown = page.locator("#entry-signal-panel [data-breakdown]")
        await expect(shown).to_have_attribute("data-tick", str(seed.tick(FIRED_SHORT)))
        await expect(shown.locator('[data-stat="direction"] .stat-value')).to_have_text("Short")
        await expect(
            page.locator(f'#trades-panel tr.selected[data-trade-id="{seeded.ids["short"]}"]')
        ).to_have_count(1)


async def test_the_pickers_and_a_strategy_without_trades(
    api: ApiUnderTest, browser: object, seeded: Seeded
) -> None:
    async with open_page(browser, api.base) as tab:
        await sign_in_at(tab, seeded.session, "/paper?strategy=v52")
        page = tab.page
        await page.select_option("#symbol-picker", "ETHUSDT")
        await expect(page).to_have_url(f"{api.base}/paper?strategy=v52&symbol=ETHUSDT")
        await expect(page.locator("#trades-panel tbody tr")).to_have_count(1)
        await expect(stat(tab, "trades")).to_have_text("1")
        await expect(stat(tab, "total-r")).to_have_text("0.00 R")
        await expect(stat(tab, "win-rate")).to_have_text("—")
        await expect(page.locator("#equity-empty")).to_be_visible()

        await page.select_option("#strategy-picker", "v51")
        await expect(page).to_have_url(f"{api.base}/paper?strategy=v51&symbol=ETHUSDT")
        await expect(page.locator("#paper-empty")).to_have_text(
            "No paper trades of v51 on ETHUSDT yet — a trade opens when a signal fires."
        )
        await page.select_option("#symbol-picker", "")
        await expect(page).to_have_url(f"{api.base}/paper?strategy=v51")
        await expect(page.locator("#paper-empty")).to_have_text(
            "No paper trades of v51 yet — a trade opens when a signal fires."
        )
        await expect(stat(tab, "trades")).to_have_text("0")
        await expect(page.locator("#equity-empty")).to_have_text(
            "No closed trade yet — the curve starts at the first close."
        )
        await check_page(tab, "paper-empty")
