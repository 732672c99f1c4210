"""When a webhook is called again, and when a batch is given up."""

from __future__ import annotations

import random

import pytest

from arbengine.notify.pacing import (
    RATE_LIMIT_MARGIN_S,
    Bucket,
    Delivery,
    DeliveryPolicy,
    Outcome,
    outcome_of,
    retry_after_s,
)
from arbengine.runtime.backoff import RetryPolicy


def test_outcomes() -> None:
    assert [outcome_of(s) for s in (200, 204, 429, 400, 404, 408, 500, 503)] == [
        Outcome.SENT, Outcome.SENT, Outcome.RATE_LIMITED, Outcome.REJECTED, Outcome.REJECTED,
        Outcome.FAILED, Outcome.FAILED, Outcome.FAILED,
    ]  # fmt: skip


def test_retry_after_from_body_then_header() -> None:
    assert retry_after_s({"Retry-After": "9"}, {"retry_after": 1.5, "global": False}) == 1.5
    assert retry_after_s({"Retry-After": "2"}, None) == 2.0
    assert retry_after_s({}, {"message": "slow down"}) is None
    assert retry_after_s({"Retry-After": "soon"}, {"retry_after": "x"}) is None


def test_bucket_waits_for_its_reset_when_empty() -> None:
    bucket = Bucket()
    bucket.observe({"X-RateLimit-Remaining": "3", "X-RateLimit-Reset-After": "2.0"}, now=10.0)
    assert bucket.wait_s(10.0) == 0.0
    bucket.observe({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": "2.0"}, now=10.0)
    assert bucket.wait_s(10.5) == pytest.approx(1.5 + RATE_LIMIT_MARGIN_S)
    assert bucket.wait_s(13.0) == 0.0


def test_failures_back_off_capped_and_give_up_on_attempts_or_age() -> None:
    policy = DeliveryPolicy(max_attempts=4, max_age_s=1000.0,
                            retry=RetryPolicy(initial_s=1.0, max_s=4.0, jitter=0.0))  # fmt: skip
    delivery = Delivery(policy, started=0.0)
    delays = []
    for attempt in range(1, 5):
        delivery.attempts = attempt
        delays.append(delivery.retry_in(Outcome.FAILED, 0.0, None, random.Random(1)))
    assert delays == [1.0, 2.0, 4.0, None]  # capped at 4 s; the 4th attempt was the last

    aged = Delivery(DeliveryPolicy(max_attempts=100, max_age_s=60.0, retry=policy.retry), 0.0)
    aged.attempts = 1
    assert aged.retry_in(Outcome.FAILED, 50.0, None) == 1.0
    assert aged.retry_in(Outcome.FAILED, 59.0, None) is None  # 59 + 2 > 60


def test_rate_limit_waits_what_was_asked_and_a_rejection_is_final() -> None:
    delivery = Delivery(DeliveryPolicy(), started=0.0)
    delivery.attempts = 1
    assert delivery.retry_in(Outcome.RATE_LIMITED, 0.0, 3.0) == 3.0 + RATE_LIMIT_MARGIN_S
    assert delivery.failures == 0
    assert delivery.retry_in(Outcome.REJECTED, 0.0, None) is None
