"""Strategy files: the typed shape, validation, defaults, hashing, loading.

A strategy is pure data (``strategies/*.json``). Its shape, types and
defaults are the structs below; ``strategy_rules`` holds the published JSON
Schema that users write against (a test holds it to these structs: same
keys, requirements and defaults) and the rules no schema can say, and words
every problem as ``file: $.path: what``.
A valid document is then decoded into the structs by msgspec; what the
engine derives from it (milliseconds, gate bounds, the features it reads) is
computed from the structs, once.

The content hash is sha256 over ``json.dumps(doc_with_defaults,
sort_keys=True, separators=(",", ":"))`` encoded as UTF-8, so adding a key
that merely spells out a default does not change it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import msgspec

from arbengine.domain.durations import Duration, decode_hook, encode_hook
from arbengine.domain.errors import ConfigError
from arbengine.signals.features import FeatureSpec
from arbengine.signals.series import inputs_read
from arbengine.signals.strategy_rules import problems


class _Part(msgspec.Struct, frozen=True, dict=True, forbid_unknown_fields=True):
    """Base of the structs of a strategy file (``dict=True``: derived values are cached)."""


class Windows(_Part, frozen=True, kw_only=True):
    fast: Duration = Duration("30m")
    mid: Duration = Duration("4h")
    day: Duration = Duration("24h")

    @cached_property
    def fast_ms(self) -> int:
        return self.fast.ms

    @cached_property
    def mid_ms(self) -> int:
        return self.mid.ms

    @cached_property
    def day_ms(self) -> int:
        return self.day.ms


class Direction(_Part, frozen=True):
    feature: str
    min: float
    confirm: tuple[str, ...] = ()


class Factor(_Part, frozen=True):
    feature: str
    weight: float
    full: float
    unsigned: bool = False
    contrarian: bool = False


class Gate(msgspec.Struct, frozen=True):
    """One gate as the engine reads it: ``low <= value <= high``, None unbounded."""

    feature: str
    low: float | None
    high: float | None


class Entry(_Part, frozen=True, kw_only=True):
    threshold: float
    min_coverage: float = 0.0
    cooldown: Duration = Duration("0s")
    max_open_per_symbol: int | None = None

    @cached_property
    def cooldown_ms(self) -> int:
        return self.cooldown.ms


class Exit(_Part, frozen=True, kw_only=True):
    sl_atr: float
    tp1_atr: float | None = None
    tp1_fraction: float | None = None
    tp2_atr: float | None = None
    breakeven_after_tp1: bool = False
    max_hold: Duration | None = None

    @cached_property
    def max_hold_ms(self) -> int | None:
        return None if self.max_hold is None else self.max_hold.ms


class Costs(_Part, frozen=True, kw_only=True):
    fee_bps: float = 0.0
    slippage_bps: float = 0.0


class Paper(_Part, frozen=True, kw_only=True):
    enabled: bool = True
    risk_usd: float = 100.0


class StrategyFile(_Part, frozen=True, kw_only=True):
    """A strategy file's shape, types and defaults (the schema's ``properties``)."""

    name: str
    enabled: bool = True
    symbols: tuple[str, ...]
    tick: Duration = Duration("15s")
    windows: Windows = msgspec.field(default_factory=Windows)
    max_staleness: Duration = Duration("5m")
    atr_percentile_min_values: int = 288
    direction: Direction
    factors: tuple[Factor, ...]
    gate_bounds: dict[str, tuple[float | None, float | None]] = msgspec.field(
        default_factory=dict, name="gates"
    )
    entry: Entry
    exit: Exit
    costs: Costs = msgspec.field(default_factory=Costs)
    paper: Paper = msgspec.field(default_factory=Paper)


class Strategy(StrategyFile, frozen=True, kw_only=True):
    """A validated strategy file, with where it came from and its content hash."""

    hash: str
    """sha256 hex of :attr:`canonical_json`."""
    canonical_json: str
    """The hash input: the document with defaults, sorted keys, no whitespace."""
    source: str | None = None

    def __hash__(self) -> int:
        # Equal strategies have equal content hashes (gate bounds are a dict: not hashable).
        return hash((self.hash, self.source))

    @cached_property
    def tick_ms(self) -> int:
        return self.tick.ms

    @cached_property
    def max_staleness_ms(self) -> int:
        return self.max_staleness.ms

    @cached_property
    def gates(self) -> tuple[Gate, ...]:
        return tuple(Gate(name, low, high) for name, (low, high) in self.gate_bounds.items())

    @cached_property
    def reads(self) -> tuple[str, ...]:
        """Every feature the strategy reads, in first-use order (direction, confirm,
        factors, gates, then price and atr, which firing needs)."""
        names = [self.direction.feature, *self.direction.confirm]
        names += [f.feature for f in self.factors] + list(self.gate_bounds)
        return tuple(dict.fromkeys([*names, "price", "atr"]))

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


_ERROR_PATH = re.compile(r" - at `(\$[^`]*)`$")
_WINDOW_DEFAULTS: dict[str, str] = msgspec.to_builtins(Windows(), enc_hook=encode_hook)


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


def _as_written(value: Any) -> Any:
    """A default as the published schema writes it: a whole number without ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _as_written(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_as_written(v) for v in value]
    return value


