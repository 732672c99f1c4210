"""Query strings and JSON bodies into the declared shapes; any mistake is a 400 naming the field.

Conversion is strict: an integer parameter must be written as one (``"1.0"``,
``"null"`` or ``" 5"`` are refused rather than guessed at), unknown or repeated
parameters are refused (a typo like ``symbl=`` must not silently return
everything), a key given twice in a JSON body is refused (parsers disagree on
which one wins, so a proxy or a log may read another value than we do), and
text containing control characters never reaches SQL.
"""

from __future__ import annotations

import collections
import functools
import json
import re
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from multidict import MultiMapping

from arbengine.api.errors import bad_request
from arbengine.api.schemas import INTERVAL_MS

Q = TypeVar("Q", bound=msgspec.Struct)
B = TypeVar("B", bound=msgspec.Struct)

_AT = re.compile(r" - at `\$\.([A-Za-z0-9_]+)")
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]*)`")
_MISSING = re.compile(r"Object missing required field `([^`]*)`")
_INTEGER = re.compile(r"^-?[0-9]{1,30}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SECRET_FIELDS = frozenset({"password"})
"""Fields that may hold any character (passwords are hashed, never stored or queried)."""


@dataclass(frozen=True)
class _FieldInfo:
    name: str
    integer: bool
    choices: tuple[str, ...]


@functools.cache
def _fields(shape: type[msgspec.Struct]) -> dict[str, _FieldInfo]:
    info = msgspec.inspect.type_info(shape)
    assert isinstance(info, msgspec.inspect.StructType)
    out: dict[str, _FieldInfo] = {}
    hints = typing.get_type_hints(shape)
    for f in info.fields:
        kinds = f.type.types if isinstance(f.type, msgspec.inspect.UnionType) else (f.type,)
        kinds = tuple(k.type if isinstance(k, msgspec.inspect.Metadata) else k for k in kinds)
        integer = any(isinstance(k, msgspec.inspect.IntType) for k in kinds)
        # The declared order of a Literal reads better in a message than msgspec's sorted one.
        hint = hints[f.name]
        options = (hint,) if typing.get_origin(hint) is typing.Literal else typing.get_args(hint)
        choices = tuple(
            str(value)
            for arg in options
            if typing.get_origin(arg) is typing.Literal
            for value in typing.get_args(arg)
        )
        out[f.encode_name] = _FieldInfo(f.encode_name, integer, choices)
    return out


def _explain(exc: msgspec.ValidationError, shape: type[msgspec.Struct]) -> tuple[str, str | None]:
    """msgspec's message, reworded for the person who wrote the request."""
    text = str(exc)
    if match := _UNKNOWN.search(text):
        name = match.group(1)
        known = ", ".join(sorted(_fields(shape))) or "none"
        return f"unknown parameter {name!r} (known: {known})", name
    if match := _MISSING.search(text):
        return f"{match.group(1)} is required", match.group(1)
    at = _AT.search(text)
    name = at.group(1) if at else None
    if name is None:
        return text, None
    meta = _fields(shape).get(name)
    if meta and meta.choices and text.startswith("Invalid enum value"):
        return f"{name} must be one of {', '.join(meta.choices)}", name
    if m := re.match(r"Expected `int` >= (-?\d+)", text):
        return f"{name} must be at least {m.group(1)}", name
    if m := re.match(r"Expected `int` <= (-?\d+)", text):
        return f"{name} must be at most {m.group(1)}", name
    if text.startswith("Expected `str` matching regex"):
        return f"{name} is not in the expected format", name
    if m := re.match(r"Expected `str` of length ([<>]=) (\d+)", text):
        if m.group(1) == ">=" and m.group(2) == "1":
            return f"{name} must not be empty", name
        bound = "at least" if m.group(1) == ">=" else "at most"
        return f"{name} must be {bound} {m.group(2)} characters", name
    if meta and meta.integer and "got `str`" in text:
        return f"{name} must be an integer", name
    if m := re.match(r"Expected `([^`]+)`, got `(\w+)`", text):
        return f"{name} must be {m.group(1).replace(' | null', '')}, not {m.group(2)}", name
    return text[: at.start()] if at else text, name


def parse_query(query: MultiMapping[str], shape: type[Q], symbols: Iterable[str]) -> Q:
    """Convert and validate a query string; symbols must be among the tracked ones."""
    fields = _fields(shape)
    raw: dict[str, Any] = {}
    for key in set(query.keys()):
        values = query.getall(key)
        if len(values) > 1:
            raise bad_request("invalid_parameter", f"{key} is given {len(values)} times", key)
        value = values[0]
        if _CONTROL.search(value) or _CONTROL.search(key):
            raise bad_request("invalid_parameter", f"{key} contains control characters", key)
        meta = fields.get(key)
        raw[key] = int(value) if meta and meta.integer and _INTEGER.match(value) else value
    try:
        parsed = msgspec.convert(raw, shape)
    except msgspec.ValidationError as exc:
        message, name = _explain(exc, shape)
        raise bad_request("invalid_parameter", message, name) from None
    symbol = getattr(parsed, "symbol", None)
    if symbol is not None and symbol not in symbols:
        tracked = ", ".join(symbols)
        raise bad_request(
            "unknown_symbol", f"symbol {symbol!r} is not tracked (tracked: {tracked})", "symbol"
        )
    return parsed


def _duplicate_key(body: bytes) -> tuple[str, int] | None:
    """The first key some object of ``body`` holds more than once, and how often."""
    found: list[tuple[str, int]] = []

    def check(pairs: list[tuple[str, Any]]) -> None:
        if not found:
            counts = collections.Counter(key for key, _ in pairs)
            found.extend((key, n) for key, n in counts.items() if n > 1)

    try:
        json.loads(body, object_pairs_hook=check)
    except (ValueError, RecursionError):
        return None  # not JSON at all: msgspec says why
    return found[0] if found else None


def parse_body(body: bytes, shape: type[B]) -> B:
    duplicate = _duplicate_key(body)
    if duplicate is not None:
        key, times = duplicate
        raise bad_request("invalid_body", f"{key} is given {times} times", key)
    try:
        parsed = msgspec.json.decode(body, type=shape)
    except msgspec.ValidationError as exc:
        message, name = _explain(exc, shape)
        if name is None and message.startswith("Expected `object`"):
            message = "the body must be a JSON object"
        raise bad_request("invalid_body", message, name) from None
    except msgspec.DecodeError:
        raise bad_request("invalid_body", "the body must be a JSON object") from None
    for name in _fields(shape):
        value = getattr(parsed, name, None)
        if isinstance(value, str) and name not in _SECRET_FIELDS and _CONTROL.search(value):
            raise bad_request("invalid_body", f"{name} contains control characters", name)
    return parsed


@dataclass(frozen=True, slots=True)
class Window:
    """A resolved, validated half-open time range: start ≤ t < end (epoch ms)."""

    start: int
    end: int


def resolve_range(query: Any, now_ms: int) -> Window:
    """Fill in ``from``/``to`` and refuse an inverted or oversized range (field ``from``)."""
    given_from: int | None = query.from_
    given_to: int | None = query.to
    interval: str | None = getattr(query, "interval", None)
    bar_ms = INTERVAL_MS[interval] if interval else None
    default_span: int | None = query.DEFAULT_SPAN_MS
    default_bars: int | None = query.DEFAULT_BARS
    max_span: int | None = query.MAX_SPAN_MS
    max_bars: int | None = query.MAX_BARS
    if bar_ms and default_bars:
        default_span = bar_ms * default_bars
    if default_span is not None and max_span is not None:
        default_span = min(default_span, max_span)
    end = given_to if given_to is not None else now_ms
    if given_from is not None:
        start = given_from
    else:
        start = max(0, end - default_span) if default_span is not None else 0
    if start >= end:
        raise bad_request("invalid_range", f"from ({start}) must be before to ({end})", "from")
    span = end - start
    if max_span is not None and span > max_span:
        raise bad_request(
            "invalid_range",
            f"the range spans {span} ms; at most {max_span} ms ({max_span // 86_400_000} days)",
            "from",
        )
    if bar_ms and max_bars and span > bar_ms * max_bars:
        raise bad_request(
            "invalid_range",
            f"the range holds {-(-span // bar_ms)} bars of {interval}; at most {max_bars}",
            "from",
        )
    return Window(start, end)
