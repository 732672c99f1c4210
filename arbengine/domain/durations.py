"""Durations as written in settings and strategy files: ``<integer><ms|s|m|h|d>``.

One parser for the whole engine, so a strategy's ``"30m"`` and a setting's
``"30m"`` can never mean different things. Settings hold a :class:`Duration`:
converted once, when they are loaded, and shown again as they were written.
"""

from __future__ import annotations

import re
from typing import Any, Final

_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_PATTERN = re.compile(r"^(\d+)(ms|s|m|h|d)$")
EXAMPLES: Final = "'250ms', '15s', '30m', '4h' or '1d'"


class DurationError(ValueError):
    """A duration string that is not ``<integer><ms|s|m|h|d>``."""


def parse_duration_ms(text: str) -> int:
    """Milliseconds in ``text``; raises DurationError naming what was expected."""
    match = _PATTERN.match(text) if isinstance(text, str) else None
    if match is None:
        raise DurationError(f"expected a duration like {EXAMPLES}, got {text!r}")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def format_duration_ms(ms: int) -> str:
    """The shortest exact spelling of ``ms`` (inverse of parse_duration_ms)."""
    for unit in ("d", "h", "m", "s"):
        size = _UNIT_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


class Duration:
    """A span of time as written (``"250ms"``), with its length in ms and in seconds.

    Immutable and hashable, so it can be a default of a frozen settings struct.
    """

    __slots__ = ("ms", "seconds", "text")

    text: str
    ms: int
    seconds: float

    def __init__(self, text: str) -> None:
        ms = parse_duration_ms(text)
        object.__setattr__(self, "text", text)
        object.__setattr__(self, "ms", ms)
        object.__setattr__(self, "seconds", ms / 1000.0)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Duration is immutable (cannot set {name})")

    def __reduce__(self) -> tuple[type[Duration], tuple[str]]:
        # Copied and pickled by its spelling: the immutable slots cannot be set one by one.
        return (Duration, (self.text,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Duration) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Duration({self.text!r})"

    def __str__(self) -> str:
        return self.text


def decode_hook(kind: type, value: Any) -> Any:
    """msgspec's ``dec_hook`` for structs with Duration fields: a string becomes a Duration
    (a bad one a ValueError, which msgspec reports with the path of the field)."""
    if kind is Duration:
        if not isinstance(value, str):
            raise ValueError("not a string")
        return Duration(value)
    raise NotImplementedError(kind)


def encode_hook(value: Any) -> Any:
    """msgspec's ``enc_hook``: a Duration is written as it was read."""
    if isinstance(value, Duration):
        return value.text
    raise NotImplementedError(type(value))
