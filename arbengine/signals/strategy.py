"""Strategy files: the published JSON schema, validation, defaults, hashing, loading.

A strategy is pure data (``strategies/*.json``). The schema below is the
single source of truth for the structure *and* the defaults: the validator
interprets it (a small JSON Schema subset), the default filler reads its
``default`` annotations, and ``arbengine strategies schema`` prints it. The
rules a schema cannot say (duration bounds, unsigned + contrarian, tp1
needs tp1_fraction, window order…) are checked in code, after the
structure is valid, and reported the same way: one line per problem with
the file and the JSON path.

The content hash is sha256 over ``json.dumps(doc_with_defaults,
sort_keys=True, separators=(",", ":"))`` encoded as UTF-8, so adding a key
that merely spells out a default does not change it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from arbengine.domain.durations import DurationError, parse_duration_ms
from arbengine.domain.errors import ConfigError
from arbengine.signals.features import (
    FEATURE_NAMES,
    MAX_STALENESS_MS,
    MAX_WINDOW_MS,
    FeatureSpec,
)
from arbengine.signals.series import inputs_read

SCHEMA_ID = "https://arbengine.dev/schemas/strategy-1.json"
_DURATION_PATTERN = r"^\d+(ms|s|m|h|d)$"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _duration(default: str | None = None, *, nullable: bool = False) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": ["string", "null"] if nullable else "string",
        "pattern": _DURATION_PATTERN,
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


# ---- a JSON Schema subset interpreter --------------------------------------------------------


def _path_key(path: str, key: str) -> str:
    return f"{path}.{key}" if _IDENT.match(key) else f"{path}[{json.dumps(key)}]"


def _type_ok(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    raise AssertionError(f"schema uses unsupported type {kind}")  # pragma: no cover


_TYPE_WORDS = {
    "null": "null",
    "boolean": "true or false",
    "integer": "an integer",
    "number": "a number",
    "string": "a string",
    "array": "an array",
    "object": "an object",
}


def _fmt(x: float) -> str:
    return json.dumps(x)


def _validate(value: Any, schema: Mapping[str, Any], path: str, errors: list[str]) -> None:
    """Append ``"<path>: <problem>"`` for every way ``value`` violates ``schema``."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds_list = [kinds] if isinstance(kinds, str) else list(kinds)
        if not any(_type_ok(value, k) for k in kinds_list):
            words = " or ".join(_TYPE_WORDS[k] for k in kinds_list)
            errors.append(f"{path}: must be {words}")
            return
    if "enum" in schema and value not in schema["enum"]:
        if schema["enum"] == list(FEATURE_NAMES):
            errors.append(f"{path}: unknown feature {json.dumps(value)}")
        else:
            errors.append(f"{path}: must be one of {json.dumps(schema['enum'])}")
        return
    if isinstance(value, str) and "pattern" in schema and not re.search(schema["pattern"], value):
        if schema["pattern"] == _DURATION_PATTERN:
            errors.append(
                f"{path}: must be a duration like '15s', '30m', '4h' or '1d', "
                f"got {json.dumps(value)}"
            )
        else:
            errors.append(f"{path}: must match {schema['pattern']}, got {json.dumps(value)}")
    if _type_ok(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path}: must be >= {_fmt(schema['minimum'])}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            errors.append(f"{path}: must be > {_fmt(schema['exclusiveMinimum'])}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path}: must be <= {_fmt(schema['maximum'])}")
    if isinstance(value, list):
        _validate_array(value, schema, path, errors)
    if isinstance(value, dict):
        _validate_object(value, schema, path, errors)


def _validate_array(
    value: list[Any], schema: Mapping[str, Any], path: str, errors: list[str]
) -> None:
    if "minItems" in schema and len(value) < schema["minItems"]:
        n = schema["minItems"]
        errors.append(f"{path}: must have at least {n} item{'s' if n != 1 else ''}")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{path}: must have at most {schema['maxItems']} items")
    if schema.get("uniqueItems"):
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                errors.append(f"{path}[{i}]: duplicate item {json.dumps(item)}")
            seen.append(item)
    prefix = schema.get("prefixItems", [])
    for i, item in enumerate(value):
        sub = prefix[i] if i < len(prefix) else schema.get("items")
        if isinstance(sub, Mapping):
            _validate(item, sub, f"{path}[{i}]", errors)


