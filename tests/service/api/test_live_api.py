"""The live trading routes in-process on a real PostgreSQL, on rows the executor's store
functions wrote (tests/e2e/api/live_seed.py), and the admin-only live configuration."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import argon2
import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from arbengine.api.context import ApiContext
from arbengine.api.http_app import build_app
from arbengine.settings import AuthSettings, LiveSettings, Settings
from arbengine.store.migrations import apply_migrations
from tests.e2e.api.live_seed import HOUR, MINUTE, LiveSeed, seed_live_data
from tests.support.waiting import eventually

PASSWORD = "correct horse battery staple"
LOADED = frozenset({"v51", "v52"})


async def _nothing() -> None:
    return None


async def _zero() -> int:
    return 0


@dataclass
class Live:
    client: TestClient
    pool: asyncpg.Pool
    seed: LiveSeed
    user: str
    """A user's access token."""
    admin: str
    admin_name: str

    async def get(self, path: str, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.user}"}
        response = await self.client.get(path, headers=headers)
        return response.status, await response.json()

    async def put(self, body: Any, token: str | None = None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token or self.admin}"}
        response = await self.client.put("/api/live/config", json=body, headers=headers)
        return response.status, await response.json()


async def _login(client: TestClient, pool: asyncpg.Pool, name: str, role: str) -> str:
    await pool.execute(
        "INSERT INTO users (username, password_hash, role) VALUES ($1, $2, $3)",
        name,
        argon2.PasswordHasher().hash(PASSWORD),
        role,
    )
    response = await client.post("/api/login", json={"username": name, "password": PASSWORD})
    assert response.status == 200, await response.text()
    token: str = (await response.json())["access_token"]
    return token


@pytest.fixture
async def live(database_url: str) -> AsyncIterator[Live]:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        seed = await seed_live_data(conn, int(time.time() * 1000))
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=6)
    settings = Settings(
        auth=AuthSettings(jwt_secret="s" * 48),
        live=LiveSettings(strategies=["v52"], risk_per_trade_usd=15.0, max_positions=3),
    )
    ctx = ApiContext(
        version="test",
        started_monotonic=time.monotonic(),
        started_at=time.time(),
        db_ping=_nothing,
        db_size=_zero,
        tasks=list,
        channels=list,
        pool=pool,
        settings=settings,
        strategies=lambda: LOADED,
    )
    client = TestClient(TestServer(build_app(ctx)))
    await client.start_server()
    try:
        user = await _login(client, pool, "trader", "user")
        admin = await _login(client, pool, "boss", "admin")
        yield Live(client, pool, seed, user, admin, "boss")
    finally:
        await client.close()
        await pool.close()


def _ids(body: dict[str, Any]) -> list[int]:
    return [row["id"] for row in body["rows"]]


# -- reads ---------------------------------------------------------------------------------------


