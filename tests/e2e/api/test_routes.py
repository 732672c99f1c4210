"""Every read route against a real daemon, on rows written straight into PostgreSQL.

The data is seeded once for the module before any route is asked (the cached
routes would otherwise keep an empty answer for their TTL). Expected values
are computed here by hand from the seeded rows.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

import asyncpg
import pytest
import pytest_asyncio

from tests.e2e.api.harness import SYMBOLS, ApiUnderTest, Session
from tests.e2e.api.seed import DAY, HOUR, MINUTE, seed_market_data

pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass(frozen=True)
class Seed:
    now: int
    base: int
    """Start of an hour three hours ago: the seeded bars live in [base, base + 2h)."""
    session: Session


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seed(api: ApiUnderTest) -> Seed:
    now = int(time.time() * 1000)
    base = (now // HOUR - 3) * HOUR
    conn = await asyncpg.connect(api.db_url)
    try:
        await seed_market_data(conn, now, base)
    finally:
        await conn.close()
    return Seed(now, base, await api.new_user("reader"))


# -- public ----------------------------------------------------------------------------------


async def test_health_is_public(api: ApiUnderTest) -> None:
    reply = await api.get("/api/health")
    assert (reply.status, reply.body) == (
        200,
        {"status": "ok", "process": "ok", "database": "ok", "reasons": []},
    )


async def test_rates_show_latest_sample_and_annualise_with_each_interval(
    api: ApiUnderTest, seed: Seed
) -> None:
    reply = await api.get("/api/rates")
    assert reply.status == 200
    rates = {r["symbol"]: r for r in reply.body["rates"]}
    assert list(rates) == list(SYMBOLS)
    btc = rates["BTCUSDT"]
    assert btc["ts"] == seed.base + 110 * MINUTE
    assert (btc["mark_price"], btc["index_price"]) == (111.0, 110.0)
    assert btc["funding_rate"] == pytest.approx(0.0006)
    assert btc["funding_interval_hours"] == 8.0  # none stored: the default
    assert btc["annualised_rate"] == pytest.approx(0.0006 * 3 * 365)
    assert btc["next_funding_time"] == seed.base + 8 * HOUR
    eth = rates["ETHUSDT"]
    assert eth["funding_interval_hours"] == 4.0  # the latest of 8 then 4
    assert eth["annualised_rate"] == pytest.approx(0.0002 * 6 * 365)
    assert rates["XRPUSDT"]["ts"] is None
    assert rates["XRPUSDT"]["annualised_rate"] is None


async def test_openapi_document_is_public_and_lists_every_route(api: ApiUnderTest) -> None:
    from arbengine.api.http_app import all_routes

    reply = await api.get("/api/openapi.json")
    assert reply.status == 200
    assert reply.body["openapi"] == "3.1.0"
    documented = {
        (method.upper(), path)
        for path, operations in reply.body["paths"].items()
        for method in operations
    }
    assert documented == {(r.method, r.path) for r in all_routes()}


async def test_metrics_are_public_prometheus_text(api: ApiUnderTest) -> None:
    reply = await api.get("/metrics")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/plain")
    assert b"arb_component_state" in reply.body


# -- authenticated ------------------------------------------------------------------------


async def test_server_needs_a_token_and_reports_tasks(api: ApiUnderTest, seed: Seed) -> None:
    assert (await api.get("/api/server")).status == 401
    reply = await api.get("/api/server", token=seed.session.access)
    assert reply.status == 200
    assert reply.body["version"]
    assert reply.body["database_size_bytes"] > 0
    assert reply.body["uptime_s"] >= 0
    assert {t["name"] for t in reply.body["tasks"]} >= {"partitions", "reload"}
    assert all(t["state"] == "running" for t in reply.body["tasks"])
    assert isinstance(reply.body["channels"], list)
    assert reply.body["symbols"] is None  # this daemon does not collect
    assert reply.body["degraded"] == []


async def test_snapshots_in_range_oldest_first_with_a_cursor(api: ApiUnderTest, seed: Seed) -> None:
    token = seed.session.access
    start, end = seed.base + 10 * MINUTE, seed.base + 60 * MINUTE
    reply = await api.get(f"/api/snapshots?symbol=BTCUSDT&from={start}&to={end}", token)
    assert reply.status == 200
    assert [r["ts"] for r in reply.body["rows"]] == [
        seed.base + k * 10 * MINUTE for k in range(1, 6)
    ]
    assert reply.body["rows"][0] == {
        "ts": start,
        "mark_price": 101.0,
        "index_price": 100.0,
        "estimated_settle_price": None,
        "funding_rate": pytest.approx(-0.0004),
        "interest_rate": None,
        "next_funding_time": seed.base + 8 * HOUR,
    }
    assert reply.body["next_from"] is None

    page = await api.get(f"/api/snapshots?symbol=BTCUSDT&from={start}&to={end}&limit=2", token)
    assert [r["ts"] for r in page.body["rows"]] == [start, start + 10 * MINUTE]
    assert page.body["next_from"] == start + 10 * MINUTE + 1
    rest = await api.get(
        f"/api/snapshots?symbol=BTCUSDT&from={page.body['next_from']}&to={end}&limit=5", token
    )
    assert [r["ts"] for r in rest.body["rows"]] == [seed.base + k * 10 * MINUTE for k in (3, 4, 5)]


async def test_kline_builds_ohlc_bars_of_funding_and_mark(api: ApiUnderTest, seed: Seed) -> None:
    window = f"symbol=BTCUSDT&interval=1h&from={seed.base}&to={seed.base + 2 * HOUR}"
    funding = await api.get(f"/api/kline?{window}&series=funding_rate", seed.session.access)
    assert funding.status == 200
    first, second = funding.body["bars"]
    assert first["ts"] == seed.base
    assert (first["open"], first["high"], first["low"], first["close"]) == pytest.approx(
        (-0.0005, 0.0, -0.0005, 0.0)
    )
    assert first["samples"] == 6
    assert second["ts"] == seed.base + HOUR
    assert (second["open"], second["close"]) == pytest.approx((0.0001, 0.0006))

    mark = await api.get(f"/api/kline?{window}&series=mark_price", seed.session.access)
    bars = mark.body["bars"]
    assert [(b["open"], b["high"], b["low"], b["close"]) for b in bars] == [
        (100.0, 105.0, 100.0, 105.0),
        (106.0, 111.0, 106.0, 111.0),
    ]
    fine = await api.get(
        f"/api/kline?symbol=BTCUSDT&interval=15m&from={seed.base}&to={seed.base + HOUR}",
        seed.session.access,
    )
    assert [b["samples"] for b in fine.body["bars"]] == [2, 1, 2, 1]  # 0,10 | 20 | 30,40 | 50


async def test_stats_are_seven_day_settled_funding_annualised(
    api: ApiUnderTest, seed: Seed
) -> None:
    reply = await api.get("/api/stats", seed.session.access)
    assert reply.status == 200
    stats = {s["symbol"]: s for s in reply.body["stats"]}
    btc = stats["BTCUSDT"]
    assert btc["samples"] == 3  # the 8-day-old rate is outside the window
    assert btc["mean"] == pytest.approx(0.0001)
    assert (btc["min"], btc["max"]) == pytest.approx((-0.0001, 0.0003))
    assert btc["annualised"] == pytest.approx(0.0001 * 3 * 365)
    eth = stats["ETHUSDT"]
    assert eth["annualised"] == pytest.approx(0.0002 * 6 * 365)
    assert stats["SOLUSDT"] == {
        "symbol": "SOLUSDT",
        "samples": 0,
        "mean": None,
        "min": None,
        "max": None,
        "annualised": None,
        "funding_interval_hours": 8.0,
        "first_ts": None,
        "last_ts": None,
    }
    assert reply.body["to"] - reply.body["from"] == 7 * DAY


async def test_ytd_counts_settled_funding_since_new_year(api: ApiUnderTest, seed: Seed) -> None:
    reply = await api.get("/api/stats/ytd", seed.session.access)
    assert reply.status == 200
    year = dt.datetime.fromtimestamp(reply.body["as_of"] / 1000, dt.UTC).year
    new_year = int(dt.datetime(year, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)
    assert (reply.body["year"], reply.body["from"]) == (year, new_year)
    rates = [
        r
        for ts, r in (
            (seed.now - 1 * DAY, 0.0001),
            (seed.now - 2 * DAY, 0.0003),
            (seed.now - 3 * DAY, -0.0001),
            (seed.now - 8 * DAY, 0.01),
        )
        if ts >= new_year
    ]
    btc = next(s for s in reply.body["stats"] if s["symbol"] == "BTCUSDT")
    assert btc["samples"] == len(rates)
    assert btc["cumulative"] == pytest.approx(sum(rates))
    assert btc["annualised"] == pytest.approx(sum(rates) / len(rates) * 3 * 365)


async def test_history_lists_seven_days_of_settled_funding(api: ApiUnderTest, seed: Seed) -> None:
    reply = await api.get("/api/history", seed.session.access)
    assert reply.status == 200
    assert [(r["symbol"], r["ts"]) for r in reply.body["rows"]] == [
        ("BTCUSDT", seed.now - 3 * DAY),
        ("BTCUSDT", seed.now - 2 * DAY),
        ("BTCUSDT", seed.now - 1 * DAY),
        ("ETHUSDT", seed.now - 2 * DAY),
        ("ETHUSDT", seed.now - 1 * DAY),
    ]
    only = await api.get("/api/history?symbol=BTCUSDT", seed.session.access)
    assert [(r["funding_rate"], r["mark_price"]) for r in only.body["rows"]] == [
        (-0.0001, None),
        (0.0003, 102.5),
        (0.0001, 101.5),
    ]


async def test_signal_history_with_breakdown_and_filters(api: ApiUnderTest, seed: Seed) -> None:
    token = seed.session.access
    reply = await api.get("/api/signals/history", token)
    assert reply.status == 200
    rows = reply.body["rows"]
    assert [(r["strategy"], r["symbol"]) for r in rows] == [
        ("v52", "BTCUSDT"),
        ("v51", "ETHUSDT"),
        ("v51", "BTCUSDT"),
    ]  # newest first; the 10-day-old one is outside the default 7 days
    assert rows[2]["features"] == {"oi": 1.5}
    assert rows[2]["contributions"] == {"oi_rule": 0.8}
    assert rows[1]["direction"] == -1
    assert reply.body["truncated"] is False

    v51 = await api.get("/api/signals/history?strategy=v51&symbol=BTCUSDT", token)
    assert [r["tick"] for r in v51.body["rows"]] == [seed.now - 3 * HOUR]
    window = await api.get(
        f"/api/signals/history?from={seed.now - 11 * DAY}&to={seed.now - 2 * HOUR}&limit=1", token
    )
    assert [r["strategy"] for r in window.body["rows"]] == ["v51"]
    assert window.body["truncated"] is True


async def test_latest_signal_evaluation_per_strategy_and_symbol(
    api: ApiUnderTest, seed: Seed
) -> None:
    reply = await api.get("/api/signals/latest", seed.session.access)
    assert reply.status == 200
    rows = reply.body["rows"]
    assert [(r["strategy"], r["symbol"], r["tick"]) for r in rows] == [
        ("v51", "BTCUSDT", seed.now - MINUTE),
        ("v52", "ETHUSDT", seed.now - MINUTE),
    ]
    assert rows[0]["fired"] is True
    assert rows[0]["gates"] == {"volume": True}
    assert rows[1]["reason"] == "warming up"
    only = await api.get("/api/signals/latest?strategy=v52", seed.session.access)
    assert [r["strategy"] for r in only.body["rows"]] == ["v52"]


async def test_trade_meta_reports_extent_holes_and_completeness(
    api: ApiUnderTest, seed: Seed
) -> None:
    reply = await api.get("/api/trades/meta", seed.session.access)
    assert reply.status == 200
    meta = {m["symbol"]: m for m in reply.body["symbols"]}
    btc = meta["BTCUSDT"]
    assert (btc["first_id"], btc["last_id"], btc["rows"]) == (1, 100, 90)
    assert btc["completeness"] == pytest.approx(0.9)
    assert (btc["gaps_seen"], btc["gaps_repaired"], btc["holes_left"]) == (3, 2, 1)
    assert btc["holes"] == [[50, 59]]
    assert [d["completeness"] for d in btc["daily"]] == pytest.approx([50 / 60, 1.0])
    assert meta["XRPUSDT"]["rows"] == 0
    assert meta["XRPUSDT"]["completeness"] is None


async def test_trade_summary_builds_ohlcv_bars(api: ApiUnderTest, seed: Seed) -> None:
    reply = await api.get(
        f"/api/trades/summary?symbol=BTCUSDT&interval=1h&from={seed.base}"
        f"&to={seed.base + 2 * HOUR}",
        seed.session.access,
    )
    assert reply.status == 200
    first, second = reply.body["bars"]
    assert first == {
        "ts": seed.base,
        "open": 100.0,
        "high": 105.0,
        "low": 95.0,
        "close": 101.0,
        "volume": 4.5,
        "quote_volume": pytest.approx(100.0 + 210.0 + 95.0 + 50.5),
        "buy_volume": 2.0,  # taker buys: the buyer was not the maker
        "trades": 1 + 3 + 1 + 2,
    }
    assert (second["open"], second["close"], second["volume"]) == (110.0, 110.0, 3.0)


async def test_liquidations_per_bar_with_totals_and_the_lower_bound_note(
    api: ApiUnderTest, seed: Seed
) -> None:
    window = f"interval=1h&from={seed.base}&to={seed.base + 2 * HOUR}"
    reply = await api.get(f"/api/liquidations?{window}", seed.session.access)
    assert reply.status == 200
    assert "lower bound" in reply.body["note"].lower()
    assert [(b["ts"], b["symbol"], b["side"], b["count"]) for b in reply.body["bars"]] == [
        (seed.base, "BTCUSDT", "BUY", 1),
        (seed.base, "BTCUSDT", "SELL", 3),
        (seed.base + HOUR, "ETHUSDT", "BUY", 4),
    ]
    sell = next(t for t in reply.body["totals"] if t["side"] == "SELL")
    assert (sell["count"], sell["qty"], sell["notional"]) == (3, 2.0, 200.0)
    btc = await api.get(f"/api/liquidations?symbol=BTCUSDT&{window}", seed.session.access)
    assert {b["symbol"] for b in btc.body["bars"]} == {"BTCUSDT"}


async def test_paper_trades_filtered_newest_first(api: ApiUnderTest, seed: Seed) -> None:
    token = seed.session.access
    reply = await api.get("/api/paper/trades", token)
    assert reply.status == 200
    assert [(r["strategy"], r["status"]) for r in reply.body["rows"]] == [
        ("v51", "open"),
        ("v51", "closed"),
        ("v51", "closed"),
        ("v52", "closed"),
    ]
    closed = await api.get("/api/paper/trades?strategy=v51&status=closed", token)
    assert [r["result_r"] for r in closed.body["rows"]] == [-1.0, 2.0]
    assert closed.body["rows"][1]["exits"] == [{"reason": "tp1"}]


async def test_paper_summary_counts_win_rate_r_and_equity(api: ApiUnderTest, seed: Seed) -> None:
    reply = await api.get("/api/paper/summary", seed.session.access)
    assert reply.status == 200
    v51, v52 = reply.body["strategies"]
    assert v51["strategy"] == "v51"
    assert (v51["trades"], v51["open"], v51["closed"], v51["wins"], v51["losses"]) == (
        3,
        1,
        2,
        1,
        1,
    )
    assert v51["win_rate"] == 0.5
    assert (v51["total_r"], v51["total_usd"]) == (1.0, 10.0)
    assert [(p["ts"], p["r"]) for p in v51["equity"]] == [
        (seed.now - 4 * HOUR, 2.0),
        (seed.now - 2 * HOUR, 1.0),
    ]
    assert (v52["win_rate"], v52["total_r"]) == (1.0, 1.5)
    only = await api.get("/api/paper/summary?strategy=v52", seed.session.access)
    assert [s["strategy"] for s in only.body["strategies"]] == ["v52"]