def _validate_object(
    value: dict[str, Any], schema: Mapping[str, Any], path: str, errors: list[str]
) -> None:
    props: Mapping[str, Any] = schema.get("properties", {})
    for key in schema.get("required", []):
        if key not in value:
            errors.append(f"{_path_key(path, key)}: is required")
    names = schema.get("propertyNames")
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        sub_path = _path_key(path, key)
        if isinstance(names, Mapping):
            before = len(errors)
            _validate(key, names, sub_path, errors)
            if len(errors) > before:
                continue
        if key in props:
            _validate(item, props[key], sub_path, errors)
        elif extra is False:
            errors.append(f"{sub_path}: unknown key")
        elif isinstance(extra, Mapping):
            _validate(item, extra, sub_path, errors)


def _fill_defaults(value: Any, schema: Mapping[str, Any]) -> Any:
    """A copy of a *valid* ``value`` with every schema default written out."""
    if isinstance(value, dict):
        props: Mapping[str, Any] = schema.get("properties", {})
        out: dict[str, Any] = {}
        for key, sub in props.items():
            if key in value:
                out[key] = _fill_defaults(value[key], sub)
            elif "default" in sub:
                out[key] = _fill_defaults(copy.deepcopy(sub["default"]), sub)
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key not in props:
                out[key] = _fill_defaults(item, extra) if isinstance(extra, Mapping) else item
        return out
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, Mapping):
            return [_fill_defaults(v, items) for v in value]
        return list(value)
    return value


# ---- typed strategy --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Windows:
    fast_ms: int
    mid_ms: int
    day_ms: int


@dataclass(frozen=True, slots=True)
class Direction:
    feature: str
    min: float
    confirm: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Factor:
    feature: str
    weight: float
    full: float
    unsigned: bool
    contrarian: bool


@dataclass(frozen=True, slots=True)
class Gate:
    feature: str
    low: float | None
    high: float | None


@dataclass(frozen=True, slots=True)
class Entry:
    threshold: float
    min_coverage: float
    cooldown_ms: int
    max_open_per_symbol: int | None


@dataclass(frozen=True, slots=True)
class Exit:
    sl_atr: float
    tp1_atr: float | None
    tp1_fraction: float | None
    tp2_atr: float | None
    breakeven_after_tp1: bool
    max_hold_ms: int | None


@dataclass(frozen=True, slots=True)
class Costs:
    fee_bps: float
    slippage_bps: float


@dataclass(frozen=True, slots=True)
class Paper:
    enabled: bool
    risk_usd: float


@dataclass(frozen=True, slots=True)
class Strategy:
    """A validated strategy with every default applied."""

    name: str
    enabled: bool
    symbols: tuple[str, ...]
    tick_ms: int
    windows: Windows
    max_staleness_ms: int
    atr_percentile_min_values: int
    direction: Direction
    factors: tuple[Factor, ...]
    gates: tuple[Gate, ...]
    entry: Entry
    exit: Exit
    costs: Costs
    paper: Paper
    hash: str
    """sha256 hex of :attr:`canonical_json`."""
    canonical_json: str
    """The hash input: the document with defaults, sorted keys, no whitespace."""
    reads: tuple[str, ...] = ()
    """Every feature the strategy reads, in first-use order (direction, confirm,
    factors, gates, then price and atr, which firing needs)."""
    source: str | None = None

    @property
    def inputs(self) -> frozenset[str]:
        """The collected inputs it reads (the tape, indicator series), for the live engine
        to wait for at start."""
        return inputs_read(self.reads, paper=self.paper.enabled)

    @property
    def feature_spec(self) -> FeatureSpec:
        return FeatureSpec(
            fast_ms=self.windows.fast_ms,
            mid_ms=self.windows.mid_ms,
            day_ms=self.windows.day_ms,
            max_staleness_ms=self.max_staleness_ms,
            atr_percentile_min_values=self.atr_percentile_min_values,
        )

    def document(self) -> dict[str, Any]:
        """The strategy as plain JSON data, defaults included."""
        doc: dict[str, Any] = json.loads(self.canonical_json)
        return doc