async def test_trades_newest_signal_first_with_filters_and_the_paper_comparison(
    live: Live,
) -> None:
    s = live.seed
    status, body = await live.get("/api/live/trades")
    assert status == 200, body
    assert _ids(body) == [s.pending, s.open, s.not_opened, s.lost, s.won]
    assert body["truncated"] is False
    won = body["rows"][-1]
    assert (won["strategy"], won["symbol"], won["status"], won["exit_reason"]) == (
        "v52",
        "BTCUSDT",
        "closed",
        "tp2",
    )
    assert won["entry_fills"][0]["price"] == 100.1
    assert won["exit_fills"][0]["reason"] == "tp2"
    assert (won["paper_entry_price"], won["paper_result_r"]) == (100.0, 1.5)
    assert won["entry_slippage_bps"] == pytest.approx(10.0)
    assert won["entry_slippage_r"] == pytest.approx(0.05)
    assert won["r_vs_paper"] == pytest.approx(-0.2)
    assert won["exit_slippage_r"] == pytest.approx(-0.05)
    assert won["exit_slippage_bps"] == pytest.approx(-0.1 / 102.6 * 1e4)
    assert (won["fees_r"], won["paper_fees_r"]) == (pytest.approx(0.02), 0.0)
    assert (won["funding_r"], won["paper_funding_r"]) == (pytest.approx(-0.005), 0.0)
    assert won["split_r"] == pytest.approx(0.0)
    assert (won["exit_reasons"], won["paper_exit_reasons"], won["same_exits"]) == (
        ["tp2"],
        ["tp2"],
        True,
    )
    lost = body["rows"][-2]
    assert (lost["paper_entry_price"], lost["entry_slippage_r"], lost["r_vs_paper"]) == (
        None,
        None,
        None,
    )

    assert _ids((await live.get("/api/live/trades?strategy=v51"))[1]) == [s.pending]
    assert _ids((await live.get("/api/live/trades?status=closed"))[1]) == [s.lost, s.won]
    assert _ids((await live.get("/api/live/trades?symbol=BTCUSDT"))[1]) == [s.pending, s.won]
    since = s.now - 9 * HOUR
    assert _ids((await live.get(f"/api/live/trades?from={since}"))[1]) == [
        s.pending,
        s.open,
        s.not_opened,
        s.lost,
    ]
    status, page = await live.get("/api/live/trades?limit=2")
    assert (_ids(page), page["truncated"]) == ([s.pending, s.open], True)


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("status=done", "status", "status must be one of pending, open, closed, not_opened"),
        ("symbol=DOGEUSDT", "symbol", None),
        ("limit=0", "limit", "limit must be at least 1"),
        ("from=2000&to=1000", "from", "from (2000) must be before to (1000)"),
        ("strategy=a%20b", "strategy", "strategy is not in the expected format"),
        ("sort=id", "sort", None),
    ],
)
async def test_trade_queries_are_validated_naming_the_field(
    live: Live, query: str, field: str, message: str | None
) -> None:
    status, body = await live.get(f"/api/live/trades?{query}")
    assert status == 400, body
    assert body["error"]["field"] == field
    if message is not None:
        assert body["error"]["message"] == message


async def test_positions_are_open_trades_with_the_orders_protecting_them(live: Live) -> None:
    s = live.seed
    status, body = await live.get("/api/live/positions")
    assert status == 200, body
    rows = body["rows"]
    assert [r["trade"]["id"] for r in rows] == [s.open, s.pending]
    sol, btc = rows
    assert [(o["client_order_id"], o["role"], o["kind"]) for o in sol["orders"]] == [
        ("sl-sol", "sl", "algo"),
        ("tp1-sol", "tp1", "algo"),
    ]
    assert sol["orders"][0]["close_position"] is True
    assert sol["protected"] is True
    assert [o["client_order_id"] for o in btc["orders"]] == ["e-btc"]  # UNKNOWN: maybe there
    assert btc["protected"] is False
    status, only = await live.get("/api/live/positions?symbol=SOLUSDT")
    assert [r["trade"]["id"] for r in only["rows"]] == [s.open]
    status, none = await live.get("/api/live/positions?strategy=v99")
    assert (status, none) == (200, {"rows": []})


