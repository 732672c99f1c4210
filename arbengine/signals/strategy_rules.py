"""What a strategy file must satisfy: the published JSON Schema, and the rules it cannot say.

The schema is the document users write against (``arbengine strategies schema``
prints it) and ``jsonschema``'s Draft 2020-12 validator checks files against
it; this module only words each of its errors for a person (``$.path: what``).
The typed shape is stated by the structs in ``strategy.py``; a test holds the
two to the same keys, requirements and defaults.

The rules a schema cannot say (duration bounds, unsigned + contrarian, tp1
needs tp1_fraction, window order…) are checked here too, on the raw
document, so one pass reports every problem of a file, each with its JSON path.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError

from arbengine.domain.durations import parse_duration_ms
from arbengine.signals.features import FEATURE_NAMES, MAX_STALENESS_MS, MAX_WINDOW_MS

SCHEMA_ID = "https://arbengine.dev/schemas/strategy-1.json"
DURATION_PATTERN = r"^\d+(ms|s|m|h|d)$"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

JsonPath = tuple[str | int, ...]
"""Keys and indexes from the document root to a value."""


def _duration(default: str | None = None, *, nullable: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": ["string", "null"] if nullable else "string",
        "pattern": DURATION_PATTERN,
        "description": "<integer><ms|s|m|h|d>, whole seconds",
    }
    if default is not None or nullable:
        schema["default"] = default
    return schema


def _feature() -> dict[str, Any]:
    return {"type": "string", "enum": list(FEATURE_NAMES)}


def _bound() -> dict[str, Any]:
    return {"type": ["number", "null"]}


def strategy_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) every strategy file must satisfy."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "arbengine strategy",
        "description": "A signal strategy over Binance USD-M perpetuals (see SIGNALS.md).",
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "symbols", "direction", "factors", "entry", "exit"],
        "properties": {
            "name": {
                "type": "string",
                "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                "description": "unique across the strategy set",
            },
            "enabled": {"type": "boolean", "default": True},
            "symbols": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"type": "string", "pattern": r"^[A-Z0-9]{2,32}$"},
            },
            "tick": _duration("15s"),
            "windows": {
                "type": "object",
                "additionalProperties": False,
                "default": {},
                "properties": {
                    "fast": _duration("30m"),
                    "mid": _duration("4h"),
                    "day": _duration("24h"),
                },
            },
            "max_staleness": _duration("5m"),
            "atr_percentile_min_values": {
                "type": "integer",
                "minimum": 12,
                "maximum": 288,
                "default": 288,
            },
            "direction": {
                "type": "object",
                "additionalProperties": False,
                "required": ["feature", "min"],
                "properties": {
                    "feature": _feature(),
                    "min": {"type": "number", "minimum": 0},
                    "confirm": {
                        "type": "array",
                        "uniqueItems": True,
                        "items": _feature(),
                        "default": [],
                    },
                },
            },
            "factors": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["feature", "weight", "full"],
                    "properties": {
                        "feature": _feature(),
                        "weight": {"type": "number", "exclusiveMinimum": 0},
                        "full": {"type": "number", "exclusiveMinimum": 0},
                        "unsigned": {"type": "boolean", "default": False},
                        "contrarian": {"type": "boolean", "default": False},
                    },
                },
            },
            "gates": {
                "type": "object",
                "default": {},
                "propertyNames": _feature(),
                "additionalProperties": {
                    "type": "array",
                    "description": "[low, high], inclusive; null is unbounded",
                    "minItems": 2,
                    "maxItems": 2,
                    "prefixItems": [_bound(), _bound()],
                },
            },
            "entry": {
                "type": "object",
                "additionalProperties": False,
                "required": ["threshold"],
                "properties": {
                    "threshold": {"type": "number", "minimum": 0, "maximum": 100},
                    "min_coverage": {
                        "type": "number",
                        "minimum": 0,
                        "maximum": 100,
                        "default": 0,
                    },
                    "cooldown": _duration("0s"),
                    "max_open_per_symbol": {
                        "type": ["integer", "null"],
                        "minimum": 1,
                        "default": None,
                    },
                },
            },
            "exit": {
                "type": "object",
                "additionalProperties": False,
                "required": ["sl_atr"],
                "properties": {
                    "sl_atr": {"type": "number", "exclusiveMinimum": 0},
                    "tp1_atr": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None},
                    "tp1_fraction": {
                        "type": ["number", "null"],
                        "exclusiveMinimum": 0,
                        "maximum": 1,
                        "default": None,
                    },
                    "tp2_atr": {"type": ["number", "null"], "exclusiveMinimum": 0, "default": None},
                    "breakeven_after_tp1": {"type": "boolean", "default": False},
                    "max_hold": _duration(None, nullable=True),
                },
            },
            "costs": {
                "type": "object",
                "additionalProperties": False,
                "default": {},
                "properties": {
                    "fee_bps": {"type": "number", "minimum": 0, "default": 0},
                    "slippage_bps": {"type": "number", "minimum": 0, "default": 0},
                },
            },
            "paper": {
                "type": "object",
                "additionalProperties": False,
                "default": {},
                "properties": {
                    "enabled": {"type": "boolean", "default": True},
                    "risk_usd": {"type": "number", "exclusiveMinimum": 0, "default": 100},
                },
            },
        },
    }


# JSON Schema counts 1.0 as an integer; the typed strategy (and every file so far) does not.
_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)
_VALIDATOR = _Validator(strategy_schema())

_TYPE_WORDS = {
    "null": "null",
    "boolean": "true or false",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "array": "an array",
    "object": "an object",
}


def json_path(path: JsonPath) -> str:
    """``$.factors[0].feature``; a key that is not an identifier is quoted: ``$.gates["a b"]``."""
    out = "$"
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += f".{part}"
        else:
            out += f"[{json.dumps(part)}]"
    return out


def _worded(error: ValidationError) -> Iterator[tuple[JsonPath, str]]:
    """Each problem ``error`` stands for, as (path, what) in the engine's words."""
    path: JsonPath = tuple(error.absolute_path)
    kind, expected, value = error.validator, error.validator_value, error.instance
    if "propertyNames" in error.schema_path:
        # jsonschema checks a key's name at the object; the problem is the key.
        yield (*path, value), f"unknown feature {json.dumps(value)}"
    elif kind == "type":
        kinds = [expected] if isinstance(expected, str) else list(expected)
        yield path, "must be " + " or ".join(_TYPE_WORDS[k] for k in kinds)
    elif kind == "enum" and expected == list(FEATURE_NAMES):
        yield path, f"unknown feature {json.dumps(value)}"
    elif kind == "enum":
        yield path, f"must be one of {json.dumps(expected)}"
    elif kind == "pattern" and expected == DURATION_PATTERN:
        yield path, f"must be a duration like '15s', '30m', '4h' or '1d', got {json.dumps(value)}"
    elif kind == "pattern":
        yield path, f"must match {expected}, got {json.dumps(value)}"
    elif kind == "minimum":
        yield path, f"must be >= {json.dumps(expected)}"
    elif kind == "exclusiveMinimum":
        yield path, f"must be > {json.dumps(expected)}"
    elif kind == "maximum":
        yield path, f"must be <= {json.dumps(expected)}"
    elif kind == "minItems":
        yield path, f"must have at least {expected} item{'s' if expected != 1 else ''}"
    elif kind == "maxItems":
        yield path, f"must have at most {expected} items"
    elif kind == "uniqueItems":
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                yield (*path, i), f"duplicate item {json.dumps(item)}"
            seen.append(item)
    elif kind == "required":
        for key in expected:
            if key not in value:
                yield (*path, key), "is required"
    elif kind == "additionalProperties":
        known = error.schema.get("properties", {})
        for key in value:
            if key not in known:
                yield (*path, key), "unknown key"
    else:  # pragma: no cover - the schema above uses no other keyword
        yield path, error.message


