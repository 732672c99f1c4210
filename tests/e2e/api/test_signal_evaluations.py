"""The routes the Signals page reads: evaluations over time, one evaluation in full, and the
strategies the engine runs (for the threshold and the hash).

Rows are the engine's own (``engine_seed``): v52 scored on chosen features, so the
breakdown of its long signal can be checked by hand.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from tests.e2e.api.engine_seed import (
    COOLDOWN,
    FIRED_LONG,
    FIRED_SHORT,
    GATE_FAILED,
    LONG_CONTRIBUTIONS,
    LONG_FEATURES,
    LONG_SCORE,
    QUIET_ENGINE,
    TICK,
    TICKS,
    EngineSeed,
    seed_engine_output,
)
from tests.e2e.api.harness import ApiUnderTest, Session, running_api
from tests.support.postgres import PgTestServer

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    async with running_api(
        pg_server, tmp_path_factory.mktemp("evaluations"), QUIET_ENGINE
    ) as under_test:
        yield under_test


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(api: ApiUnderTest) -> AsyncIterator[tuple[EngineSeed, Session]]:
    conn = await asyncpg.connect(api.db_url)
    try:
        seed = await seed_engine_output(conn, int(time.time() * 1000))
    finally:
        await conn.close()
    yield seed, await api.new_user("reader")


async def test_evaluations_over_time_newest_first_without_breakdown(
    api: ApiUnderTest, seeded: tuple[EngineSeed, Session]
) -> None:
    seed, session = seeded
    # The default range (the last 6 hours) holds the two hours seeded.
    reply = await api.get("/api/signals/evaluations?strategy=v52&symbol=BTCUSDT", session.access)
    assert reply.status == 200, reply.body
    rows = reply.body["rows"]
    assert [r["tick"] for r in rows] == [seed.tick(k) for k in reversed(range(TICKS))]
    assert reply.body["truncated"] is False
    assert (reply.body["strategy"], reply.body["symbol"]) == ("v52", "BTCUSDT")
    by_tick = {r["tick"]: r for r in rows}
    assert [r["tick"] for r in rows if r["fired"]] == [
        seed.tick(FIRED_SHORT),
        seed.tick(FIRED_LONG),
    ]
    assert by_tick[seed.tick(FIRED_LONG)] == {
        "tick": seed.tick(FIRED_LONG),
        "direction": 1,
        "score": pytest.approx(LONG_SCORE),
        "coverage": 90.0,
        "fired": True,
        "reason": None,
    }
    assert by_tick[seed.tick(FIRED_SHORT)]["direction"] == -1
    assert by_tick[seed.tick(COOLDOWN)]["reason"] == "cooldown"
    assert by_tick[seed.tick(GATE_FAILED)]["reason"] == "gate_failed"
    assert by_tick[seed.tick(410)]["score"] is None
    assert by_tick[seed.tick(410)]["reason"] == "no_direction"

    # A range and a limit: the newest of the range, and the answer says it is cut short.
    window = await api.get(
        f"/api/signals/evaluations?strategy=v52&symbol=BTCUSDT&from={seed.tick(FIRED_LONG)}"
        f"&to={seed.tick(FIRED_SHORT) + 1}&limit=3",
        session.access,
    )
    assert [r["tick"] for r in window.body["rows"]] == [
        seed.tick(FIRED_SHORT),
        seed.tick(FIRED_SHORT - 1),
        seed.tick(FIRED_SHORT - 2),
    ]
    assert window.body["truncated"] is True
    assert (window.body["from"], window.body["to"]) == (
        seed.tick(FIRED_LONG),
        seed.tick(FIRED_SHORT) + 1,
    )
    # Another strategy's rows are its own.
    v51 = await api.get("/api/signals/evaluations?strategy=v51&symbol=BTCUSDT", session.access)
    assert len(v51.body["rows"]) == 20
    assert {r["reason"] for r in v51.body["rows"]} == {"no_direction"}


async def test_evaluations_need_a_strategy_and_a_tracked_symbol(
    api: ApiUnderTest, seeded: tuple[EngineSeed, Session]
) -> None:
    _, session = seeded
    missing = await api.get("/api/signals/evaluations?symbol=BTCUSDT", session.access)
    assert missing.status == 400
    assert (missing.error["field"], missing.error["message"]) == (
        "strategy",
        "strategy is required",
    )
    unknown = await api.get("/api/signals/evaluations?strategy=v52&symbol=DOGEUSDT", session.access)
    assert (unknown.status, unknown.error["code"]) == (400, "unknown_symbol")
    too_long = await api.get(
        "/api/signals/evaluations?strategy=v52&symbol=BTCUSDT&from=0&to=864000000",
        session.access,
    )
    assert (too_long.status, too_long.error["field"]) == (400, "from")
    anonymous = await api.get("/api/signals/evaluations?strategy=v52&symbol=BTCUSDT")
    assert anonymous.status == 401


async def test_one_evaluation_in_full_at_or_before_a_time(
    api: ApiUnderTest, seeded: tuple[EngineSeed, Session]
) -> None:
    seed, session = seeded
    v52 = seed.strategies["v52"]
    at = seed.tick(FIRED_LONG)
    # Between two ticks: the evaluation before.
    reply = await api.get(
        f"/api/signals/evaluation?strategy=v52&symbol=BTCUSDT&at={at + TICK - 1}", session.access
    )
    assert reply.status == 200, reply.body
    e = reply.body["evaluation"]
    assert (e["tick"], e["direction"], e["fired"], e["reason"]) == (at, 1, True, None)
    assert e["strategy_hash"] == v52.hash
    assert e["score"] == pytest.approx(LONG_SCORE)
    assert e["coverage"] == 90.0
    assert e["features"] == LONG_FEATURES
    breakdown = e["contributions"]
    assert breakdown["contributions"] == pytest.approx(LONG_CONTRIBUTIONS)
    assert breakdown["factors"]["flow_mid"] == {
        "weight": 20.0,
        "value": 0.12,
        "score": pytest.approx(0.8),
        "contribution": pytest.approx(16.0),
    }
    assert breakdown["factors"]["coinbase_premium_bps"] == {
        "weight": 10.0,
        "value": None,
        "score": None,
        "contribution": None,
    }
    assert e["gates"] == {
        "atr_percentile": {"low": 20.0, "high": 95.0, "value": 50.0, "passed": True},
        "trades_fast": {"low": 50.0, "high": None, "value": 120.0, "passed": True},
    }

    gate = await api.get(
        f"/api/signals/evaluation?strategy=v52&symbol=BTCUSDT&at={seed.tick(GATE_FAILED)}",
        session.access,
    )
    assert gate.body["evaluation"]["reason"] == "gate_failed"
    assert gate.body["evaluation"]["gates"]["atr_percentile"]["passed"] is False

    latest = await api.get("/api/signals/evaluation?strategy=v52&symbol=BTCUSDT", session.access)
    assert latest.body["evaluation"]["tick"] == seed.latest

    before = await api.get(
        f"/api/signals/evaluation?strategy=v52&symbol=BTCUSDT&at={seed.tick(0) - 1}",
        session.access,
    )
    # None stored at or before the time, or none at all: said, not an error.
    assert (before.status, before.body) == (200, {"evaluation": None})
    none = await api.get("/api/signals/evaluation?strategy=v52&symbol=XRPUSDT", session.access)
    assert (none.status, none.body) == (200, {"evaluation": None})


async def test_the_strategies_the_engine_runs_with_threshold_and_hash(
    api: ApiUnderTest, seeded: tuple[EngineSeed, Session]
) -> None:
    seed, session = seeded
    reply = await api.get("/api/strategies", session.access)
    assert reply.status == 200, reply.body
    listed = reply.body["strategies"]
    assert [s["name"] for s in listed] == ["v51", "v52"]
    for info in listed:
        loaded = seed.strategies[info["name"]]
        assert info["hash"] == loaded.hash
        assert info["document"] == loaded.document()
        assert info["symbols"] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
        assert info["enabled"] is True
        assert info["tick_ms"] == 15_000
    assert [(s["threshold"], s["min_coverage"]) for s in listed] == [(65.0, 70.0), (70.0, 60.0)]
    assert (await api.get("/api/strategies")).status == 401
