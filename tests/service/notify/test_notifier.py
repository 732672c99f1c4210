"""The notifier against a webhook receiver on loopback: batching, Discord's 429 and rate
limit headers, an outage of a minute (on a manual clock), giving up, the flush at stop,
and the URL never in a log."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from arbengine.domain.live_rows import LiveEventRow
from arbengine.logs import configure_logging
from arbengine.notify.alerts import Alert, live_event_alert
from arbengine.notify.notifier import (
    STOP_FLUSH_S,
    Notifier,
    discord_webhook,
    json_webhook,
    scrub,
)
from arbengine.notify.pacing import DeliveryPolicy
from arbengine.runtime.backoff import RetryPolicy
from arbengine.runtime.clock import ManualClock
from tests.conftest import free_port
from tests.service.notify.conftest import PATH, TOKEN, Receiver, Reply
from tests.support.waiting import eventually


def alert(n: int) -> Alert:
    return Alert(kind="signal", category="signals", at_ms=n, title=f"alert {n}", score=50.0)


def breaker() -> Alert:
    detail: dict[str, object] = {"from": "ACTIVE", "to": "HALTED", "reason": "daily loss"}
    row = LiveEventRow(at=datetime.now(UTC), kind="risk.state_changed", who="risk", detail=detail)
    made = live_event_alert(row)
    assert made is not None
    return made


@contextlib.asynccontextmanager
async def running(notifier: Notifier) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(notifier.run())
    try:
        yield task
    finally:
        notifier.request_stop()
        await asyncio.wait_for(task, 10)


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_burst_goes_out_as_one_message_per_sink(receiver: Receiver) -> None:
    notifier = Notifier(
        [discord_webhook(receiver.url), json_webhook(receiver.url + "/json")], batch_window_s=0.3
    )
    async with running(notifier):
        for n in range(5):
            notifier.publish(alert(n))
        calls = await receiver.wait_calls(2)
    # Stopped (and so flushed): nothing more came, a batch is one call per sink.
    assert len(receiver.calls) == 2
    by_path = {c.path: c.body for c in calls}
    assert [e["title"] for e in by_path[PATH]["embeds"]] == [f"alert {n}" for n in range(5)]
    assert [a["title"] for a in by_path[PATH + "/json"]["alerts"]] == [
        f"alert {n}" for n in range(5)
    ]


async def test_429_retry_after_is_honoured(receiver: Receiver) -> None:
    receiver.replies.append(Reply(429, body={"message": "rate limited", "retry_after": 0.6,
                                             "global": False}))  # fmt: skip
    notifier = Notifier([discord_webhook(receiver.url)], batch_window_s=0)
    before = metric("arb_notify_retries_total", sink="discord", reason="rate_limited")
    async with running(notifier):
        notifier.publish(alert(1))
        first, second = await receiver.wait_calls(2)
    assert second.at - first.at >= 0.6
    assert second.body == first.body  # the same message, sent again
    assert metric("arb_notify_retries_total", sink="discord", reason="rate_limited") == before + 1


async def test_an_empty_rate_limit_bucket_is_waited_for(receiver: Receiver) -> None:
    receiver.replies.append(
        Reply(204, headers={"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
                            "X-RateLimit-Reset-After": "0.6"})
    )  # fmt: skip
    notifier = Notifier([discord_webhook(receiver.url)], batch_window_s=0)
    async with running(notifier):
        notifier.publish(alert(1))
        await receiver.wait_calls(1)
        notifier.publish(alert(2))
        first, second = await receiver.wait_calls(2)
    assert second.at - first.at >= 0.6  # no 429 was needed to learn it


async def test_receiver_down_for_a_minute_loses_no_breaker_alert(receiver: Receiver) -> None:
    """Nothing listens on the port for 70 s of the notifier's (manual) clock while alerts
    keep coming: the publisher never waits, the queue stays bounded (oldest dropped, the
    breaker alert kept), and once the receiver is up the breaker alert is delivered."""
    port = free_port()
    url = f"http://127.0.0.1:{port}{PATH}"
    clock = ManualClock()
    notifier = Notifier(
        [discord_webhook(url)],
        queue_size=20,
        batch_window_s=1.0,
        delivery=DeliveryPolicy(max_attempts=50, max_age_s=900.0,
                                retry=RetryPolicy(initial_s=1.0, max_s=10.0)),
        clock=clock,
    )  # fmt: skip
    down = Receiver()
    try:
        with capture_logs() as logs:
            async with running(notifier):
                notifier.publish(breaker())
                published = 0
                while clock.monotonic() < 70.0:
                    for n in range(50):  # a burst every step: far more than the queue holds
                        notifier.publish(alert(n))
                        published += 1
                    assert len(notifier.outbox("discord")) <= 20
                    await clock.until_sleeping()
                    clock.advance(2_000)
                retries = [e for e in logs if e["event"] == "notify.retrying"]
                assert len(retries) >= 5  # the outage was real: calls failed, were retried
                await down.start(port)

                async def delivered() -> None:
                    while not down.calls:
                        await clock.until_sleeping()
                        clock.advance(1_000)
                        await asyncio.sleep(0.01)

                await asyncio.wait_for(delivered(), 20)
                calls = await down.wait_calls(1)
    finally:
        await down.stop()
    titles = [e["title"] for e in calls[0].body["embeds"]]
    assert titles[0] == "Trading ACTIVE → HALTED"
    assert notifier.outbox("discord").dropped_total >= published - 40
    assert not [e for e in logs if e["event"] == "notify.given_up"]


async def test_a_batch_is_given_up_after_max_attempts(receiver: Receiver) -> None:
    receiver.replies.extend([Reply(503)] * 3)
    clock = ManualClock()
    notifier = Notifier(
        [discord_webhook(receiver.url)], batch_window_s=0, clock=clock,
        delivery=DeliveryPolicy(max_attempts=3, retry=RetryPolicy(initial_s=1.0, max_s=2.0)),
    )  # fmt: skip
    before = metric("arb_notify_alerts_total", sink="discord", outcome="given_up")
    with capture_logs() as logs:
        async with running(notifier):
            notifier.publish(alert(1))
            for _ in range(2):
                await clock.until_sleeping()
                clock.advance(2_000)
            await receiver.wait_calls(3)
            notifier.publish(alert(2))  # the next batch goes, the first is not retried
            calls = await receiver.wait_calls(4)
    assert [c.body["embeds"][0]["title"] for c in calls] == ["alert 1"] * 3 + ["alert 2"]
    [given_up] = [e for e in logs if e["event"] == "notify.given_up"]
    assert (given_up["reason"], given_up["attempts"], given_up["alerts"]) == ("max_attempts", 3, 1)
    assert metric("arb_notify_alerts_total", sink="discord", outcome="given_up") == before + 1


async def test_a_rejected_payload_is_not_sent_again(receiver: Receiver) -> None:
    receiver.replies.append(Reply(404, body={"message": "Unknown Webhook", "code": 10015}))
    notifier = Notifier([json_webhook(receiver.url)], batch_window_s=0)
    with capture_logs() as logs:
        async with running(notifier):
            notifier.publish(alert(1))
            await receiver.wait_calls(1)
            notifier.publish(alert(2))
            await receiver.wait_calls(2)
    assert [c.body["alerts"][0]["title"] for c in receiver.calls] == ["alert 1", "alert 2"]
    assert [e["reason"] for e in logs if e["event"] == "notify.given_up"] == ["rejected"]


async def test_stop_sends_what_is_queued_at_once(receiver: Receiver) -> None:
    notifier = Notifier([discord_webhook(receiver.url)], batch_window_s=60.0)
    task = asyncio.create_task(notifier.run())
    notifier.publish(alert(1))
    await asyncio.sleep(0.1)  # the sender is in its (long) batch window
    started = time.monotonic()
    notifier.request_stop()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - started < 5
    assert [c.body["embeds"][0]["title"] for c in receiver.calls] == ["alert 1"]


async def test_a_hung_receiver_never_holds_the_stop(receiver: Receiver) -> None:
    receiver.replies.append(Reply(hang=True))
    notifier = Notifier([discord_webhook(receiver.url)], batch_window_s=0, request_timeout_s=60)
    task = asyncio.create_task(notifier.run())
    notifier.publish(alert(1))
    await receiver.wait_calls(1)  # the call hangs
    for n in range(2, 60):
        notifier.publish(alert(n))  # queued behind it
    with capture_logs() as logs:
        started = time.monotonic()
        notifier.request_stop()
        await asyncio.wait_for(task, STOP_FLUSH_S + 5)
    assert time.monotonic() - started < STOP_FLUSH_S + 1
    given_up = [(e["reason"], e["alerts"]) for e in logs if e["event"] == "notify.given_up"]
    assert given_up[0] == ("stopping", 1)  # the hung call, cut at the flush time
    assert sum(n for _, n in given_up) == 59  # and what was queued, without a call


def test_scrub_removes_the_url_and_its_token() -> None:
    url = f"https://discord.com{PATH}?thread_id=9"
    text = f"Connection timeout to host {url}; path {PATH}"
    scrubbed = scrub(text, url)
    assert TOKEN not in scrubbed
    assert "<url>" in scrubbed


async def test_the_url_is_never_logged(
    receiver: Receiver, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every failure path (5xx, 429, a hung receiver, nothing listening, a rejection),
    logged as JSON: the webhook's token appears nowhere."""
    configure_logging("debug", pretty=False)
    receiver.replies.extend([
        Reply(500), Reply(429, body={"retry_after": 0.05}), Reply(hang=True), Reply(403),
    ])  # fmt: skip
    absent = f"http://127.0.0.1:{free_port()}{PATH}"
    fast = DeliveryPolicy(max_attempts=2, retry=RetryPolicy(initial_s=0.05, max_s=0.1))
    notifier = Notifier(
        [discord_webhook(receiver.url), json_webhook(absent)],
        batch_window_s=0, delivery=DeliveryPolicy(max_attempts=10, retry=fast.retry),
        request_timeout_s=0.3,
    )  # fmt: skip
    given_up = {
        sink: metric("arb_notify_alerts_total", sink=sink, outcome="given_up")
        for sink in ("discord", "webhook")
    }

    async def both_given_up() -> bool:  # the 403 (discord) and the retries exhausted (webhook)
        return all(
            metric("arb_notify_alerts_total", sink=sink, outcome="given_up") > before
            for sink, before in given_up.items()
        )

    async with running(notifier):
        notifier.publish(alert(1))
        await receiver.wait_calls(4)
        await eventually(both_given_up, 10, what="both sinks' alert given up")
    out = capsys.readouterr().out
    assert '"notify.retrying"' in out
    assert '"notify.given_up"' in out  # the 403
    assert "HTTP 500" in out
    assert "TimeoutError" in out  # the hung call
    assert "ClientConnectorError" in out  # nothing listening
    assert TOKEN not in out
    assert "/api/webhooks/" not in out
    assert repr(discord_webhook(receiver.url)) == "Webhook('discord', url=***)"