async def test_orders_with_status_history_filtered_by_strategy_role_state_and_time(
    live: Live,
) -> None:
    status, body = await live.get("/api/live/orders")
    assert status == 200, body
    by_id = {r["client_order_id"]: r for r in body["rows"]}
    assert set(by_id) == {"e-sol", "sl-sol", "tp1-sol", "e-btc", "e-xrp"}
    assert by_id["e-sol"]["strategy"] == "v52"
    assert by_id["e-sol"]["open"] is False
    assert by_id["e-btc"]["status"] == "UNKNOWN"
    assert by_id["sl-sol"]["status_history"][0]["status"] == "NEW"

    def names(reply: tuple[int, Any]) -> set[str]:
        assert reply[0] == 200, reply
        return {r["client_order_id"] for r in reply[1]["rows"]}

    assert names(await live.get("/api/live/orders?strategy=v51")) == {"e-btc"}
    assert names(await live.get("/api/live/orders?role=sl")) == {"sl-sol"}
    assert names(await live.get("/api/live/orders?state=open")) == {"sl-sol", "tp1-sol", "e-btc"}
    assert names(await live.get("/api/live/orders?state=done&symbol=XRPUSDT")) == {"e-xrp"}
    old = live.seed.now - 2 * HOUR
    assert names(await live.get(f"/api/live/orders?from={old}&to={old + HOUR}")) == set()
    status, page = await live.get("/api/live/orders?limit=3")
    assert (len(page["rows"]), page["truncated"]) == (3, True)
    status, bad = await live.get("/api/live/orders?role=Stop%20Loss")
    assert (status, bad["error"]["field"]) == (400, "role")


async def test_events_newest_first_by_level_kind_strategy_and_time(live: Live) -> None:
    status, body = await live.get("/api/live/events")
    assert status == 200, body
    assert [(e["kind"], e["level"], e["who"]) for e in body["rows"]] == [
        ("live.entry_unknown", "error", "executor"),
        ("live.orphan_found", "warning", "reconciler"),
        ("live.order_placed", "info", "executor"),
    ]
    assert body["rows"][1]["detail"] == {"quantity": 3.0}

    def kinds(reply: tuple[int, Any]) -> list[str]:
        assert reply[0] == 200, reply
        return [e["kind"] for e in reply[1]["rows"]]

    assert kinds(await live.get("/api/live/events?level=warning")) == ["live.orphan_found"]
    assert kinds(await live.get("/api/live/events?strategy=v52")) == ["live.order_placed"]
    assert kinds(await live.get("/api/live/events?kind=live.order_placed&symbol=SOLUSDT")) == [
        "live.order_placed"
    ]
    since = live.seed.now - 15 * MINUTE
    assert kinds(await live.get(f"/api/live/events?from={since}")) == ["live.entry_unknown"]
    status, bad = await live.get("/api/live/events?level=debug")
    assert (status, bad["error"]["field"]) == (400, "level")


async def test_summary_counts_results_costs_and_slippage_against_paper(live: Live) -> None:
    status, body = await live.get("/api/live/summary")
    assert status == 200, body
    v51, v52 = body["strategies"]
    assert v51 == {
        "strategy": "v51",
        "trades": 1,
        "open": 1,
        "closed": 0,
        "not_opened": 0,
        "wins": 0,
        "losses": 0,
        "win_rate": None,
        "total_r": 0.0,
        "total_usd": 0.0,
        "fees": 0.0,
        "funding": 0.0,
        "twins": 0,
        "same_exits": 0,
        "entry_slippage_r": None,
        "entry_slippage_bps": None,
        "exit_slippage_r": None,
        "exit_slippage_bps": None,
        "fees_r": None,
        "paper_fees_r": None,
        "funding_r": None,
        "paper_funding_r": None,
        "r_vs_paper": None,
    }
    assert {k: v52[k] for k in ("trades", "open", "closed", "not_opened", "wins", "losses")} == {
        "trades": 4,
        "open": 1,
        "closed": 2,
        "not_opened": 1,
        "wins": 1,
        "losses": 1,
    }
    assert v52["win_rate"] == 0.5
    assert v52["total_r"] == pytest.approx(0.3)
    assert v52["total_usd"] == pytest.approx(3.0)
    assert v52["fees"] == pytest.approx(0.3)
    assert v52["funding"] == pytest.approx(-0.05)
    assert v52["twins"] == 1
    assert v52["entry_slippage_r"] == pytest.approx(0.05)
    assert v52["entry_slippage_bps"] == pytest.approx(10.0)
    assert v52["r_vs_paper"] == pytest.approx(-0.2)
    assert v52["same_exits"] == 1
    assert v52["exit_slippage_r"] == pytest.approx(-0.05)
    assert v52["exit_slippage_bps"] == pytest.approx(-0.1 / 102.6 * 1e4)
    assert (v52["fees_r"], v52["paper_fees_r"]) == (pytest.approx(0.02), 0.0)
    assert (v52["funding_r"], v52["paper_funding_r"]) == (pytest.approx(-0.005), 0.0)

    status, btc = await live.get("/api/live/summary?symbol=BTCUSDT&strategy=v52")
    assert [(r["strategy"], r["trades"], r["twins"]) for r in btc["strategies"]] == [("v52", 1, 1)]
    recent = live.seed.now - 9 * HOUR
    status, later = await live.get(f"/api/live/summary?from={recent}")
    assert [r["trades"] for r in later["strategies"]] == [1, 3]


