"""The overview page: a card per symbol, the latest signals, open positions, risk, the tape.

One daemon holds the seeded deployment (the values below are worked out by hand from
the rows :func:`seed` writes); a second one, on a database nobody wrote to, is the
empty deployment a new installation shows. Live trading is off in both, as in a
default installation: the risk guard is seen running only through the page's
transport (the browser's network), answered with a risk reply of the API's own shape.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import pytest
import pytest_asyncio
from playwright.async_api import expect

from arbengine.api.risk_routes import LiveStatus, RiskReply
from arbengine.api.schemas import NotEvaluated
from arbengine.domain.engine_rows import (
    EvaluationBreakdown,
    EvaluationRow,
    ExitRule,
    PaperTradeExits,
    PaperTradeRow,
    PaperTradeState,
)
from arbengine.domain.live_rows import LiveOrderRow, LiveTradeRow
from arbengine.store import engine_sql, live_sql
from tests.conftest import REPO
from tests.e2e.api.harness import ApiUnderTest
from tests.e2e.dashboard.browser import (
    NEEDS_BROWSER,
    PageUnderTest,
    assert_clean,
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
FIRST_LOAD = REPO / "test-artifacts" / "first-load.json"


@dataclass(frozen=True)
class Seeded:
    now: int
    btc_marks: list[int]
    """Times of BTCUSDT's premiumIndex samples (the sparkline's 15-minute bars)."""
    ytd_annualised: str
    """BTCUSDT's year-to-date annualised mean as the page shows it."""
    live_trade: int


