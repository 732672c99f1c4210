"""A daemon trading live on the sim alerts its fills and exits: every ``live_events`` row
written passes the notifier's tap, and the signals still reach the executor."""

from __future__ import annotations

from arbengine.sim.server import SimServer
from tests.e2e.live.conftest import LIVE_STRATEGY, fetch, sim_account
from tests.service.notify.conftest import Receiver
from tests.support.daemon import DaemonProcess
from tests.support.waiting import eventually


async def test_live_fills_and_exits_are_alerted(
    live_sim: SimServer, live_env: dict[str, str], database_url: str, spawn_daemon
) -> None:
    sim = live_sim
    receiver = Receiver()
    await receiver.start()
    try:
        env = {**live_env, "ARB_ALERTS_WEBHOOK_URL": receiver.url,
               "ARB_ALERTS_BATCH_WINDOW": "100ms"}  # fmt: skip
        daemon: DaemonProcess = await spawn_daemon(env)
        await daemon.started()
        await daemon.wait_for("engine.warm_start")

        def alerts(kind: str) -> list[dict]:
            return [a for c in receiver.calls for a in c.body["alerts"] if a["kind"] == kind]

        async def opened() -> list[dict]:
            end = sim.sim_time_ms + 5_000
            while sim.sim_time_ms < end:
                await sim.advance_to(min(end, sim.sim_time_ms + 500))
            return alerts("trade.opened")

        first = (await eventually(opened, 120, interval=0.2, what="a trade.opened alert"))[0]
        trade_id = first["detail"]["trade_id"]
        [trade] = await fetch(database_url, "SELECT * FROM live_trades WHERE id = $1", trade_id)
        assert (first["symbol"], first["strategy"]) == (trade["symbol"], LIVE_STRATEGY)
        assert first["category"] == "trades"
        assert first["title"] == f"Trade opened {trade['symbol']} · {LIVE_STRATEGY}"
        # the signal it traded was alerted too, and still reached the executor
        assert any(
            a["detail"]["tick"] == trade["signal_tick"] and a["symbol"] == trade["symbol"]
            for a in alerts("signal")
        )
        # only the kinds people are told of: no order or protection rows
        kinds = {a["kind"] for c in receiver.calls for a in c.body["alerts"]}
        assert kinds <= {"daemon.started", "signal", "trade.opened", "trade.closed"}

        await sim_account(sim, {"liquidate": trade["symbol"]})

        async def closed() -> list[dict]:
            return [a for a in alerts("trade.closed") if a["detail"]["trade_id"] == trade_id]

        [exit_alert] = await eventually(closed, 30, what="the trade.closed alert")
        [ended] = await fetch(database_url, "SELECT * FROM live_trades WHERE id = $1", trade_id)
        assert exit_alert["detail"]["realised_r"] == ended["realised_r"]
        assert " R" in exit_alert["title"]
    finally:
        await receiver.stop()
