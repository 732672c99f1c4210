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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from multidict import MultiMapping

from arbengine.api.http_errors import bad_request
from arbengine.api.schemas import INTERVAL_MS

Q = TypeVar("Q", bound=msgspec.Struct)
B = TypeVar("B", bound=msgspec.Struct)

_ERROR_PATH = re.compile(r" - at `\$\.([A-Za-z0-9_]+)[^`]*`$")
"""The field msgspec names after ``- at `$.`` in its message: only the path is read from it."""
_INTEGER = re.compile(r"^-?[0-9]{1,30}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SECRET_FIELDS = frozenset({"password"})
"""Fields that may hold any character (passwords are hashed, never stored or queried)."""
_JSON_KINDS = {str: "str", int: "int", float: "float", bool: "bool", list: "array", dict: "object"}
_DECLARED: dict[type[msgspec.inspect.Type], str] = {
    msgspec.inspect.StrType: "str",
    msgspec.inspect.IntType: "int",
    msgspec.inspect.FloatType: "float",
    msgspec.inspect.BoolType: "bool",
    msgspec.inspect.ListType: "array",
}


@dataclass(frozen=True)
class _FieldInfo:
    name: str
    required: bool
    kind: msgspec.inspect.Type
    """The declared type, without its ``| None``."""
    choices: tuple[str, ...]
    """A Literal's values in declared order (which reads better than msgspec's sorted one)."""

    @property
    def integer(self) -> bool:
        return isinstance(self.kind, msgspec.inspect.IntType)


@functools.cache
def _fields(shape: type[msgspec.Struct]) -> dict[str, _FieldInfo]:
    info = msgspec.inspect.type_info(shape)
    assert isinstance(info, msgspec.inspect.StructType)
    out: dict[str, _FieldInfo] = {}
    hints = typing.get_type_hints(shape)
    for f in info.fields:
        kinds = f.type.types if isinstance(f.type, msgspec.inspect.UnionType) else (f.type,)
        kinds = tuple(k.type if isinstance(k, msgspec.inspect.Metadata) else k for k in kinds)
        kinds = tuple(k for k in kinds if not isinstance(k, msgspec.inspect.NoneType))
        hint = hints[f.name]
        options = (hint,) if typing.get_origin(hint) is typing.Literal else typing.get_args(hint)
        choices = tuple(
            str(value)
            for arg in options
            if typing.get_origin(arg) is typing.Literal
            for value in typing.get_args(arg)
        )
        kind = kinds[0] if len(kinds) == 1 else f.type
        out[f.encode_name] = _FieldInfo(f.encode_name, f.required, kind, choices)
    return out


def _problem(field: _FieldInfo, value: Any) -> str:
    """What is wrong with ``value`` for ``field``, from the field's declared type."""
    name, kind = field.name, field.kind
    if field.choices:
        return f"{name} must be one of {', '.join(field.choices)}"
    if isinstance(kind, msgspec.inspect.IntType):
        if isinstance(value, str):
            return f"{name} must be an integer"
        if isinstance(value, int) and not isinstance(value, bool):
            if kind.ge is not None and value < kind.ge:
                return f"{name} must be at least {kind.ge}"
            if kind.le is not None and value > kind.le:
                return f"{name} must be at most {kind.le}"
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if isinstance(kind, msgspec.inspect.FloatType) and number:
        if kind.gt is not None and value <= kind.gt:
            return f"{name} must be greater than {kind.gt:g}"
        if kind.ge is not None and value < kind.ge:
            return f"{name} must be at least {kind.ge:g}"
        if kind.le is not None and value > kind.le:
            return f"{name} must be at most {kind.le:g}"
    if isinstance(kind, msgspec.inspect.ListType) and isinstance(value, list):
        if kind.max_length is not None and len(value) > kind.max_length:
            return f"{name} must hold at most {kind.max_length} items"
        item = kind.item_type
        if isinstance(item, msgspec.inspect.Metadata):
            item = item.type
        pattern = getattr(item, "pattern", None)
        if pattern is not None:
            return f"{name} must be an array of strings matching {pattern}"
        return f"{name} holds an item that is not valid"
    if isinstance(kind, msgspec.inspect.StrType) and isinstance(value, str):
        if kind.min_length is not None and len(value) < kind.min_length:
            if kind.min_length == 1:
                return f"{name} must not be empty"
            return f"{name} must be at least {kind.min_length} characters"
        if kind.max_length is not None and len(value) > kind.max_length:
            return f"{name} must be at most {kind.max_length} characters"
        return f"{name} is not in the expected format"
    expected = _DECLARED.get(type(kind), "valid")
    got = "null" if value is None else _JSON_KINDS.get(type(value), type(value).__name__)
    return f"{name} must be {expected}, not {got}"


def _explain(
    exc: msgspec.ValidationError, shape: type[msgspec.Struct], given: Any
) -> tuple[str, str | None]:
    """The message and the field for a refused query or body: the parameter from msgspec's
    error path (or, for a key too many or too few, from the shape), the words from its type."""
    if not isinstance(given, dict):
        return "the body must be a JSON object", None
    fields = _fields(shape)
    for key in given:
        if key not in fields:
            known = ", ".join(sorted(fields)) or "none"
            return f"unknown parameter {key!r} (known: {known})", key
    for name, meta in fields.items():
        if meta.required and name not in given:
            return f"{name} is required", name
    match = _ERROR_PATH.search(str(exc))
    if match is None or match.group(1) not in fields:  # pragma: no cover - shapes check fields
        return "the request is not valid", None
    name = match.group(1)
    return _problem(fields[name], given[name]), name


def _convert_parameters(given: Mapping[str, str], shape: type[Q]) -> Q:
    """Text parameters (of a query string or a path) into ``shape``, integers written as
    integers, control characters refused."""
    fields = _fields(shape)
    raw: dict[str, Any] = {}
    for key, value in given.items():
        if _CONTROL.search(value) or _CONTROL.search(key):
            raise bad_request("invalid_parameter", f"{key} contains control characters", key)
        meta = fields.get(key)
        raw[key] = int(value) if meta and meta.integer and _INTEGER.match(value) else value
    try:
        return msgspec.convert(raw, shape)
    except msgspec.ValidationError as exc:
        message, name = _explain(exc, shape, raw)
        raise bad_request("invalid_parameter", message, name) from None


def parse_path(match_info: Mapping[str, str], shape: type[Q]) -> Q:
    """Convert and validate the parameters in a route's path (``/users/{id}/ban``)."""
    return _convert_parameters(match_info, shape)


def parse_query(query: MultiMapping[str], shape: type[Q], symbols: Iterable[str]) -> Q:
    """Convert and validate a query string; symbols must be among the tracked ones."""
    given: dict[str, str] = {}
    for key in set(query.keys()):
        values = query.getall(key)
        if len(values) > 1:
            raise bad_request("invalid_parameter", f"{key} is given {len(values)} times", key)
        given[key] = values[0]
    parsed = _convert_parameters(given, shape)
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


def _plain(body: bytes) -> Any:
    """The body as plain data, to find what the typed decode refused; None when it is not
    JSON at all (``3`` then garbage: the typed decode stops at the ``3``)."""
    try:
        return msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None


def parse_body(body: bytes, shape: type[B]) -> B:
    duplicate = _duplicate_key(body)
    if duplicate is not None:
        key, times = duplicate
        raise bad_request("invalid_body", f"{key} is given {times} times", key)
    try:
        parsed = msgspec.json.decode(body, type=shape)
    except msgspec.ValidationError as exc:
        message, name = _explain(exc, shape, _plain(body))
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