async def seed(conn: asyncpg.Connection, now: int) -> Seeded:
    # premiumIndex: BTCUSDT every 5 minutes for three hours, the last 2 s ago (mark
    # 101234.5, funding 0.0125% of an 8 h interval); ETHUSDT one sample 10 minutes ago
    # (funding every 4 h); SOLUSDT and XRPUSDT none.
    btc = [now - 2 * SECOND - (35 - k) * 5 * MINUTE for k in range(36)]
    rows = [
        (
            "BTCUSDT",
            ts,
            100_000.0 + 10 * k if k < 35 else 101_234.5,
            100_000.0 + 10 * k - 5,
            0.0001 if k < 35 else 0.000125,
            now + 2 * HOUR + 30 * MINUTE,
        )
        for k, ts in enumerate(btc)
    ]
    rows.append(("ETHUSDT", now - 10 * MINUTE, 2000.0, 1999.0, 0.0002, now + 30 * MINUTE))
    await conn.executemany(
        "INSERT INTO rate_snapshots (symbol, ts, known_at, mark_price, index_price, "
        "funding_rate, next_funding_time) VALUES ($1, $2, $2, $3, $4, $5, $6)",
        rows,
    )
    # Settled funding: BTCUSDT's last 7 days average 0.0001 (× 3 × 365 = 10.95%), and
    # one more, 8 days ago, counts for the year only; ETHUSDT 0.0002 every 4 h (43.80%).
    settled = [
        ("BTCUSDT", now - 1 * DAY, 0.0001),
        ("BTCUSDT", now - 2 * DAY, 0.0003),
        ("BTCUSDT", now - 3 * DAY, -0.0001),
        ("BTCUSDT", now - 8 * DAY, 0.0005),
        ("ETHUSDT", now - 1 * DAY, 0.0002),
        ("ETHUSDT", now - 2 * DAY, 0.0002),
    ]
    await conn.executemany(
        "INSERT INTO market_indicators (symbol, kind, ts, known_at, value, data) "
        "VALUES ($1, 'funding_rate', $2, $2, $3, '{}'::jsonb)",
        settled,
    )
    await conn.execute(
        "INSERT INTO market_indicators (symbol, kind, ts, known_at, value, data) "
        "VALUES ('ETHUSDT', 'funding_interval_hours', $1, $1, 4.0, '{}'::jsonb)",
        now - HOUR,
    )
    year = dt.datetime.fromtimestamp(now / 1000, dt.UTC).year
    start_of_year = int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    this_year = [v for s, ts, v in settled if s == "BTCUSDT" and ts >= start_of_year]
    ytd = sum(this_year) / len(this_year) * 3 * 365

    # The engine's latest evaluations (its writer): v52 BTCUSDT has an older row the page
    # must not show.
    def evaluation(
        strategy: str, symbol: str, tick: int, direction: int | None, score: float, **more: Any
    ) -> EvaluationRow:
        return EvaluationRow(
            strategy=strategy,
            strategy_hash="h1",
            symbol=symbol,
            tick=tick,
            direction=direction,
            score=score,
            coverage=more.get("coverage", 1.0),
            fired=more.get("reason") is None,
            reason=more.get("reason"),
            features={},
            contributions=EvaluationBreakdown(contributions={}, factors={}),
            gates={},
        )

    await engine_sql.insert_evaluations(
        conn,
        [
            evaluation("v51", "BTCUSDT", now - 30 * SECOND, 1, 0.87),
            evaluation(
                "v51", "ETHUSDT", now - 30 * SECOND, None, 0.12, coverage=0.75,
                reason="below threshold",
            ),
            evaluation("v52", "BTCUSDT", now - 20 * MINUTE, 1, 0.95),
            evaluation(
                "v52", "BTCUSDT", now - 5 * MINUTE, -1, -0.31, coverage=0.5,
                reason="in cooldown",
            ),
        ],
    )  # fmt: skip
    # Paper (the engine's writer): one open long on BTCUSDT from 100000 with 1000 of R
    # (the mark at 101234.5 is +1.23 R), and one closed trade the page must not list.
    rule = ExitRule(sl_atr=1.0, tp1_atr=2.0, tp1_fraction=0.5, tp2_atr=4.0, risk_usd=10.0)

    def paper(
        symbol: str, tick: int, closed_at: int | None, result_r: float | None
    ) -> PaperTradeRow:
        return PaperTradeRow(
            strategy="v51" if closed_at is None else "v52",
            strategy_hash="h1",
            symbol=symbol,
            direction=1,
            entry_tick=tick,
            entry_price=100_000.0,
            r_distance=1000.0,
            stop_loss=99_000.0,
            take_profit_1=102_000.0,
            take_profit_2=104_000.0,
            quantity=0.01,
            risk_usd=10.0,
            status="open" if closed_at is None else "closed",
            exits=PaperTradeExits(
                fills=[],
                funding=[],
                state=PaperTradeState(1.0, False, False, tick),
                rule=rule,
            ),
            exit_reason=None if closed_at is None else "tp2",
            closed_at=closed_at,
            last_agg_id=None,
            result_r=result_r,
            result_usd=None if result_r is None else result_r * 10,
            fees=0.0,
            funding=0.0,
        )

    await engine_sql.upsert_paper_trades(
        conn,
        [
            paper("BTCUSDT", now - HOUR, None, None),
            paper("ETHUSDT", now - 5 * HOUR, now - 4 * HOUR, 2.0),
        ],
    )
    # Live: a short on SOLUSDT left open, protected by its stop (the executor's writers).
    live_trade = await live_sql.upsert_trade(
        conn,
        LiveTradeRow(
            strategy="v52",
            strategy_hash="h52",
            symbol="SOLUSDT",
            signal_tick=now - HOUR,
            direction=-1,
            status="open",
            quantity=10.0,
            entry_price=50.0,
            stop_price=51.0,
            r_distance=1.0,
            risk_usd=10.0,
            opened_at=now - HOUR + 30 * SECOND,
        ),
    )
    await live_sql.upsert_order(
        conn,
        LiveOrderRow(
            client_order_id="sl-sol",
            trade_id=live_trade,
            role="sl",
            kind="algo",
            side="BUY",
            type="STOP_MARKET",
            trigger_price=51.0,
            close_position=True,
            status="NEW",
            exchange_order_id=12,
            symbol="SOLUSDT",
            status_time=now - HOUR + 40 * SECOND,
        ),
    )
    # The tape: BTCUSDT holds 90 of ids 1..100 (one hole, 50..59), yesterday 50 of 60.
    today = dt.datetime.fromtimestamp(now / 1000, dt.UTC).date()
    await conn.execute(
        "INSERT INTO agg_trades_meta (symbol, first_id, last_id, first_ts, last_ts, rows, "
        "gaps_seen, gaps_repaired, holes_left, holes) "
        "VALUES ('BTCUSDT', 1, 100, $1, $2, 90, 3, 2, 1, '[[50, 59]]')",
        now - 2 * DAY,
        now - 3 * SECOND,
    )
    await conn.executemany(
        "INSERT INTO agg_trades_daily (symbol, day, first_id, last_id, rows, completeness) "
        "VALUES ('BTCUSDT', $1, $2, $3, $4, $5)",
        [(today - dt.timedelta(days=1), 1, 60, 50, 50 / 60), (today, 61, 100, 40, 1.0)],
    )
    return Seeded(now, btc, f"{ytd * 100:.2f}%", live_trade)


