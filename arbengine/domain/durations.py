"""Durations as written in settings and strategy files: ``<integer><ms|s|m|h|d>``.

One parser for the whole engine, so a strategy's ``"30m"`` and a setting's
``"30m"`` can never mean different things.
"""

from __future__ import annotations

import re

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PATTERN = re.compile(r"^(\d+)(ms|s|m|h|d)$")


class DurationError(ValueError):
    """A duration string that is not ``<integer><ms|s|m|h|d>``."""


def parse_duration_ms(text: str) -> int:
    """Milliseconds in ``text``; raises DurationError naming what was expected."""
    match = _PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise DurationError(
            f"expected a duration like '250ms', '15s', '30m', '4h' or '1d', got {text!r}"
        )
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def format_duration_ms(ms: int) -> str:
    """The shortest exact spelling of ``ms`` (inverse of parse_duration_ms)."""
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
