"""When a webhook may be called again, and when a batch is given up: a sync core.

- **Rate limits.** Discord answers every webhook call with its bucket's state
  (``X-RateLimit-Remaining``, ``X-RateLimit-Reset-After`` seconds): with nothing
  remaining, the next call waits for the reset instead of collecting a 429. A 429
  says how long to wait: ``retry_after`` seconds in its JSON body (Discord), else a
  ``Retry-After`` header (any receiver); the call is made again no earlier.
- **Failures.** The receiver down, a timeout or a 5xx is retried after a capped,
  jittered exponential delay. Any other 4xx (a deleted webhook, a refused payload)
  will not improve: the batch is given up at once.
- **Never for ever.** A batch is given up after ``max_attempts`` calls or once it is
  ``max_age`` old, whichever comes first.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Mapping
from dataclasses import dataclass

from arbengine.runtime.backoff import RetryPolicy

RATE_LIMIT_MARGIN_S = 0.05
"""Added to every wait a receiver asks for: clocks and transit differ a little."""


class Outcome(enum.Enum):
    SENT = "sent"
    RATE_LIMITED = "rate_limited"
    FAILED = "failed"
    """Retryable: the network, a timeout, a 5xx (or 408)."""
    REJECTED = "rejected"
    """A 4xx other than 408 and 429: sending it again will not help."""


def outcome_of(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.SENT
    if status == 429:
        return Outcome.RATE_LIMITED
    if 400 <= status < 500 and status != 408:
        return Outcome.REJECTED
    return Outcome.FAILED


def _number(text: object) -> float | None:
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return value if value >= 0 else None


def retry_after_s(headers: Mapping[str, str], body: object) -> float | None:
    """How long a 429 asks us to wait: the body's ``retry_after`` (Discord: seconds), else
    the ``Retry-After`` header (seconds); None when it says neither."""
    if isinstance(body, dict):
        value = _number(body.get("retry_after"))
        if value is not None:
            return value
    return _number(headers.get("Retry-After"))


@dataclass
class Bucket:
    """One webhook's rate-limit bucket, as its last answer described it (monotonic times)."""

    not_before: float = 0.0

    def observe(self, headers: Mapping[str, str], now: float) -> None:
        """After any answer: with nothing left in the bucket, wait for its reset."""
        remaining = _number(headers.get("X-RateLimit-Remaining"))
        reset_after = _number(headers.get("X-RateLimit-Reset-After"))
        if remaining is not None and remaining < 1 and reset_after is not None:
            self.hold(reset_after, now)

    def hold(self, seconds: float, now: float) -> None:
        self.not_before = max(self.not_before, now + seconds + RATE_LIMIT_MARGIN_S)

    def wait_s(self, now: float) -> float:
        return max(0.0, self.not_before - now)


WEBHOOK_RETRY = RetryPolicy(initial_s=1.0, max_s=60.0)


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 10
    max_age_s: float = 900.0
    retry: RetryPolicy = WEBHOOK_RETRY


@dataclass
class Delivery:
    """The attempts at one message of a batch."""

    policy: DeliveryPolicy
    started: float
    attempts: int = 0
    failures: int = 0

    def retry_in(
        self, outcome: Outcome, now: float, asked_s: float | None, rng: random.Random | None = None
    ) -> float | None:
        """After a failed attempt: how long to wait before the next, or None to give up."""
        if outcome is Outcome.REJECTED or self.attempts >= self.policy.max_attempts:
            return None
        if outcome is Outcome.RATE_LIMITED and asked_s is not None:
            delay = asked_s + RATE_LIMIT_MARGIN_S
        else:
            self.failures += 1
            delay = self.policy.retry.delay(self.failures, rng)
        if now + delay - self.started > self.policy.max_age_s:
            return None
        return delay
