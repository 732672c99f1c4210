"""Capped, jittered exponential backoff: the one formula every retry loop uses.

Capped so an outage of an hour is retried every ``max_s`` rather than once
an hour later; jittered so many waiters (components, connections, daemons)
do not all come back in the same instant.
"""

from __future__ import annotations

import random


def backoff_delay(
    attempt: int,
    initial_s: float,
    max_s: float,
    rng: random.Random | None = None,
    *,
    multiplier: float = 2.0,
    jitter: float = 0.5,
) -> float:
    """Delay before retry number ``attempt`` (1-based): capped, then drawn uniformly from
    [delay·(1−jitter), delay]."""
    base: float = min(max_s, initial_s * multiplier ** min(max(attempt - 1, 0), 64))
    return base * (1.0 - jitter * (rng or random).random())
