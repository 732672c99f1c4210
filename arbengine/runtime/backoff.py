"""Capped, jittered exponential backoff: the one policy every retry loop uses.

Capped so an outage of an hour is retried every ``max_s`` rather than once
an hour later; jittered so many waiters (components, connections, daemons)
do not all come back in the same instant.

A loop computes ``delay(attempt, rng)``, logs it, and waits it out with
``clock.sleep(delay, stop)`` (its clock, its stop event), so a stop request
ends the wait at once and a test drives the wait with a ``ManualClock``.
The defaults per kind of dependency are stated here once; the exchange's
stream and the supervisor's restarts take theirs from the settings.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    initial_s: float = 0.5
    max_s: float = 30.0
    multiplier: float = 2.0
    jitter: float = 0.5
    """Each delay is drawn uniformly from [delay·(1−jitter), delay]."""

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Delay before retry number ``attempt`` (1-based): capped, then jittered."""
        exponent = min(max(attempt - 1, 0), 64)
        base: float = min(self.max_s, self.initial_s * self.multiplier**exponent)
        return base * (1.0 - self.jitter * (rng or random).random())


EXCHANGE_REST_RETRY = RetryPolicy(initial_s=0.5, max_s=30.0)
"""A REST call that failed for a retryable reason (the network, a 5xx). The client waits
out weight limits, 429 pauses and bans by itself before sending; this only spaces the
network-level retries."""

ORDER_RESEND_RETRY = RetryPolicy(initial_s=0.25, max_s=5.0)
"""Sending one placement or cancel again while the exchange keeps losing it (a 5xx, a cut
connection, then "no such order"): paced, yet short, since a stop may be what waits."""

EXCHANGE_STREAM_RETRY = RetryPolicy(initial_s=1.0, max_s=60.0)
"""Reconnecting a websocket (the daemon's comes from ``collect.reconnect_*``)."""

EXCHANGE_REST_CATCH_UP = RetryPolicy(initial_s=0.1, max_s=2.0, jitter=0.0)
"""Asking REST again for trades the stream has already delivered: REST may trail the
stream by a moment, so an empty answer is retried soon."""

DATABASE_RETRY = RetryPolicy(initial_s=0.2, max_s=5.0)
"""Writing to, or listening on, PostgreSQL while it is away: retried often, since rows are
held in memory meanwhile."""


class Stopped(Exception):
    """A retry loop was asked to stop while it waited: its caller is stopping too."""
