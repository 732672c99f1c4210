"""``GET /api/server/database``: sizes and partitions, read from the catalogue.

The daemon keeps the current and the next two months of ``agg_trades`` ready at start; the
tests add an old month with a few trades, as an import or a backfill would, and compare
what the route says with what PostgreSQL says.
"""

from __future__ import annotations

import pytest

from arbengine.store.partitions import add_months, month_of_ms, month_start_ms
from tests.e2e.api.harness import ApiUnderTest

pytestmark = pytest.mark.asyncio(loop_scope="module")

OLD_MONTH = (2024, 1)
OLD_TRADES = 3


async def add_old_month(api: ApiUnderTest) -> None:
    lower = month_start_ms(*OLD_MONTH)
    upper = month_start_ms(*add_months(*OLD_MONTH, 1))
    await api.sql(
        f"CREATE TABLE IF NOT EXISTS agg_trades_202401 PARTITION OF agg_trades "
        f"FOR VALUES FROM ({lower}) TO ({upper})"
    )
    await api.sql("DELETE FROM agg_trades_202401")
    await api.sql_many(
        "INSERT INTO agg_trades (symbol, agg_id, ts, price, qty, first_trade_id, "
        "last_trade_id, is_buyer_maker) VALUES ($1, $2, $3, 100.5, 0.25, $2, $2, false)",
        [("BTCUSDT", n, lower + n * 1000) for n in range(1, OLD_TRADES + 1)],
    )
    await api.sql("ANALYZE agg_trades_202401")


async def test_the_route_needs_a_token(api: ApiUnderTest) -> None:
    reply = await api.get("/api/server/database")
    assert reply.status == 401
    assert reply.error["code"] == "unauthorized"


async def test_partitions_oldest_first_with_their_ranges_as_the_database_has_them(
    api: ApiUnderTest,
) -> None:
    session = await api.new_user("dba")
    await add_old_month(api)
    reply = await api.get("/api/server/database", token=session.access)
    assert reply.status == 200, reply.body

    catalogue = await api.sql(
        "SELECT c.relname, pg_total_relation_size(c.oid) AS bytes FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'agg_trades'::regclass ORDER BY c.relname"
    )
    (tape,) = reply.body["partitioned"]
    assert tape["table"] == "agg_trades"
    assert tape["key"] == "RANGE (ts)"
    assert tape["count"] == len(catalogue) == 4  # 2024-01, and now plus two months ahead
    assert [p["name"] for p in tape["partitions"]] == [r["relname"] for r in catalogue]
    assert {p["name"]: p["bytes"] for p in tape["partitions"]} == {
        r["relname"]: r["bytes"] for r in catalogue
    }
    assert tape["bytes"] == sum(r["bytes"] for r in catalogue)

    old = tape["partitions"][0]
    assert old["name"] == "agg_trades_202401"
    assert old["from_ms"] == month_start_ms(2024, 1) == tape["oldest_ms"]
    assert old["to_ms"] == month_start_ms(2024, 2)
    assert old["rows_estimate"] == OLD_TRADES
    # Consecutive months, the last ending two months after this one.
    now = await api.sql("SELECT (extract(epoch FROM now()) * 1000)::bigint AS ms")
    this_month = month_of_ms(now[0]["ms"])
    ahead = [add_months(*this_month, k) for k in range(3)]
    assert [(p["from_ms"], p["to_ms"]) for p in tape["partitions"][1:]] == [
        (month_start_ms(*m), month_start_ms(*add_months(*m, 1))) for m in ahead
    ]
    assert tape["newest_ms"] == month_start_ms(*add_months(*this_month, 3))


async def test_tables_with_their_sizes_and_row_estimates(api: ApiUnderTest) -> None:
    session = await api.new_user("dba")
    await add_old_month(api)
    await api.sql("ANALYZE users")
    reply = await api.get("/api/server/database", token=session.access)
    assert reply.status == 200, reply.body
    body = reply.body
    tables = {t["name"]: t for t in body["tables"]}

    # A partitioned table appears once, as the sum of its partitions; no partition alone.
    assert not any(name.startswith("agg_trades_2") for name in tables)
    tape = tables["agg_trades"]
    assert tape["partitions"] == 4
    assert tape["bytes"] == body["partitioned"][0]["bytes"]
    # Partitions never analysed are left out of the estimate, not counted as empty.
    analysed = await api.sql(
        "SELECT coalesce(sum(c.reltuples), 0)::bigint AS n FROM pg_inherits i "
        "JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'agg_trades'::regclass AND c.reltuples >= 0"
    )
    assert tape["rows_estimate"] == analysed[0]["n"] >= OLD_TRADES

    users = tables["users"]
    (count,) = await api.sql("SELECT count(*) AS n FROM users")
    assert users["partitions"] == 0
    assert users["rows_estimate"] == count["n"] >= 1
    (size,) = await api.sql("SELECT pg_total_relation_size('users') AS bytes")
    assert users["bytes"] == size["bytes"] > 0

    expected = await api.sql(
        "SELECT relname FROM pg_class WHERE relnamespace = current_schema()::regnamespace "
        "AND relkind IN ('r', 'p') AND NOT relispartition"
    )
    assert set(tables) == {r["relname"] for r in expected}
    assert [t["bytes"] for t in body["tables"]] == sorted(
        (t["bytes"] for t in body["tables"]), reverse=True
    )
    assert body["size_bytes"] >= sum(t["bytes"] for t in body["tables"])