def _position(doc: Any, path: JsonPath) -> tuple[int, ...]:
    """Where ``path`` is in the document, for listing problems in the order of the file
    (a missing key sorts first in its object: it is about the object as a whole)."""
    out: list[int] = []
    node = doc
    for part in path:
        if isinstance(node, dict):
            keys = list(node)
            out.append(keys.index(part) if part in node else -1)
            node = node.get(part) if isinstance(part, str) else None
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            out.append(part)
            node = node[part]
        else:
            out.append(-1)
            node = None
    return tuple(out)


def schema_problems(doc: Any) -> list[str]:
    """``"$.path: what"`` for every way ``doc`` breaks the schema, in the order of the file.

    A value of the wrong type gets that one message (not also its enum or
    pattern), and nothing is said about what lies under a key that is itself
    wrong (an unknown gate feature's bounds).
    """
    found: list[tuple[JsonPath, str, str]] = []
    for error in _VALIDATOR.iter_errors(doc):
        kind = "propertyNames" if "propertyNames" in error.schema_path else str(error.validator)
        found += [(path, what, kind) for path, what in _worded(error)]
    wrong_type = {path for path, _, kind in found if kind == "type"}
    bad_keys = {path for path, _, kind in found if kind == "propertyNames"}
    kept: dict[str, tuple[int, ...]] = {}
    for path, what, kind in found:
        if path in wrong_type and kind != "type":
            continue
        if kind != "propertyNames" and any(path[: len(key)] == key for key in bad_keys):
            continue
        kept.setdefault(f"{json_path(path)}: {what}", _position(doc, path))
    return sorted(kept, key=lambda line: kept[line])


