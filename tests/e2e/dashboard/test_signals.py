"""The Signals page: a strategy's score over time against its threshold, its signals on the
price, and the breakdown of any evaluation, on rows the engine's own code made
(``engine_seed``: v52 on BTCUSDT every 15 s for two hours, a long and a short signal)."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from playwright.async_api import expect

from arbengine.signals import Features, evaluate_strategy
from tests.e2e.api.engine_seed import (
    COOLDOWN,
    FIRED_LONG,
    FIRED_SHORT,
    GATE_FAILED,
    QUIET_ENGINE,
    TICK,
    TICKS,
    EngineSeed,
    features_at,
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

V52_BTC = "/signals?strategy=v52&symbol=BTCUSDT"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    async with running_api(
        pg_server, tmp_path_factory.mktemp("signals"), QUIET_ENGINE
    ) as under_test:
        yield under_test


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(api: ApiUnderTest) -> tuple[EngineSeed, Session]:
    conn = await asyncpg.connect(api.db_url)
    try:
        seed = await seed_engine_output(conn, int(time.time() * 1000))
    finally:
        await conn.close()
    return seed, await api.new_user("trader")


async def sign_in_at(tab: PageUnderTest, session: Session, path: str) -> None:
    """Log in, then open ``path`` (``log_in`` puts its ``then`` into ``next=`` unencoded, so
    a query with more than one parameter would lose all but the first)."""
    await log_in(tab, session.username, session.password, then="/signals")
    await tab.goto(path)
    await tab.ready()


def breakdown(tab: PageUnderTest) -> object:
    return tab.page.locator("#breakdown-panel [data-breakdown]")


async def test_the_latest_evaluation_the_score_against_the_threshold_and_the_price(
    api: ApiUnderTest, browser: object, seeded: tuple[EngineSeed, Session]
) -> None:
    seed, session = seeded
    v52 = seed.strategies["v52"]
    latest = evaluate_strategy(v52, Features("BTCUSDT", seed.latest, features_at(TICKS - 1)))
    assert latest.score is not None
    async with open_page(browser, api.base) as tab:
        await sign_in_at(tab, session, V52_BTC)
        page = tab.page
        await expect(page.locator("#strategy-picker")).to_have_value("v52")
        await expect(page.locator("#symbol-picker")).to_have_value("BTCUSDT")
        await expect(page.locator("#strategy-facts")).to_contain_text(
            "Threshold 70 · minimum coverage 60% · a tick every 15 s · version " + v52.hash[:12]
        )
        # Without ?at= the view follows the engine: the latest evaluation, explained.
        await expect(breakdown(tab)).to_have_attribute("data-tick", str(seed.latest))
        await expect(breakdown(tab).locator('[data-field="reason"]')).to_have_text(
            f"Score {latest.score:.2f} is below the threshold 70."
        )
        await expect(page.locator("#evaluations-count")).to_have_text(
            f"100 of {TICKS}, newest first; choose one for its breakdown."
        )
        await expect(page.locator("#evaluations-table tbody tr").first).to_have_attribute(
            "data-tick", str(seed.latest)
        )
        await expect(page.locator("#evaluations-table tr.selected")).to_have_attribute(
            "data-tick", str(seed.latest)
        )
        assert await canvas_drawn(tab, "#score-chart")
        assert await canvas_drawn(tab, "#price-chart")
        # One bar per minute holding a seeded mark price (every 30 s from the first tick,
        # which is on a 15 s boundary: 120 minutes, or 121 when it starts mid-minute).
        marks = range(seed.start, seed.start + TICKS * TICK, 30_000)
        minutes = len({t // 60_000 for t in marks})
        await expect(page.locator("#price-chart")).to_have_attribute("data-bars", str(minutes))
        await check_page(tab, "signals")

        # A point on the score chart: the evaluation at that time, explained and linked.
        box = await page.locator("#score-chart").bounding_box()
        assert box is not None
        await page.mouse.click(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.5)
        await expect(breakdown(tab)).not_to_have_attribute("data-tick", str(seed.latest))
        chosen = int(await breakdown(tab).get_attribute("data-tick") or "0")
        assert chosen in {seed.tick(k) for k in range(TICKS)}
        assert seed.tick(60) < chosen < seed.tick(TICKS - 60)  # about 30 % across
        await expect(page).to_have_url(re.compile(rf"[?&]at={chosen}(&|$)"))


async def test_a_fired_signal_chosen_in_the_table_shows_its_breakdown(
    api: ApiUnderTest, browser: object, seeded: tuple[EngineSeed, Session]
) -> None:
    seed, session = seeded
    long_tick = seed.tick(FIRED_LONG)
    async with open_page(browser, api.base) as tab:
        await sign_in_at(tab, session, V52_BTC)
        page = tab.page
        await page.check("#fired-only")
        rows = page.locator("#evaluations-table tbody tr")
        await expect(rows).to_have_count(2)
        assert [await r.get_attribute("data-tick") for r in await rows.all()] == [
            str(seed.tick(FIRED_SHORT)),
            str(long_tick),
        ]
        await page.locator(f'#evaluations-table tr[data-tick="{long_tick}"]').click()
        shown = breakdown(tab)
        await expect(shown).to_have_attribute("data-tick", str(long_tick))
        await expect(page).to_have_url(re.compile(rf"[?&]at={long_tick}(&|$)"))

        # 100 × 66 / 90: the factors present weigh 90 of 100 (coinbase_premium_bps absent).
        await expect(shown.locator('[data-stat="score"] .stat-value')).to_have_text("73.33 / 70")
        await expect(shown.locator('[data-stat="coverage"] .stat-value')).to_have_text("90.0%")
        await expect(shown.locator('[data-stat="direction"] .stat-value')).to_have_text("Long")
        await expect(shown.locator('[data-stat="outcome"] .stat-value')).to_have_text("Fired")
        await expect(shown.locator('[data-field="reason"]')).to_have_text("Fired: a long signal.")
        await expect(shown.locator('[data-field="direction-rule"]')).to_have_text(
            "Direction from flow_fast 0.08 (|x| ≥ 0.05), confirmed by flow_mid 0.12."
        )
        factors = shown.locator("tr[data-factor]")
        # Biggest contribution first; the absent factor last.
        await expect(factors).to_have_count(8)
        assert [await f.get_attribute("data-factor") for f in await factors.all()] == [
            "large_imbalance_fast",
            "flow_mid",
            "funding_rate",
            "vwap_dev_fast",
            "ls_global",
            "oi_change_1h",
            "liq_imbalance_fast",
            "coinbase_premium_bps",
        ]
        await expect(factors.locator("td.contribution")).to_have_text(
            ["20.00", "16.00", "10.00", "7.50", "5.00", "5.00", "2.50", "—"]
        )
        await expect(factors.locator("td.weight")).to_have_text(
            ["20", "20", "10", "15", "10", "10", "5", "10"]
        )
        flow_mid = shown.locator('tr[data-factor="flow_mid"]')
        await expect(flow_mid.locator("td.value")).to_have_text("0.12")
        await expect(flow_mid.locator("td.full")).to_have_text("0.15")
        await expect(flow_mid.locator("td.score")).to_have_text("0.800")
        await expect(flow_mid.locator("td.points")).to_have_text("17.78")  # 16 × 100 / 90
        await expect(shown.locator('tr[data-factor="ls_global"] td.kind')).to_have_text(
            "contrarian"
        )
        await expect(shown.locator('tr[data-factor="coinbase_premium_bps"] td.value')).to_have_text(
            "absent"
        )
        await expect(shown.locator("tr[data-gate] td.value")).to_have_text(["50", "120"])
        await expect(shown.locator("tr[data-gate] td.range")).to_have_text(["20 … 95", "50 … +∞"])
        await expect(shown.locator('tr[data-gate][data-passed="true"]')).to_have_count(2)
        await expect(shown.locator('[data-field="hash"]')).to_have_text(seed.strategies["v52"].hash)
        await check_page(tab, "signals-breakdown")


async def test_a_link_opens_the_view_at_a_time_and_says_why_it_did_not_fire(
    api: ApiUnderTest, browser: object, seeded: tuple[EngineSeed, Session]
) -> None:
    seed, session = seeded
    async with open_page(browser, api.base) as tab:
        # Between two ticks: the evaluation before, which a gate stopped.
        await sign_in_at(tab, session, f"{V52_BTC}&at={seed.tick(GATE_FAILED) + 5_000}")
        shown = breakdown(tab)
        await expect(shown).to_have_attribute("data-tick", str(seed.tick(GATE_FAILED)))
        await expect(shown.locator('[data-field="reason"]')).to_have_text(
            "Gate failed: atr_percentile 97 outside 20 … 95."
        )
        await expect(shown.locator('tr[data-gate="atr_percentile"] td.result')).to_have_text("fail")
        await expect(tab.page.locator("#signals-status")).not_to_contain_text("following")

        await tab.goto(f"{V52_BTC}&at={seed.tick(COOLDOWN)}")
        await tab.ready()
        await expect(breakdown(tab).locator('[data-field="reason"]')).to_have_text(
            "In cooldown: it fired on this symbol less than 30m before."
        )
        await expect(tab.page.locator("#signals-status")).not_to_contain_text("following")


async def test_the_pickers_change_the_view_and_the_link(
    api: ApiUnderTest, browser: object, seeded: tuple[EngineSeed, Session]
) -> None:
    seed, session = seeded
    async with open_page(browser, api.base) as tab:
        await sign_in_at(tab, session, V52_BTC)
        page = tab.page
        await page.select_option("#range-picker", "1h")
        await expect(page).to_have_url(f"{api.base}{V52_BTC}&range=1h")
        await expect(page.locator("#evaluations-count")).to_have_text(
            "100 of 240, newest first; choose one for its breakdown."
        )

        await page.select_option("#strategy-picker", "v51")
        await expect(page).to_have_url(f"{api.base}/signals?strategy=v51&symbol=BTCUSDT&range=1h")
        await expect(page.locator("#strategy-facts")).to_contain_text(
            "Threshold 65 · minimum coverage 70%"
        )
        await expect(breakdown(tab)).to_have_attribute("data-tick", str(seed.latest))
        await expect(breakdown(tab).locator('[data-field="reason"]')).to_have_text(
            "No direction: needs |flow_mid| ≥ 0.03, confirmed by vwap_dev_mid of the same sign."
        )

        # A symbol the strategy has not evaluated yet: said in words, nothing broken.
        await page.select_option("#symbol-picker", "XRPUSDT")
        await expect(page).to_have_url(f"{api.base}/signals?strategy=v51&symbol=XRPUSDT&range=1h")
        await expect(page.locator("#signals-empty")).to_have_text(
            "No evaluations of v51 on XRPUSDT yet — the engine evaluates every 15 s once the "
            "tape is warm."
        )
        await check_page(tab, "signals-empty")
