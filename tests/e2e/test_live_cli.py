"""``arbengine live status`` and ``arbengine live reconcile --dry-run`` as a user runs
them: a real process, the real database, the simulated exchange over HTTP."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

import aiohttp
import asyncpg
import pytest

from arbengine.sim import SimServer
from arbengine.store.migrations import apply_migrations
from tests.conftest import REPO, free_port
from tests.e2e.api.live_seed import seed_live_data
from tests.service.sim.conftest import BASE, START
from tests.service.sim.simclient import control, signed


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
async def sim() -> AsyncIterator[SimServer]:
    server = SimServer(BASE)
    await server.start()
    await server.advance_to(START + 10_000)
    yield server
    await server.stop()


@pytest.fixture
def env(sim: SimServer, database_url: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "ARB_CONFIG": str(REPO / "config" / "arbengine.toml"),
        "ARB_DATABASE_URL": database_url,
        "ARB_LIVE_REST_URL": sim.rest_url,
        "ARB_EXCHANGE_API_KEY": sim.config.api_key,
        "ARB_EXCHANGE_API_SECRET": sim.config.api_secret,
    }


async def arbengine(*args: str, env: dict[str, str]) -> Result:
    """The command in its own process, while this loop keeps serving the sim."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "arbengine", *args, env=env, cwd=REPO,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def an_orphan(sim: SimServer) -> None:
    async with aiohttp.ClientSession() as http:
        await control(
            http,
            sim,
            "account",
            {"orphan": {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.010"}},
        )


async def exchange_state(sim: SimServer) -> tuple[dict[str, Decimal], list[object]]:
    async with aiohttp.ClientSession() as http:
        _, rows, _ = await signed(http, sim, "GET", "/fapi/v3/positionRisk")
        _, algos, _ = await signed(http, sim, "GET", "/fapi/v1/openAlgoOrders")
    return {r["symbol"]: Decimal(r["positionAmt"]) for r in rows}, algos


async def test_reconcile_dry_run_prints_what_it_would_do_and_does_nothing(
    sim: SimServer, env: dict[str, str]
) -> None:
    await an_orphan(sim)

    result = await arbengine(
        "live", "reconcile", "--dry-run", env={**env, "ARB_LIVE_ORPHAN_POLICY": "flatten"}
    )

    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith(
        "reconcile.orphan_flattened BTCUSDT reason=orphan_position amount=0.010 client_id=arf"
    )
    assert line.endswith("quantity=0.010")
    assert await exchange_state(sim) == ({"BTCUSDT": Decimal("0.010")}, [])


async def test_reconcile_dry_run_with_nothing_to_do_says_so(
    sim: SimServer, env: dict[str, str]
) -> None:
    result = await arbengine("live", "reconcile", "--dry-run", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "nothing to do: the exchange and the records agree\n"


async def test_status_shows_an_unprotected_position_and_the_records(
    sim: SimServer, env: dict[str, str]
) -> None:
    await an_orphan(sim)

    result = await arbengine("live", "status", env=env)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "open trades (0):"
    assert lines[1] == "exchange positions (1):"
    assert lines[2].startswith("  BTCUSDT 0.010 entry ")
    assert lines[2].endswith(" UNPROTECTED")
    assert lines[3] == "exchange open orders (0):"
    assert lines[4] == "last events (0 of 0 in 7 days):"


async def test_status_without_keys_shows_the_records_and_says_why_not_the_exchange(
    env: dict[str, str],
) -> None:
    del env["ARB_EXCHANGE_API_SECRET"]
    result = await arbengine("live", "status", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        "open trades (0):",
        "exchange: not asked: exchange.api_secret not set (ARB_EXCHANGE_API_SECRET[_FILE])",
    ]


@pytest.mark.parametrize(
    ("args", "drop_key", "message"),
    [
        (
            ["reconcile"],
            False,
            "arbengine: live reconcile: only --dry-run is offered; the daemon reconciles by "
            "itself (every live.reconcile_interval)",
        ),
        (
            ["reconcile", "--dry-run"],
            True,
            "arbengine: live reconcile: exchange.api_key not set (ARB_EXCHANGE_API_KEY[_FILE])",
        ),
    ],
)
async def test_a_mistake_is_one_line_and_exit_2(
    env: dict[str, str], args: list[str], drop_key: bool, message: str
) -> None:
    if drop_key:
        del env["ARB_EXCHANGE_API_KEY"]
    result = await arbengine("live", *args, env=env)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [message]


async def test_an_unreachable_exchange_is_one_line_and_exit_1(env: dict[str, str]) -> None:
    env["ARB_LIVE_REST_URL"] = f"http://127.0.0.1:{free_port()}"
    result = await arbengine("live", "reconcile", "--dry-run", env=env)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("arbengine: live reconcile: ")


async def test_status_shows_a_position_protected_by_its_stop(
    sim: SimServer, env: dict[str, str]
) -> None:
    await an_orphan(sim)
    async with aiohttp.ClientSession() as http:
        status, body, _ = await signed(
            http, sim, "POST", "/fapi/v1/algoOrder",
            {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
             "type": "STOP_MARKET", "triggerPrice": "1000", "closePosition": "true",
             "clientAlgoId": "by_hand_1"},
        )  # fmt: skip
    assert status == 200, body

    result = await arbengine("live", "status", env=env)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[2].endswith(" protected")
    assert lines[3:5] == [
        "exchange open orders (1):",
        "  BTCUSDT SELL STOP_MARKET closePosition by_hand_1",
    ]


async def test_status_compares_the_live_trades_with_their_paper_twins(
    env: dict[str, str], database_url: str
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
        await seed_live_data(conn, int(time.time() * 1000))
    finally:
        await conn.close()
    result = await arbengine("live", "status", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    at = lines.index("against paper (30 days):")
    # tests/e2e/api/live_seed.py: v52's BTCUSDT trade is the one with a closed twin.
    assert lines[at + 1 :] == [
        "  v51: 0 closed, 0 with a closed twin (0 same exits)",
        "  v52: 2 closed, 1 with a closed twin (1 same exits); R vs paper -0.200; "
        "entry slippage +10.00 bps (+0.050 R), exits -9.75 bps (-0.050 R); "
        "fees 0.020 R (paper 0.000), funding -0.005 R (paper +0.000)",
    ]
