"""The notifier: ``publish`` queues an alert for every sink at once and never waits; a
sender per sink drains its queue in batches and delivers each within the receiver's
limits, backing off while it is down (``pacing.py``).

One sink never holds up another: each has its own queue (``outbox.py``), sender, bucket
and retries. A batch being delivered stays in its sender through an outage (the queue
behind it fills, and drops its oldest when full), so an alert published before a
receiver went down for a minute is delivered once it is back.

At shutdown (``request_stop``) the senders deliver what is queued without waiting out
batch windows or backoffs (a rate limit is still honoured), within ``STOP_FLUSH_S``,
then return: the daemon's ``daemon.stopping`` alert is sent before the process ends,
and a receiver that hangs or is down then never holds the shutdown (what is left is
given up, reason ``stopping``).

URLs are secrets: logs name the sink (``discord``, ``webhook``), never its URL, and an
error's text is scrubbed of it (aiohttp puts the URL into some exceptions).
"""

from __future__ import annotations

import asyncio
import random
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
from prometheus_client import Counter, Gauge

from arbengine.logs import get_logger
from arbengine.notify.alerts import CATEGORIES, Alert, AlertRules
from arbengine.notify.discord import MAX_EMBEDS, discord_messages
from arbengine.notify.json_webhook import json_body
from arbengine.notify.outbox import Outbox
from arbengine.notify.pacing import (
    Bucket,
    Delivery,
    DeliveryPolicy,
    Outcome,
    outcome_of,
    retry_after_s,
)
from arbengine.runtime.backoff import RetryPolicy
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.settings import AlertsSettings

ALERTS = Counter("arb_notify_alerts", "Alerts by sink and outcome", ["sink", "outcome"])
RETRIES = Counter("arb_notify_retries", "Webhook calls made again", ["sink", "reason"])
QUEUED = Gauge("arb_notify_queue_depth", "Alerts waiting to be sent", ["sink"])
JSON_BATCH = 100
"""Alerts in one POST to the generic webhook."""
STOP_FLUSH_S = 3.0
"""How long the senders may go on delivering once asked to stop."""
DISCORD_BATCH = 2 * MAX_EMBEDS
"""Alerts taken per round for Discord (two messages' worth; a burst goes out in rounds)."""

Payload = tuple[dict[str, Any], int]
"""A message and how many alerts it carries."""


def _discord(alerts: Sequence[Alert], _now_ms: int) -> list[Payload]:
    return [(m, len(m["embeds"])) for m in discord_messages(alerts)]


def _json(alerts: Sequence[Alert], now_ms: int) -> list[Payload]:
    return [(json_body(alerts, now_ms), len(alerts))]


@dataclass(frozen=True)
class Webhook:
    """A receiver: its name (what logs and metrics say), its URL (a secret), its format."""

    name: str
    url: str
    format: Callable[[Sequence[Alert], int], list[Payload]]
    batch_limit: int

    def __repr__(self) -> str:
        return f"Webhook({self.name!r}, url=***)"


def discord_webhook(url: str) -> Webhook:
    return Webhook("discord", url, _discord, DISCORD_BATCH)


def json_webhook(url: str) -> Webhook:
    return Webhook("webhook", url, _json, JSON_BATCH)


def scrub(text: str, url: str) -> str:
    """``text`` without ``url`` or its secret parts (path with the token, query)."""
    parts = urllib.parse.urlsplit(url)
    for secret in sorted({url, url.rstrip("/"), parts.path, parts.query}, key=len, reverse=True):
        if len(secret) > 1:
            text = text.replace(secret, "<url>")
    return text