# -- the live configuration (admins) -------------------------------------------------------------


async def test_config_routes_refuse_anonymous_callers_and_users_with_the_error_shape(
    live: Live,
) -> None:
    for method in ("GET", "PUT"):
        response = await live.client.request(method, "/api/live/config", json={})
        assert response.status == 401
        assert (await response.json())["error"]["code"] == "unauthorized"
    forbidden = {
        "error": {"code": "forbidden", "message": "this route is for admins only", "field": None}
    }
    assert await live.get("/api/live/config", live.user) == (403, forbidden)
    valid = {"strategies": ["v52"], "risk_per_trade_usd": 5, "max_positions": 1, "paused": True}
    assert await live.put(valid, live.user) == (403, forbidden)
    # A user learns nothing from validation either.
    assert await live.put({"nonsense": 1}, live.user) == (403, forbidden)
    assert await live.pool.fetchval("SELECT count(*) FROM live_config") == 0


async def test_before_any_change_the_settings_file_is_in_force(live: Live) -> None:
    status, body = await live.get("/api/live/config", live.admin)
    assert (status, body) == (
        200,
        {
            "current": {
                "strategies": ["v52"],
                "risk_per_trade_usd": 15.0,
                "max_positions": 3,
                "paused": False,
                "source": "settings",
                "changed_by": None,
                "changed_at": None,
            },
            "history": [],
            "loaded_strategies": ["v51", "v52"],
        },
    )


async def test_a_change_is_in_force_with_who_and_when_and_audited(live: Live) -> None:
    first = {
        "strategies": ["v51", "v52"],
        "risk_per_trade_usd": 25.0,
        "max_positions": 2,
        "paused": False,
    }
    status, body = await live.put(first)
    assert status == 200, body
    assert body["current"] == {
        **first,
        "source": "api",
        "changed_by": live.admin_name,
        "changed_at": body["current"]["changed_at"],
    }
    status, _ = await live.put({**first, "strategies": [], "paused": True})
    assert status == 200
    status, view = await live.get("/api/live/config", live.admin)
    assert status == 200
    assert (view["current"]["strategies"], view["current"]["paused"]) == ([], True)
    assert [(h["strategies"], h["paused"]) for h in view["history"]] == [
        ([], True),
        (["v51", "v52"], False),
    ]
    assert view["history"][0]["changed_at"] > view["history"][1]["changed_at"]

    status, events = await live.get("/api/live/events?kind=live.config_changed")
    assert status == 200
    newest, oldest = events["rows"]
    assert newest["who"] == oldest["who"] == f"admin:{live.admin_name}"
    assert oldest["detail"]["before"] is None
    assert oldest["detail"]["after"]["risk_per_trade_usd"] == 25.0
    assert newest["detail"]["before"]["strategies"] == ["v51", "v52"]
    assert newest["detail"]["after"]["paused"] is True
    # What the executor reads: the latest row.
    latest = await live.pool.fetchrow(
        "SELECT paused, changed_by FROM live_config ORDER BY id DESC LIMIT 1"
    )
    assert (latest["paused"], latest["changed_by"]) == (True, live.admin_name)