class StrategyError(ConfigError):
    """One or more strategy files are invalid; ``problems`` has one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in strategies"
        super().__init__(f"{head}: " + "; ".join(self.problems))


def canonical_json(doc_with_defaults: Mapping[str, Any]) -> str:
    return json.dumps(doc_with_defaults, sort_keys=True, separators=(",", ":"))


def content_hash(doc_with_defaults: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(doc_with_defaults).encode("utf-8")).hexdigest()


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


def _semantic_errors(doc: Mapping[str, Any]) -> list[str]:
    """Rules beyond the schema, on the document with its defaults.

    Runs even when the structure has errors, so one pass reports everything;
    each rule only looks at values whose structure is valid.
    """
    errors: list[str] = []

    def duration(path: str, text: Any, *, low_ms: int, high_ms: int | None) -> int | None:
        if not isinstance(text, str) or not re.match(_DURATION_PATTERN, text):
            return None  # absent, null, or already reported by the schema
        try:
            ms = parse_duration_ms(text)
        except DurationError:  # pragma: no cover - the pattern above is the parser's
            return None
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
    win = {
        key: duration(
            f"$.windows.{key}", _get(doc, "windows", key), low_ms=1000, high_ms=MAX_WINDOW_MS
        )
        for key in ("fast", "mid", "day")
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
                errors.append(
                    f"{_path_key('$.gates', feature)}: low {bounds[0]} is above high {bounds[1]}"
                )

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


def validate_document(doc: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """(document with defaults, []) when valid, else (None, ["$.path: problem", …])."""
    schema = strategy_schema()
    errors: list[str] = []
    _validate(doc, schema, "$", errors)
    full: dict[str, Any] | None = None
    if isinstance(doc, dict):
        full = _fill_defaults(doc, schema)
        errors += _semantic_errors(full)
    if errors or full is None:
        return None, errors
    return full, []


def _build(full: Mapping[str, Any], source: str | None) -> Strategy:
    ms = parse_duration_ms
    w, d, en, ex = full["windows"], full["direction"], full["entry"], full["exit"]
    return Strategy(
        name=full["name"],
        enabled=full["enabled"],
        symbols=tuple(full["symbols"]),
        tick_ms=ms(full["tick"]),
        windows=Windows(ms(w["fast"]), ms(w["mid"]), ms(w["day"])),
        max_staleness_ms=ms(full["max_staleness"]),
        atr_percentile_min_values=full["atr_percentile_min_values"],
        direction=Direction(d["feature"], float(d["min"]), tuple(d["confirm"])),
        factors=tuple(
            Factor(
                f["feature"], float(f["weight"]), float(f["full"]), f["unsigned"], f["contrarian"]
            )
            for f in full["factors"]
        ),
        gates=tuple(
            Gate(
                name,
                None if low is None else float(low),
                None if high is None else float(high),
            )
            for name, (low, high) in full["gates"].items()
        ),
        entry=Entry(
            float(en["threshold"]),
            float(en["min_coverage"]),
            ms(en["cooldown"]),
            en["max_open_per_symbol"],
        ),
        exit=Exit(
            float(ex["sl_atr"]),
            None if ex["tp1_atr"] is None else float(ex["tp1_atr"]),
            None if ex["tp1_fraction"] is None else float(ex["tp1_fraction"]),
            None if ex["tp2_atr"] is None else float(ex["tp2_atr"]),
            ex["breakeven_after_tp1"],
            None if ex["max_hold"] is None else ms(ex["max_hold"]),
        ),
        costs=Costs(float(full["costs"]["fee_bps"]), float(full["costs"]["slippage_bps"])),
        paper=Paper(full["paper"]["enabled"], float(full["paper"]["risk_usd"])),
        hash=content_hash(full),
        canonical_json=canonical_json(full),
        reads=_reads(full),
        source=source,
    )


def _reads(full: Mapping[str, Any]) -> tuple[str, ...]:
    names = [full["direction"]["feature"], *full["direction"]["confirm"]]
    names += [f["feature"] for f in full["factors"]] + list(full["gates"])
    return tuple(dict.fromkeys([*names, "price", "atr"]))


def parse_strategy(doc: Any, source: str | None = None) -> Strategy:
    """A typed strategy from parsed JSON; raises StrategyError listing every problem."""
    full, errors = validate_document(doc)
    if full is None:
        prefix = f"{source}: " if source else ""
        raise StrategyError([prefix + e for e in errors])
    return _build(full, source)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {json.dumps(key)}")
        out[key] = value
    return out


def _read(path: Path) -> tuple[Any, list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"cannot read: {exc}"]
    try:
        return json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant
        ), []
    except json.JSONDecodeError as exc:
        return None, [f"invalid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"]
    except ValueError as exc:
        return None, [f"invalid JSON: {exc}"]


def _expand(paths: Iterable[Path | str]) -> Iterator[Path | str]:
    for raw in paths:
        if Path(raw).is_dir():
            yield from sorted(Path(raw).glob("*.json"))
        else:
            yield raw


def _check(paths: Iterable[Path | str]) -> tuple[list[Strategy], list[str]]:
    strategies: list[Strategy] = []
    errors: list[str] = []
    names: dict[str, str] = {}
    for raw in _expand(paths):
        path = Path(raw)
        label = str(raw)
        doc, problems = _read(path)
        if problems:
            errors += [f"{label}: {p}" for p in problems]
            continue
        full, problems = validate_document(doc)
        if full is None:
            errors += [f"{label}: {p}" for p in problems]
            continue
        name = full["name"]
        if name in names:
            errors.append(
                f"{label}: $.name: duplicate strategy name {json.dumps(name)} "
                f"(also in {names[name]})"
            )
            continue
        names[name] = label
        strategies.append(_build(full, label))
    return strategies, errors


def check_files(paths: Iterable[Path | str]) -> list[str]:
    """Every problem in the given strategy files as ``"<file>: <json path>: <problem>"`` lines.

    A directory stands for its ``*.json`` files. Also reports a name used by
    more than one of the files. Empty when all are valid.
    """
    return _check(paths)[1]


@dataclass(frozen=True, slots=True)
class StrategySet:
    """A validated set of strategies with unique names, in file-name order."""

    strategies: tuple[Strategy, ...]

    def __iter__(self) -> Iterator[Strategy]:
        return iter(self.strategies)

    def __len__(self) -> int:
        return len(self.strategies)

    def __getitem__(self, name: str) -> Strategy:
        for s in self.strategies:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.strategies)

    @property
    def enabled(self) -> tuple[Strategy, ...]:
        return tuple(s for s in self.strategies if s.enabled)

    @property
    def symbols(self) -> frozenset[str]:
        """Symbols of the enabled strategies."""
        return frozenset(sym for s in self.enabled for sym in s.symbols)

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for s in self.strategies:
            if s.name in seen:
                raise StrategyError([f"duplicate strategy name {json.dumps(s.name)}"])
            seen.add(s.name)

    @classmethod
    def of(cls, strategies: Iterable[Strategy]) -> StrategySet:
        return cls(tuple(strategies))


@dataclass(frozen=True, slots=True)
class Collected:
    """The symbols the daemon collects: an enabled strategy may name no other.

    A strategy naming a symbol that is not collected would be evaluated on no
    data at all (every tick ``no_price``), so it is refused where it is loaded,
    with what to do about it.
    """

    configured: frozenset[str]
    """``[collect] symbols``."""
    stopped: Mapping[str, str] = field(default_factory=dict)
    """Configured symbols the exchange does not let us follow (skipped at start or
    stopped since), with the reason."""
    shipped: bool = False
    """The strategies are the ones shipped inside the package: changed as copies."""

    @classmethod
    def of(
        cls,
        configured: Iterable[str],
        stopped: Mapping[str, str] | None = None,
        *,
        shipped: bool = False,
    ) -> Collected:
        return cls(frozenset(s.upper() for s in configured), dict(stopped or {}), shipped)

    def problem(self, symbol: str) -> str | None:
        """Why ``symbol`` cannot be named, and what to do, as the end of a sentence; None when
        it is collected."""
        remove = (
            "copy the shipped strategies into ./strategies and remove it there"
            if self.shipped
            else "remove it from this strategy"
        )
        if symbol in self.stopped:
            return f"is not collected: the exchange stopped it ({self.stopped[symbol]}); {remove}"
        if symbol not in self.configured:
            return (
                f"is not collected: add it to [collect] symbols (ARB_COLLECT_SYMBOLS) or {remove}"
            )
        return None


def uncollected_symbols(strategies: Iterable[Strategy], collected: Collected) -> list[str]:
    """``"<file>: $.symbols[i]: <symbol> is not collected: <what to do>"`` for every symbol
    an enabled strategy names that is not collected (a disabled one is not evaluated)."""
    problems: list[str] = []
    for strategy in strategies:
        if not strategy.enabled:
            continue
        for i, symbol in enumerate(strategy.symbols):
            why = collected.problem(symbol)
            if why is not None:
                label = strategy.source or strategy.name
                problems.append(f"{label}: $.symbols[{i}]: {symbol} {why}")
    return problems


def load_strategy_set(
    directory: Path | str, collected: Collection[str] | Collected | None = None
) -> StrategySet:
    """Load and validate every ``*.json`` in ``directory`` as one set.

    With ``collected`` (the symbols collected, or a :class:`Collected`), an
    enabled strategy naming any other symbol is a problem too. Raises
    StrategyError listing every problem of every file; an empty directory is
    a valid, empty set.
    """
    root = Path(directory)
    if not root.is_dir():
        raise StrategyError([f"{root}: not a directory"])
    strategies, errors = _check(sorted(root.glob("*.json")))
    if collected is not None:
        if not isinstance(collected, Collected):
            collected = Collected.of(collected)
        errors += uncollected_symbols(strategies, collected)
    if errors:
        raise StrategyError(errors)
    return StrategySet(tuple(strategies))