# The engine is off: it would store evaluations of its own every tick (15 s), in place
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(api: ApiUnderTest) -> Seeded:
    conn = await asyncpg.connect(api.db_url)
    try:
        return await seed(conn, int(time.time() * 1000))
    finally:
        await conn.close()


def card(tab: PageUnderTest, symbol: str, key: str) -> Any:
    return tab.page.locator(f'#card-{symbol} [data-stat="{key}"] .stat-value')


def row(tab: PageUnderTest, panel: str, **data: str) -> Any:
    selector = "".join(f'[data-{k}="{v}"]' for k, v in data.items())
    return tab.page.locator(f"#{panel} tbody tr{selector}")


def seconds_left(text: str) -> int:
    h, m, s = (int(part) for part in text.split(":"))
    return h * 3600 + m * 60 + s


async def test_the_seeded_deployment_at_a_glance(
    api: ApiUnderTest, seeded: Seeded, browser: object
) -> None:
    session = await api.new_user("trader")
    async with open_page(browser, api.base) as tab:
        await log_in(tab, session.username, session.password)

        # A card per configured symbol, in the settings' order.
        await expect(tab.page.locator("#markets h3")).to_have_text(
            ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
        )
        await expect(card(tab, "BTCUSDT", "mark")).to_have_text("101234.50 USDT")
        await expect(card(tab, "BTCUSDT", "funding")).to_have_text("0.0125%")
        await expect(card(tab, "BTCUSDT", "annualised")).to_have_text("13.69%")
        await expect(card(tab, "BTCUSDT", "week")).to_have_text("10.95%")
        await expect(card(tab, "BTCUSDT", "ytd")).to_have_text(seeded.ytd_annualised)
        # ETHUSDT settles every 4 h: six times a day.
        await expect(card(tab, "ETHUSDT", "mark")).to_have_text("2000.00 USDT")
        await expect(card(tab, "ETHUSDT", "annualised")).to_have_text("43.80%")
        await expect(card(tab, "ETHUSDT", "week")).to_have_text("43.80%")
        await expect(tab.page.locator("#card-ETHUSDT .card-status .badge")).to_have_text(
            re.compile(r"^stale: 1[01] min old$")
        )
        await expect(card(tab, "SOLUSDT", "mark")).to_have_text("—")
        await expect(tab.page.locator("#card-SOLUSDT .card-status")).to_have_text(
            "No premiumIndex sample yet: the collector stores one every few seconds once it runs."
        )

        # The countdown to BTCUSDT's funding (2 h 30 min away at seeding) ticks down.
        countdown = card(tab, "BTCUSDT", "countdown")
        before = await countdown.text_content()
        assert before is not None
        elapsed_s = (time.time() * 1000 - seeded.now) / 1000
        assert abs(seconds_left(before) - (2.5 * 3600 - elapsed_s)) <= 2, before
        await expect(countdown).not_to_have_text(before)
        after = await countdown.text_content()
        assert after is not None
        assert seconds_left(after) < seconds_left(before), (before, after)

        # Each card's sparkline: a day of mark price in 15-minute bars.
        bars = len({ts // (15 * MINUTE) for ts in seeded.btc_marks})
        spark = tab.page.locator("#card-BTCUSDT .chart")
        await expect(spark).to_have_attribute("data-points", str(bars))
        assert await canvas_drawn(tab, "#card-BTCUSDT .chart")
        await expect(tab.page.locator("#card-SOLUSDT .spark-note")).to_have_text(
            "No mark price in the last 24 h."
        )

        # The latest evaluation per strategy and symbol, not an older one.
        fired = row(tab, "signals", strategy="v51", symbol="BTCUSDT")
        await expect(fired.locator(".score")).to_have_text("0.87")
        await expect(fired.locator(".outcome")).to_have_text("fired")
        held = row(tab, "signals", strategy="v52", symbol="BTCUSDT")
        await expect(held.locator(".score")).to_have_text("-0.31")
        await expect(held.locator(".outcome")).to_have_text("in cooldown")
        await expect(
            row(tab, "signals", strategy="v51", symbol="ETHUSDT").locator(".outcome")
        ).to_have_text("below threshold")
        await expect(tab.page.locator("#signals tbody tr")).to_have_count(3)

        # Open positions: the paper long, +1.23 R at the mark; live trading is off here,
        # and the stored live trade still open is listed as such.
        await expect(tab.page.locator("#paper-positions tbody tr")).to_have_count(1)
        paper = row(tab, "paper-positions", strategy="v51", symbol="BTCUSDT")
        await expect(paper.locator(".move")).to_have_text("+1.23 R")
        await expect(tab.page.locator("#live-off")).to_have_text(
            'Live trading is off in this daemon (README, "Trading live").'
        )
        live = row(tab, "live-positions", trade=str(seeded.live_trade))
        await expect(live.locator(".protection")).to_have_text("stop on")
        await expect(tab.page.locator("#risk-state")).to_have_text(
            "Risk guard runs with live trading; live is off."
        )

        # The tape at a glance.
        tape = row(tab, "tape", symbol="BTCUSDT")
        await expect(tape.locator(".complete")).to_have_text("90.00%")
        await expect(tape.locator(".today")).to_have_text("100.00%")
        await expect(tape.locator(".worst")).to_have_text("83.33%")
        await expect(tape.locator(".holes")).to_have_text("1")
        await expect(tape.locator(".gaps")).to_have_text("2 of 3")
        await check_page(tab, "overview")


async def test_what_a_collecting_live_daemon_adds(
    api: ApiUnderTest, seeded: Seeded, browser: object
) -> None:
    """The risk guard runs only with live trading, and an engine waits for a symbol's
    history only while collecting: both need the exchange. The browser's network (the
    page's transport) gives the risk guard's answer and adds a waiting pair to the
    daemon's own answer, each built from the API's declared shapes; the rest is the
    daemon's."""
    now = int(time.time() * 1000)
    risk = RiskReply(
        state="HALTED",
        paused=True,
        rule="daily_loss",
        reason="the day's realised loss reached 3 R",
        values={"realised_r": -3.0},
        since_ms=now - 10 * MINUTE,
        resume_after_ms=now + HOUR,
        breaks_today=1,
        refusals={"daily_loss": 2, "max_positions": 1},
        limits={},
        current={},
        transitions=[],
    )
    waiting = NotEvaluated(
        strategy="v51",
        symbol="SOLUSDT",
        waiting_for=["tape", "open_interest"],
        since=now / 1000 - 90,
        reason="its trades since start are still being fetched",
    )
    session = await api.new_user("risky")
    async with open_page(browser, api.base) as tab:
        faked: list[str] = []

        async def risk_guard(route: Any) -> None:
            faked.append("risk")
            await route.fulfill(
                status=200, content_type="application/json", body=msgspec.json.encode(risk)
            )

        async def latest_signals(route: Any) -> None:
            faked.append("signals")
            reply = await route.fetch()
            body = await reply.json()
            body["waiting"] = [msgspec.to_builtins(waiting)]
            await route.fulfill(response=reply, json=body)

        async def live_on(route: Any) -> None:
            faked.append("live")
            await route.fulfill(
                status=200,
                content_type="application/json",
                body=msgspec.json.encode(LiveStatus(enabled=True, environment="testnet")),
            )

        await tab.page.route("**/api/live/status", live_on)
        await tab.page.route("**/api/risk", risk_guard)
        await tab.page.route("**/api/signals/latest", latest_signals)
        await log_in(tab, session.username, session.password)
        assert {"live", "risk", "signals"} <= set(faked), faked
        await expect(tab.page.locator("#risk-state .badge")).to_have_text(
            ["HALTED", "entries paused"]
        )
        await expect(tab.page.locator("#risk-reason")).to_have_text(
            "daily_loss: the day's realised loss reached 3 R"
        )
        await expect(tab.page.locator('#risk [data-stat="breaks"] .stat-value')).to_have_text("1")
        await expect(tab.page.locator('#risk [data-stat="refused"] .stat-value')).to_have_text("3")
        await expect(tab.page.locator("#live-off")).to_have_count(0)
        live = row(tab, "live-positions", trade=str(seeded.live_trade))
        await expect(live.locator("td").nth(2)).to_have_text("Short")
        await expect(live.locator(".protection")).to_have_text("stop on")
        # The daemon's evaluations, and the pair not evaluated now.
        await expect(tab.page.locator("#signals tbody tr")).to_have_count(3)
        await expect(tab.page.locator("#signals-waiting li")).to_have_text(
            re.compile(
                r"^v51 SOLUSDT: waiting for tape, open_interest since .+ — "
                r"its trades since start are still being fetched$"
            )
        )
        assert_clean(tab)


async def test_an_empty_deployment_says_what_will_be_there(
    empty_api: ApiUnderTest, browser: object
) -> None:
    session = await empty_api.new_user("newcomer")
    async with open_page(browser, empty_api.base) as tab:
        live_asked: list[str] = []
        tab.page.on(
            "request",
            lambda req: live_asked.append(req.url) if "/api/live/status" in req.url else None,
        )
        await log_in(tab, session.username, session.password)
        await expect(tab.page.locator("#markets h3")).to_have_count(4)
        await expect(card(tab, "BTCUSDT", "mark")).to_have_text("—")
        await expect(card(tab, "BTCUSDT", "countdown")).to_have_text("—")
        await expect(card(tab, "BTCUSDT", "week")).to_have_text("—")
        await expect(tab.page.locator("#card-BTCUSDT .card-status")).to_have_text(
            "No premiumIndex sample yet: the collector stores one every few seconds once it runs."
        )
        await expect(tab.page.locator("#card-BTCUSDT .spark-note")).to_have_text(
            "No mark price in the last 24 h."
        )
        await expect(tab.page.locator("#signals .empty")).to_have_text(
            "No signals yet — the engine evaluates every 15 s once the tape is warm."
        )
        await expect(tab.page.locator("#paper-positions .empty")).to_have_text(
            "No open paper trade — one opens when a strategy's signal fires."
        )
        await expect(tab.page.locator("#live-off")).to_have_text(
            'Live trading is off in this daemon (README, "Trading live").'
        )
        await expect(tab.page.locator("#risk-state")).to_have_text(
            "Risk guard runs with live trading; live is off."
        )
        await expect(tab.page.locator("#tape .empty")).to_have_text(
            "No trades stored yet — the tape fills once collection runs."
        )
        # Live trading does not start in a running daemon: the page asked once and stops.
        # Showing the tab again runs every poll at once (poll.js); the risk guard's is over.
        async with tab.page.expect_response(lambda res: "/api/paper/trades" in res.url):
            await tab.page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
        assert len(live_asked) == 1, live_asked
        await check_page(tab, "overview-empty")


async def test_first_load_of_the_overview_is_measured(
    api: ApiUnderTest, seeded: Seeded, browser: object
) -> None:
    """The issue's target (≤ 1 s to the first chart, ≤ 500 KB) is reported, not asserted:
    a shared machine's timings say little. A new browser context: nothing cached, the
    session restored from the tab's refresh token as after a login."""
    session = await api.new_user("first")
    async with open_page(browser, api.base) as tab:
        await tab.page.add_init_script(
            f"sessionStorage.setItem('arbengine.refresh_token', {json.dumps(session.refresh)})"
        )
        await tab.goto("/")
        await tab.page.wait_for_function(
            "() => performance.getEntriesByName('first-chart').length > 0"
        )
        figures = await tab.page.evaluate(
            """() => {
                const mark = performance.getEntriesByName('first-chart')[0];
                const entries = [
                    ...performance.getEntriesByType('navigation'),
                    ...performance.getEntriesByType('resource'),
                ].filter((e) => e.startTime <= mark.startTime);
                const sum = (key) => entries.reduce((total, e) => total + (e[key] || 0), 0);
                return {
                    first_chart_ms: Math.round(mark.startTime),
                    transferred_bytes: sum('transferSize'),
                    encoded_body_bytes: sum('encodedBodySize'),
                    decoded_body_bytes: sum('decodedBodySize'),
                    requests: entries.length,
                };
            }"""
        )
        assert_clean(tab)
    assert figures["first_chart_ms"] > 0, figures
    assert figures["transferred_bytes"] > 0, figures
    FIRST_LOAD.parent.mkdir(parents=True, exist_ok=True)
    FIRST_LOAD.write_text(json.dumps(figures, indent=2) + "\n", "utf-8")
    print(f"first load of the overview on loopback: {figures}")