def _get(doc: Any, *keys: str) -> Any:
    """``doc[k1][k2]…``, or None where the structure is not there (already reported)."""
    for key in keys:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def semantic_problems(doc: Mapping[str, Any], window_defaults: Mapping[str, str]) -> list[str]:
    """Rules beyond the schema, as ``"$.path: what"`` lines.

    Runs even when the structure has errors, so one pass reports everything;
    each rule only looks at values whose structure is valid. An absent window
    is its default (``window_defaults``): the order of the three is a rule.
    """
    errors: list[str] = []

    def duration(path: str, text: Any, *, low_ms: int, high_ms: int | None) -> int | None:
        if not isinstance(text, str) or not re.match(DURATION_PATTERN, text):
            return None  # absent, null, or already reported by the schema
        ms = parse_duration_ms(text)
        if ms % 1000:
            errors.append(f"{path}: must be whole seconds, got {json.dumps(text)}")
        elif ms < low_ms:
            errors.append(f"{path}: must be at least {low_ms // 1000}s, got {json.dumps(text)}")
        elif high_ms is not None and ms > high_ms:
            limit = f"{high_ms // 3_600_000}h"
            errors.append(f"{path}: must be at most {limit}, got {json.dumps(text)}")
        else:
            return ms
        return None

    duration("$.tick", _get(doc, "tick"), low_ms=1000, high_ms=MAX_WINDOW_MS)
    windows = _get(doc, "windows")
    given = windows if isinstance(windows, dict) else {}
    win = {
        key: duration(
            f"$.windows.{key}", given.get(key, default), low_ms=1000, high_ms=MAX_WINDOW_MS
        )
        for key, default in window_defaults.items()
    }
    fast, mid, day = win["fast"], win["mid"], win["day"]
    if fast is not None and mid is not None and fast > mid:
        errors.append("$.windows.fast: must not be longer than windows.mid")
    if mid is not None and day is not None and mid > day:
        errors.append("$.windows.mid: must not be longer than windows.day")
    stale = _get(doc, "max_staleness")
    duration("$.max_staleness", stale, low_ms=1000, high_ms=MAX_STALENESS_MS)
    duration("$.entry.cooldown", _get(doc, "entry", "cooldown"), low_ms=0, high_ms=None)
    duration("$.exit.max_hold", _get(doc, "exit", "max_hold"), low_ms=1000, high_ms=None)

    factors = _get(doc, "factors")
    first_use: dict[str, int] = {}
    for i, factor in enumerate(factors if isinstance(factors, list) else []):
        if not isinstance(factor, dict):
            continue
        if factor.get("unsigned") is True and factor.get("contrarian") is True:
            errors.append(f"$.factors[{i}]: unsigned and contrarian cannot both be true")
        feature = factor.get("feature")
        if not isinstance(feature, str):
            continue
        if feature in first_use:
            errors.append(
                f"$.factors[{i}].feature: {json.dumps(feature)} is already a factor "
                f"($.factors[{first_use[feature]}])"
            )
        else:
            first_use[feature] = i

    gates = _get(doc, "gates")
    for feature, bounds in (gates if isinstance(gates, dict) else {}).items():
        if isinstance(bounds, list) and len(bounds) == 2:
            low, high = _number(bounds[0]), _number(bounds[1])
            if low is not None and high is not None and low > high:
                where = json_path(("gates", feature))
                errors.append(f"{where}: low {bounds[0]} is above high {bounds[1]}")

    ex = _get(doc, "exit")
    if isinstance(ex, dict):
        tp1, tp2 = _number(ex.get("tp1_atr")), _number(ex.get("tp2_atr"))
        has_fraction = ex.get("tp1_fraction") is not None
        if tp1 is not None and not has_fraction:
            errors.append("$.exit.tp1_fraction: is required when exit.tp1_atr is set")
        if ex.get("tp1_atr") is None and has_fraction:
            errors.append("$.exit.tp1_fraction: needs exit.tp1_atr")
        if ex.get("tp1_atr") is None and ex.get("breakeven_after_tp1") is True:
            errors.append("$.exit.breakeven_after_tp1: needs exit.tp1_atr")
        if tp1 is not None and tp2 is not None and tp2 <= tp1:
            errors.append("$.exit.tp2_atr: must be greater than exit.tp1_atr")
    return errors


def problems(doc: Any, window_defaults: Mapping[str, str]) -> Sequence[str]:
    """Every problem of one parsed strategy document: the schema's, then the rules'."""
    found = schema_problems(doc)
    if isinstance(doc, dict):
        found += semantic_problems(doc, window_defaults)
    return found
