"""Live trading in the daemon on the simulated exchange: a signal becomes a position
protected on the exchange; the account is traded by one daemon only; an account in hedge
mode is refused at start."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from arbengine.domain.live_rows import LiveConfigRow
from arbengine.settings import DatabaseSettings
from arbengine.sim.server import SimServer
from arbengine.store.database import open_database
from arbengine.store.live_records import LiveRecords
from tests.e2e.live.conftest import LIVE_STRATEGY, fetch, open_algo_orders, sim_account
from tests.support.daemon import BTC_STRATEGIES, DaemonProcess
from tests.support.waiting import eventually

BTC_STRATEGY = "btc-probe"


def plain_lines(daemon: DaemonProcess) -> list[str]:
    """What the daemon printed that is not a JSON log line (a refusal's one line)."""
    return [line for line in daemon.raw if not line.startswith("{")]


async def test_a_live_signal_becomes_a_protected_position(
    live_sim: SimServer, live_env: dict[str, str], database_url: str, spawn_daemon
) -> None:
    sim = live_sim
    daemon: DaemonProcess = await spawn_daemon(live_env)
    await daemon.started()
    started = await daemon.wait_for("live.started")
    assert started["strategies"] == [LIVE_STRATEGY]
    await daemon.wait_for("engine.warm_start")

    async def protected() -> list:
        end = sim.sim_time_ms + 5_000
        while sim.sim_time_ms < end:
            await sim.advance_to(min(end, sim.sim_time_ms + 500))
        return await fetch(
            database_url, "SELECT * FROM live_trades WHERE status = 'open' ORDER BY id"
        )

    trades = await eventually(protected, 120, interval=0.2, what="an open live trade")
    trade = trades[0]
    assert trade["strategy"] == LIVE_STRATEGY
    # The trade is that of a signal fired live (stored by the engine as well).
    fired = await fetch(
        database_url,
        "SELECT * FROM signal_logs WHERE strategy = $1 AND symbol = $2 AND tick = $3",
        trade["strategy"], trade["symbol"], trade["signal_tick"],
    )  # fmt: skip
    assert len(fired) == 1
    assert fired[0]["direction"] == trade["direction"]
    warm = daemon.events("engine.warm_start")[0]
    assert trade["signal_tick"] >= warm["to_ms"], "a catch-up tick was traded live"

    # On the exchange: the position, and its stop-loss and take-profit as algo orders.
    algos = await eventually(
        lambda: _algos_of(sim, trade["symbol"]), 30, what="the trade's protection"
    )
    kinds = {a["orderType"] for a in algos}
    assert "STOP_MARKET" in kinds
    assert kinds & {"TAKE_PROFIT_MARKET", "TAKE_PROFIT"}
    stop = next(a for a in algos if a["orderType"] == "STOP_MARKET")
    assert stop["closePosition"] is True
    assert float(stop["triggerPrice"]) == trade["stop_price"]
    entry_side = "BUY" if trade["direction"] == 1 else "SELL"
    assert all(a["side"] != entry_side for a in algos)

    # The records: the entry filled with its fills; each algo order stored as the exchange has it.
    assert trade["entry_price"] is not None
    assert trade["quantity"] > 0
    assert json.loads(trade["entry_fills"])
    orders = await fetch(database_url, "SELECT * FROM live_orders WHERE trade_id = $1", trade["id"])
    by_id = {o["client_order_id"]: o for o in orders}
    entry = [o for o in orders if o["role"] == "entry"]
    assert [o["status"] for o in entry] == ["FILLED"]
    for algo in algos:
        assert by_id[algo["clientAlgoId"]]["status"] == "NEW"
    events = await fetch(database_url, "SELECT kind FROM live_events ORDER BY id")
    kinds_seen = [e["kind"] for e in events]
    assert {"trade.created", "trade.opened", "trade.protected"} <= set(kinds_seen)
    # The user stream is wired to the executor (its first connection's resync reached it).
    await daemon.wait_for("live.resync")

    # The exchange ends the position (a liquidation): the daemon closes the trade as the
    # exchange did and cancels what protected it.
    await sim_account(sim, {"liquidate": trade["symbol"]})

    async def closed() -> list:
        return await fetch(
            database_url, "SELECT * FROM live_trades WHERE id = $1 AND status = 'closed'",
            trade["id"],
        )  # fmt: skip

    [ended] = await eventually(closed, 30, what="the liquidated trade closed")
    assert ended["exit_reason"] == "exchange"
    assert ended["closed_at"] is not None
    # Its protection is gone (a later signal may already have opened the next trade).
    still_open = {a["clientAlgoId"] for a in await _algos_of(sim, trade["symbol"])}
    assert still_open.isdisjoint(a["clientAlgoId"] for a in algos)


async def _algos_of(sim: SimServer, symbol: str) -> list[dict]:
    return [a for a in await open_algo_orders(sim) if a["symbol"] == symbol]


async def test_a_second_daemon_on_the_same_account_refuses_to_trade(
    live_env: dict[str, str], spawn_daemon, tmp_path: Path
) -> None:
    first: DaemonProcess = await spawn_daemon(live_env)
    await first.started()
    await first.wait_for("live.started")
    # The same account and database, a daemon of its own (port, data directory).
    second_env = {**live_env, "ARB_HTTP_PORT": str(int(live_env["ARB_HTTP_PORT"]) + 1)}
    second: DaemonProcess = await spawn_daemon(second_env)
    assert await second.wait_exit(timeout=60) == 2
    holder = first.events("live.started")[0]["lock_session"]
    refused = second.events("live.account_in_use")
    assert len(refused) == 1
    error = refused[0]["error"]
    assert error.startswith(f"another executor trades this account: database session {holder}")
    assert plain_lines(second) == [f"arbengine: {error}"]
    assert not second.events("live.started")
    assert not first.events("daemon.stopped"), "the first daemon trades on"


async def test_hedge_mode_at_start_is_refused_with_one_line(
    live_sim: SimServer, live_env: dict[str, str], spawn_daemon
) -> None:
    await sim_account(live_sim, {"dual_side_position": True})
    daemon: DaemonProcess = await spawn_daemon(live_env)
    assert await daemon.wait_exit(timeout=60) == 2
    assert plain_lines(daemon) == [
        "arbengine: live: hedge mode is on for this account (dualSidePosition true); the "
        "executor trades one-way mode: turn hedge mode off, then start again"
    ]
    assert not daemon.events("daemon.started")


async def test_multi_assets_mode_at_start_is_refused_with_one_line(
    live_sim: SimServer, live_env: dict[str, str], spawn_daemon
) -> None:
    await sim_account(live_sim, {"multi_assets_margin": True})
    daemon: DaemonProcess = await spawn_daemon(live_env)
    assert await daemon.wait_exit(timeout=60) == 2
    assert plain_lines(daemon) == [
        "arbengine: live: multi-assets margin mode is on for this account; the executor "
        "sizes from the USDT balance alone: turn it off, then start again"
    ]


async def test_a_refused_key_and_an_unknown_live_strategy_are_one_line(
    live_env: dict[str, str], spawn_daemon
) -> None:
    wrong_key = {**live_env, "ARB_EXCHANGE_API_KEY": "not-the-sim-key"}
    daemon: DaemonProcess = await spawn_daemon(wrong_key)
    assert await daemon.wait_exit(timeout=60) == 2
    [line] = plain_lines(daemon)
    assert line.startswith("arbengine: live: the exchange refused the API key (-20")
    assert "not-the-sim-key" not in "\n".join(daemon.raw)

    unknown = {**live_env, "ARB_LIVE_STRATEGIES": "nosuch"}
    daemon = await spawn_daemon(unknown)
    assert await daemon.wait_exit(timeout=60) == 2
    [line] = plain_lines(daemon)
    assert line.startswith(
        f"arbengine: config error: live.strategies: nosuch not among the loaded strategies "
        f"({LIVE_STRATEGY}) in "
    )


async def test_run_sim_points_live_trading_at_the_inprocess_exchange(
    spawn_daemon, daemon_env: dict[str, str], database_url: str
) -> None:
    env = {
        **daemon_env,
        "ARB_DATABASE_URL": database_url,
        "ARB_COLLECT_SYMBOLS": "BTCUSDT",
        "ARB_ENGINE_STRATEGIES_DIR": str(BTC_STRATEGIES),
        "ARB_LIVE_ENABLED": "true",
        "ARB_LIVE_STRATEGIES": BTC_STRATEGY,
        # Required by the settings; --sim replaces them with the sim's own.
        "ARB_EXCHANGE_API_KEY": "placeholder",
        "ARB_EXCHANGE_API_SECRET": "placeholder",
    }
    daemon: DaemonProcess = await spawn_daemon(env, ["run", "--sim", "--sim-speed", "5"])
    await daemon.started()
    sim = daemon.events("daemon.sim_started")[0]
    live = daemon.events("live.started")[0]
    assert live["rest_url"] == sim["rest"]
    await daemon.wait_for("user_stream.resync")
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(30) == 0


async def test_the_latest_live_config_overrides_the_file(
    live_sim: SimServer, live_env: dict[str, str], database_url: str, spawn_daemon
) -> None:
    async with open_database(DatabaseSettings(url=database_url), owner=False) as db:
        await LiveRecords(db).set_config(
            LiveConfigRow(
                strategies=[LIVE_STRATEGY], risk_per_trade_usd=5.0, max_positions=1,
                paused=True, changed_by="admin:alice",
            )
        )  # fmt: skip
    daemon: DaemonProcess = await spawn_daemon(live_env)
    await daemon.started()
    started = await daemon.wait_for("live.started")
    assert started["from_live_config"] is True
    assert (started["strategies"], started["paused"]) == ([LIVE_STRATEGY], True)

    async def a_signal() -> list:
        end = live_sim.sim_time_ms + 5_000
        while live_sim.sim_time_ms < end:
            await live_sim.advance_to(min(end, live_sim.sim_time_ms + 500))
        return daemon.events("engine.signal")

    await eventually(a_signal, 120, interval=0.2, what="a fired signal")
    await eventually(lambda: fetch(database_url, "SELECT 1 FROM signal_logs"), 30)
    assert await fetch(database_url, "SELECT * FROM live_trades") == []
    assert await open_algo_orders(live_sim) == []


async def test_production_says_so_once_at_start(live_env: dict[str, str], spawn_daemon) -> None:
    production = {**live_env, "ARB_LIVE_ENVIRONMENT": "production"}  # its URLs: the sim's
    daemon: DaemonProcess = await spawn_daemon(production)
    await daemon.started()
    started = await daemon.wait_for("live.started")
    assert started["environment"] == "production"
    [line] = daemon.events("live.production")
    assert line["level"] == "warning"
    assert line["rest_url"] == production["ARB_LIVE_REST_URL"]
    assert line["strategies"] == [LIVE_STRATEGY]


async def test_a_testnet_start_has_no_production_line(
    live_env: dict[str, str], spawn_daemon
) -> None:
    daemon: DaemonProcess = await spawn_daemon(live_env)
    await daemon.started()
    assert (await daemon.wait_for("live.started"))["environment"] == "testnet"
    assert daemon.events("live.production") == []


async def test_losing_the_account_lock_stops_the_daemon(
    live_env: dict[str, str], database_url: str, spawn_daemon
) -> None:
    daemon: DaemonProcess = await spawn_daemon(live_env)
    await daemon.started()
    session = (await daemon.wait_for("live.started"))["lock_session"]
    [ended] = await fetch(database_url, "SELECT pg_terminate_backend($1) AS ok", session)
    assert ended["ok"] is True
    assert await daemon.wait_exit(timeout=60) == 1
    [lost] = daemon.events("live.lock_lost")
    assert lost["lock_session"] == session
    assert daemon.events("daemon.stopped")[0]["exit_code"] == 1


async def test_the_daemon_reconciles_an_orphan_found_after_start(
    live_sim: SimServer, live_env: dict[str, str], database_url: str, spawn_daemon
) -> None:
    env = {**live_env, "ARB_LIVE_RECONCILE_INTERVAL": "1s"}
    daemon: DaemonProcess = await spawn_daemon(env)
    await daemon.started()
    await daemon.wait_for("live.started")
    # Opened behind the daemon's back once it runs: only a later round can find it (the sim's
    # time stands still, so no signal is traded on the way).
    await sim_account(
        live_sim, {"orphan": {"symbol": "BTCUSDT", "side": "BUY", "quantity": "0.010"}}
    )

    protected = await daemon.wait_for("live.reconcile.orphan_protected", timeout=30)
    assert (protected["symbol"], protected["outcome"]) == ("BTCUSDT", "placed")
    [stop] = await _algos_of(live_sim, "BTCUSDT")
    assert (stop["orderType"], stop["side"], stop["closePosition"]) == ("STOP_MARKET", "SELL", True)

    async def recorded() -> list:
        return await fetch(
            database_url, "SELECT who FROM live_events WHERE kind = 'reconcile.orphan_protected'"
        )

    rows = await eventually(recorded, 10, what="the orphan's protection recorded")
    assert [r["who"] for r in rows] == ["reconciler"]
