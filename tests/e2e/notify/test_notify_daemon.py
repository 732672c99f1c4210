"""The daemon as a process on the simulated exchange, with both webhooks pointing at a
receiver on loopback: it posts its start, the signals it fires and its stop."""

from __future__ import annotations

import json
import signal
from collections.abc import AsyncIterator

import pytest

from tests.e2e.engine.conftest import EngineRun
from tests.service.notify.conftest import PATH, TOKEN, Receiver
from tests.support.waiting import eventually


@pytest.fixture
async def alert_receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
def engine_env(alert_receiver: Receiver) -> dict[str, str]:
    return {
        "ARB_ALERTS_DISCORD_WEBHOOK_URL": alert_receiver.url,
        "ARB_ALERTS_WEBHOOK_URL": alert_receiver.url + "/json",
        "ARB_ALERTS_BATCH_WINDOW": "100ms",
    }


def alerts(receiver: Receiver, kind: str) -> list[dict]:
    """The JSON webhook's alerts of ``kind`` received so far."""
    return [
        a for c in receiver.calls if c.path.endswith("/json") for a in c.body["alerts"]
        if a["kind"] == kind
    ]  # fmt: skip


def embeds(receiver: Receiver, footer: str) -> list[dict]:
    """The Discord embeds for alerts of kind ``footer`` received so far."""
    return [
        e for c in receiver.calls if c.path == PATH for e in c.body["embeds"]
        if e["footer"]["text"] == footer
    ]  # fmt: skip


async def test_daemon_posts_start_signal_and_stop_alerts(
    engine_run: EngineRun, alert_receiver: Receiver
) -> None:
    run, receiver = engine_run, alert_receiver

    async def started() -> list[dict]:
        return alerts(receiver, "daemon.started")

    [start] = await eventually(started, 15, what="the start alert")
    assert start["fields"]["strategies"] == '["probe"]'
    assert embeds(receiver, "daemon.started")[0]["title"] == "Daemon started"

    async def fired() -> list[dict]:
        await run.advance(5)
        return alerts(receiver, "signal")

    first = (await eventually(fired, 90, interval=0.2, what="a signal alert"))[0]
    stored = await run.fetch(
        "SELECT * FROM signal_logs WHERE tick = $1 AND symbol = $2 AND strategy = 'probe'",
        first["detail"]["tick"], first["symbol"],
    )  # fmt: skip
    assert len(stored) == 1
    assert first["detail"]["strategy_hash"] == stored[0]["strategy_hash"]
    assert first["detail"]["contributions"] == json.loads(stored[0]["contributions"])
    assert first["detail"]["score"] == pytest.approx(stored[0]["score"])

    async def embedded() -> list[dict]:
        return embeds(receiver, "signal")

    [embed, *_] = await eventually(embedded, 10, what="the signal's Discord embed")
    assert embed["title"].startswith("Signal ")

    run.daemon.send(signal.SIGTERM)
    assert await run.daemon.wait_exit(30) == 0
    assert alerts(receiver, "daemon.stopping")  # sent before the process ended
    assert not any(TOKEN in line for line in run.daemon.raw)