def _with_defaults(decoded: Any, written: Any) -> Any:
    """The document as written, every absent key filled from ``decoded`` (its structs' plain
    data): numbers keep their spelling, so ``1`` and ``1.0`` hash as written."""
    if isinstance(decoded, dict) and isinstance(written, dict):
        return {
            k: _with_defaults(v, written[k]) if k in written else _as_written(v)
            for k, v in decoded.items()
        }
    if isinstance(decoded, list | tuple) and isinstance(written, list):
        return [_with_defaults(d, w) for d, w in zip(decoded, written, strict=True)]
    return written


def _decode(doc: Any) -> tuple[StrategyFile, dict[str, Any]] | list[str]:
    """(the typed file, the document with defaults), or every problem as ``$.path: what``."""
    found = problems(doc, _WINDOW_DEFAULTS)
    if found:
        return list(found)
    try:
        typed = msgspec.convert(doc, StrategyFile, dec_hook=decode_hook)
    except msgspec.ValidationError as exc:
        # The schema let it through, so it is a number no float holds (400 digits): the path
        # is all we read of msgspec's message.
        where = _ERROR_PATH.search(str(exc))
        return [f"{where.group(1) if where else '$'}: is out of range"]
    full: dict[str, Any] = _with_defaults(msgspec.to_builtins(typed, enc_hook=encode_hook), doc)
    return typed, full


def validate_document(doc: Any) -> tuple[dict[str, Any] | None, list[str]]:
    """(document with defaults, []) when valid, else (None, ["$.path: problem", …])."""
    decoded = _decode(doc)
    if isinstance(decoded, list):
        return None, decoded
    return decoded[1], []


def _strategy(typed: StrategyFile, full: Mapping[str, Any], source: str | None) -> Strategy:
    return Strategy(
        **msgspec.structs.asdict(typed),
        hash=content_hash(full),
        canonical_json=canonical_json(full),
        source=source,
    )


def parse_strategy(doc: Any, source: str | None = None) -> Strategy:
    """A typed strategy from parsed JSON; raises StrategyError listing every problem."""
    decoded = _decode(doc)
    if isinstance(decoded, list):
        prefix = f"{source}: " if source else ""
        raise StrategyError([prefix + e for e in decoded])
    return _strategy(*decoded, source)


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
        decoded = _decode(doc)
        if isinstance(decoded, list):
            errors += [f"{label}: {p}" for p in decoded]
            continue
        name = decoded[0].name
        if name in names:
            errors.append(
                f"{label}: $.name: duplicate strategy name {json.dumps(name)} "
                f"(also in {names[name]})"
            )
            continue
        names[name] = label
        strategies.append(_strategy(*decoded, label))
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
