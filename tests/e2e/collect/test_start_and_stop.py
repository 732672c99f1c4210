"""A collecting daemon's first seconds and its last: logs from the start, rows at the stop."""

from __future__ import annotations

import signal

import orjson

from tests.e2e.collect.conftest import collect_env, fault
from tests.support.daemon import DaemonProcess


async def test_a_rest_retry_in_the_first_seconds_is_a_json_line(
    sim, database_url: str, daemon_env: dict, spawn_daemon
) -> None:
    # The start-up backfill's first aggTrades calls fail: the retry is logged at once.
    await fault(sim, {"http_5xx": {"count": 2, "status": 503, "path": "/fapi/v1/aggTrades"}})
    env = {**collect_env(sim, daemon_env, database_url), "ARB_COLLECT_INITIAL_BACKFILL": "1h"}
    daemon: DaemonProcess = await spawn_daemon(env)
    retry = await daemon.wait_for("collector.rest_retry")
    assert (retry["level"], retry["component"]) == ("warning", "collector")
    assert "503" in retry["error"]
    await daemon.wait_for("daemon.started")
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(timeout=30) == 0
    for text in daemon.raw:
        line = orjson.loads(text)
        assert {"timestamp", "level", "event", "component"} <= line.keys(), text