class Notifier:
    def __init__(
        self,
        webhooks: Sequence[Webhook],
        *,
        rules: AlertRules | None = None,
        queue_size: int = 1000,
        batch_window_s: float = 2.0,
        delivery: DeliveryPolicy | None = None,
        request_timeout_s: float = 10.0,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.rules = rules or AlertRules()
        self._clock = clock or SystemClock()
        self._stop = asyncio.Event()
        self.senders = [
            _Sender(
                webhook,
                Outbox(webhook.name, queue_size, self._clock.monotonic),
                clock=self._clock,
                stop=self._stop,
                batch_window_s=batch_window_s,
                delivery=delivery or DeliveryPolicy(),
                timeout_s=request_timeout_s,
                rng=rng or random.Random(),
            )
            for webhook in webhooks
        ]

    def publish(self, alert: Alert) -> None:
        """Queue ``alert`` for every sink (if its kind is enabled); O(1), never waits."""
        if not self.rules.wants(alert):
            return
        for sender in self.senders:
            sender.outbox.put(alert)
            sender.wake.set()

    def outbox(self, name: str) -> Outbox:
        return next(s.outbox for s in self.senders if s.webhook.name == name)

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as group:
            for sender in self.senders:
                group.create_task(sender.run(session), name=f"notify.{sender.webhook.name}")

    def request_stop(self) -> None:
        """Deliver what is queued (no more batch windows or backoffs), then return."""
        self._stop.set()
        flush_by = self._clock.monotonic() + STOP_FLUSH_S
        for sender in self.senders:
            sender.flush_by = flush_by
            sender.cut_call(STOP_FLUSH_S)
            sender.wake.set()


class _Sender:
    """One sink's queue drained into its receiver."""

    def __init__(
        self,
        webhook: Webhook,
        outbox: Outbox,
        *,
        clock: Clock,
        stop: asyncio.Event,
        batch_window_s: float,
        delivery: DeliveryPolicy,
        timeout_s: float,
        rng: random.Random,
    ) -> None:
        self.webhook = webhook
        self.outbox = outbox
        self.wake = asyncio.Event()
        self.bucket = Bucket()
        self._clock = clock
        self._stop = stop
        self._window_s = batch_window_s
        self._policy = delivery
        self._timeout = timeout_s
        self._rng = rng
        self.flush_by: float | None = None
        """Set at a stop: when the last delivery must be over (monotonic, on the clock)."""
        self._call: asyncio.Timeout | None = None
        """The deadline of the call under way, brought forward by a stop."""
        self._log = get_logger("notify", sink=webhook.name)
        QUEUED.labels(webhook.name).set_function(lambda: len(outbox))

    async def run(self, session: aiohttp.ClientSession) -> None:
        while True:
            if not self.outbox:
                if self._stop.is_set():
                    return
                self.wake.clear()
                await self.wake.wait()
                continue
            waiting = len(self.outbox) < self.webhook.batch_limit
            if waiting and not self._stop.is_set() and self._window_s > 0:
                # The rest of a burst joins this batch (one message, not one each); a
                # backlog of a full batch or more goes at once.
                await self._clock.sleep(self._window_s, self._stop)
            left = self._flush_left()
            if left is not None and left <= 0:
                rest = self.outbox.take(len(self.outbox))
                self._give_up(len(rest), rest, 0, "stopping", "no time left to send")
                continue
            batch = self.outbox.take(self.webhook.batch_limit)
            for payload, count in self.webhook.format(batch, self._clock.time_ms()):
                await self._deliver(session, payload, count, batch)

    def cut_call(self, seconds: float) -> None:
        """End the call under way in ``seconds`` at most (a stop: a hung receiver must not
        hold the daemon's shutdown)."""
        call = self._call
        if call is not None:
            cut = asyncio.get_running_loop().time() + seconds
            when = call.when()
            call.reschedule(cut if when is None else min(when, cut))

    def _flush_left(self) -> float | None:
        """Seconds left to deliver in at a stop; None while not stopping."""
        if self.flush_by is None:
            return None
        return self.flush_by - self._clock.monotonic()

    def _give_up(
        self, count: int, batch: list[Alert], attempts: int, reason: str, error: str
    ) -> None:
        ALERTS.labels(self.webhook.name, "given_up").inc(count)
        self._log.error(
            "notify.given_up",
            alerts=count,
            kinds=sorted({a.kind for a in batch}),
            attempts=attempts,
            reason=reason,
            error=error,
        )

    async def _deliver(
        self,
        session: aiohttp.ClientSession,
        payload: dict[str, Any],
        count: int,
        batch: list[Alert],
    ) -> None:
        name = self.webhook.name
        delivery = Delivery(self._policy, started=self._clock.monotonic())
        body = orjson.dumps(payload)
        while True:
            wait = self.bucket.wait_s(self._clock.monotonic())
            left = self._flush_left()
            if left is not None and wait >= left:
                self._give_up(count, batch, delivery.attempts, "stopping", "no time left to send")
                return
            if wait > 0:
                await self._clock.sleep(wait)  # a rate limit is honoured even when stopping
            timeout = self._timeout if left is None else max(0.05, min(self._timeout, left - wait))
            delivery.attempts += 1
            outcome, asked, error = await self._post(session, body, timeout)
            now = self._clock.monotonic()
            if outcome is Outcome.SENT:
                ALERTS.labels(name, "sent").inc(count)
                self._log.debug("notify.sent", alerts=count, attempts=delivery.attempts)
                return
            rate_limited = outcome is Outcome.RATE_LIMITED and asked is not None
            if rate_limited:
                assert asked is not None
                self.bucket.hold(asked, now)
            stopping = self._stop.is_set() and not rate_limited
            delay = None if stopping else delivery.retry_in(outcome, now, asked, self._rng)
            if delay is None:
                reason = (
                    "stopping"
                    if stopping
                    else "rejected"
                    if outcome is Outcome.REJECTED
                    else "max_attempts"
                    if delivery.attempts >= self._policy.max_attempts
                    else "max_age"
                )
                self._give_up(count, batch, delivery.attempts, reason, error)
                return
            RETRIES.labels(name, outcome.value).inc()
            self._log.warning(
                "notify.retrying",
                attempt=delivery.attempts,
                error=error,
                retry_in_s=round(delay, 3),
            )
            if not rate_limited:  # (a 429's wait is the bucket's, above)
                # Cut short by a stop: one more attempt at once, then the batch is given up.
                await self._clock.sleep(delay, self._stop)

    async def _post(
        self, session: aiohttp.ClientSession, body: bytes, timeout_s: float
    ) -> tuple[Outcome, float | None, str]:
        """One call: its outcome, the wait a 429 asked for, and what went wrong (scrubbed)."""
        url = self.webhook.url
        try:
            async with (
                asyncio.timeout(timeout_s) as self._call,
                session.post(
                    url,
                    data=body,
                    headers={"Content-Type": "application/json"},
                    allow_redirects=False,
                ) as response,
            ):
                outcome = outcome_of(response.status)
                answer: object = None
                if outcome is Outcome.RATE_LIMITED:
                    try:
                        answer = orjson.loads(await response.read())
                    except orjson.JSONDecodeError:
                        answer = None
                else:
                    await response.read()
                self.bucket.observe(response.headers, self._clock.monotonic())
                rate_limited = outcome is Outcome.RATE_LIMITED
                asked = retry_after_s(response.headers, answer) if rate_limited else None
                return outcome, asked, f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            # (ValueError: a URL the HTTP client cannot use; its text may hold the URL.)
            return Outcome.FAILED, None, scrub(f"{type(exc).__name__}: {exc}", url)[:300]
        finally:
            self._call = None


def notifier_from_settings(settings: AlertsSettings, clock: Clock | None = None) -> Notifier:
    """The notifier ``[alerts]`` describes (its sinks: the URLs that are set)."""
    webhooks = []
    if settings.discord_webhook_url:
        webhooks.append(discord_webhook(settings.discord_webhook_url))
    if settings.webhook_url:
        webhooks.append(json_webhook(settings.webhook_url))
    enabled = frozenset(c for c in CATEGORIES if getattr(settings, c))
    return Notifier(
        webhooks,
        rules=AlertRules(enabled, settings.min_signal_score),
        queue_size=settings.queue_size,
        batch_window_s=settings.batch_window.seconds,
        delivery=DeliveryPolicy(
            max_attempts=settings.max_attempts,
            max_age_s=settings.max_age.seconds,
            retry=RetryPolicy(
                initial_s=settings.retry_initial.seconds, max_s=settings.retry_max.seconds
            ),
        ),
        request_timeout_s=settings.request_timeout.seconds,
        clock=clock,
    )