VALID = {"strategies": ["v52"], "risk_per_trade_usd": 5.0, "max_positions": 1, "paused": False}


@pytest.mark.parametrize(
    ("change", "code", "field", "message"),
    [
        (
            {"strategies": ["v52", "v77"]},
            "unknown_strategy",
            "strategies",
            "strategies: 'v77' is not a loaded strategy (loaded: v51, v52)",
        ),
        (
            {"strategies": ["v52", "v52"]},
            "invalid_body",
            "strategies",
            "strategies: 'v52' is listed twice",
        ),
        (
            {"strategies": ["../x"]},
            "invalid_body",
            "strategies",
            "strategies must be an array of strings matching ^[A-Za-z0-9_.:-]{1,64}$",
        ),
        (
            {"risk_per_trade_usd": 0},
            "invalid_body",
            "risk_per_trade_usd",
            "risk_per_trade_usd must be greater than 0",
        ),
        (
            {"max_positions": 0},
            "invalid_body",
            "max_positions",
            "max_positions must be at least 1",
        ),
        ({"paused": "yes"}, "invalid_body", "paused", "paused must be bool, not str"),
        ({"leverage": 5}, "invalid_body", "leverage", None),
    ],
)
async def test_a_bad_change_is_a_one_line_400_naming_the_field_and_stores_nothing(
    live: Live, change: dict[str, Any], code: str, field: str, message: str | None
) -> None:
    status, body = await live.put({**VALID, **change})
    assert status == 400, body
    assert (body["error"]["code"], body["error"]["field"]) == (code, field)
    if message is not None:
        assert body["error"]["message"] == message
    assert "\n" not in body["error"]["message"]
    assert await live.pool.fetchval("SELECT count(*) FROM live_config") == 0


async def test_a_missing_field_is_named(live: Live) -> None:
    body = {k: v for k, v in VALID.items() if k != "paused"}
    status, reply = await live.put(body)
    assert (status, reply["error"]["message"], reply["error"]["field"]) == (
        400,
        "paused is required",
        "paused",
    )


async def test_concurrent_changes_are_all_recorded_in_one_order(live: Live) -> None:
    risks = [float(n) for n in range(1, 7)]
    replies = await asyncio.gather(*(live.put({**VALID, "risk_per_trade_usd": r}) for r in risks))
    assert [status for status, _ in replies] == [200] * len(risks)
    rows = await live.pool.fetch(
        "SELECT id, risk_per_trade_usd, changed_at FROM live_config ORDER BY id"
    )
    assert sorted(r["risk_per_trade_usd"] for r in rows) == risks
    times = [r["changed_at"] for r in rows]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    events = await live.pool.fetch(
        "SELECT detail FROM live_events WHERE kind = 'live.config_changed' ORDER BY at, id"
    )
    details = [orjson.loads(e["detail"]) for e in events]
    assert [d["after"]["risk_per_trade_usd"] for d in details] == [
        r["risk_per_trade_usd"] for r in rows
    ]
    # Each change saw the one stored just before it: no two saw the same "before".
    assert details[0]["before"] is None
    for earlier, later in itertools.pairwise(details):
        assert later["before"] == earlier["after"]
    status, view = await live.get("/api/live/config", live.admin)
    assert status == 200
    assert view["current"]["risk_per_trade_usd"] == rows[-1]["risk_per_trade_usd"]


async def test_a_demoted_admin_is_refused_from_the_next_request(live: Live) -> None:
    assert (await live.get("/api/live/config", live.admin))[0] == 200
    await live.pool.execute("UPDATE users SET role = 'user' WHERE username = $1", live.admin_name)

    async def refused() -> bool:
        return (await live.get("/api/live/config", live.admin))[0] == 403

    await eventually(refused, 10, what="the demotion seen by the API")
