"""The tape's continuity records served by a real daemon: completeness per UTC day and each
gap with its outcome and its place in time (``/api/trades/days``, ``/api/trades/gaps``),
on a tape written by the store's own writers (``tape_seed``)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from tests.e2e.api.harness import ApiUnderTest, Session
from tests.e2e.api.tape_seed import DAY, TapeSeed, seed_tape

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def seeded(api: ApiUnderTest) -> AsyncIterator[tuple[TapeSeed, Session]]:
    conn = await asyncpg.connect(api.db_url)
    try:
        seed = await seed_tape(conn, int(time.time() * 1000))
    finally:
        await conn.close()
    yield seed, await api.new_user("taper")


async def test_days_are_the_counted_days_overlapping_the_range_newest_first(
    api: ApiUnderTest, seeded: tuple[TapeSeed, Session]
) -> None:
    seed, session = seeded
    both = f"symbol=BTCUSDT&from={seed.day_a_ms}&to={seed.day_b_ms + DAY}"
    reply = await api.get(f"/api/trades/days?{both}", session.access)
    assert reply.status == 200, reply.body
    days = [{k: d[k] for k in d if k != "checked_at"} for d in reply.body["days"]]
    assert days == [
        {"day": seed.day_b.isoformat(), "first_id": 41, "last_id": 140, "rows": 90,
         "missing": 10, "completeness": 0.9},
        {"day": seed.day_a.isoformat(), "first_id": 1, "last_id": 40, "rows": 40,
         "missing": 0, "completeness": 1.0},
    ]  # fmt: skip
    assert all(d["checked_at"] for d in reply.body["days"])

    # A range that only touches day B's last hour still shows day B, and only it.
    late = f"symbol=BTCUSDT&from={seed.day_b_ms + DAY - 3_600_000}&to={seed.day_b_ms + DAY}"
    reply = await api.get(f"/api/trades/days?{late}", session.access)
    assert [d["day"] for d in reply.body["days"]] == [seed.day_b.isoformat()]
    # By default the last 30 days: both, for ETHUSDT only day B (33 of 40 ids).
    reply = await api.get("/api/trades/days?symbol=ETHUSDT", session.access)
    [eth] = reply.body["days"]
    assert (eth["rows"], eth["missing"], eth["completeness"]) == (33, 7, 33 / 40)


async def test_gaps_with_their_outcome_and_place_in_time(
    api: ApiUnderTest, seeded: tuple[TapeSeed, Session]
) -> None:
    seed, session = seeded
    reply = await api.get("/api/trades/gaps?symbol=BTCUSDT", session.access)
    assert reply.status == 200, reply.body
    assert reply.body["truncated"] is False
    rows = reply.body["rows"]
    btc = seed.btc_ts
    assert [
        (r["from_id"], r["to_id"], r["ids"], r["outcome"], r["prev_ts"], r["next_ts"]) for r in rows
    ] == [
        (110, 114, 5, "repaired", btc[109], btc[115]),
        (90, 99, 10, "hole", btc[89], btc[100]),
        (60, 69, 10, "repaired", btc[59], btc[70]),
    ]
    assert all(r["settled_at"] is not None and r["seen_at"] for r in rows)

    eth = (await api.get("/api/trades/gaps?symbol=ETHUSDT", session.access)).body["rows"]
    assert [(r["from_id"], r["to_id"], r["outcome"]) for r in eth] == [
        (30, 31, "open"),
        (15, 19, "hole"),
        (10, 19, "partly_repaired"),
    ]
    opened, hole, partly = eth
    assert opened["settled_at"] is None
    # Repaired but for the hole inside it: settled when the hole was recorded.
    assert partly["settled_at"] == hole["settled_at"] is not None
    assert (partly["prev_ts"], partly["next_ts"]) == (seed.eth_ts[9], seed.eth_ts[20])


async def test_gaps_outside_the_range_are_left_out_and_a_limit_truncates(
    api: ApiUnderTest, seeded: tuple[TapeSeed, Session]
) -> None:
    seed, session = seeded
    btc = seed.btc_ts
    # From day B's start to the trade just after 60–69: only that gap lies in it.
    early = f"symbol=BTCUSDT&from={seed.day_b_ms}&to={btc[70]}"
    reply = await api.get(f"/api/trades/gaps?{early}", session.access)
    assert [r["from_id"] for r in reply.body["rows"]] == [60]
    # Day A had no gap.
    day_a = f"symbol=BTCUSDT&from={seed.day_a_ms}&to={seed.day_b_ms}"
    reply = await api.get(f"/api/trades/gaps?{day_a}", session.access)
    assert reply.body["rows"] == []

    reply = await api.get("/api/trades/gaps?symbol=BTCUSDT&limit=1", session.access)
    assert reply.body["truncated"] is True
    assert [r["from_id"] for r in reply.body["rows"]] == [110]


async def test_bad_input_is_a_400_naming_the_field_and_no_token_a_401(
    api: ApiUnderTest, seeded: tuple[TapeSeed, Session]
) -> None:
    _, session = seeded
    for path in ("/api/trades/days", "/api/trades/gaps"):
        unknown = await api.get(f"{path}?symbol=DOGEUSDT", session.access)
        assert (unknown.status, unknown.error["code"], unknown.error["field"]) == (
            400,
            "unknown_symbol",
            "symbol",
        )
        missing = await api.get(path, session.access)
        assert (missing.status, missing.error["field"]) == (400, "symbol")
        too_long = await api.get(f"{path}?symbol=BTCUSDT&from=0&to={400 * DAY}", session.access)
        assert (too_long.status, too_long.error["code"]) == (400, "invalid_range")
        anonymous = await api.get(f"{path}?symbol=BTCUSDT")
        assert anonymous.status == 401
