"""Strategy files: schema, validation errors with JSON paths, defaults, hashing, loading."""

from __future__ import annotations

import copy
import hashlib
import json
import typing
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from arbengine.domain.durations import encode_hook
from arbengine.domain.errors import ConfigError
from arbengine.signals import (
    Collected,
    StrategyError,
    StrategySet,
    check_files,
    load_strategy_set,
    parse_strategy,
    strategy_schema,
    validate_document,
)
from arbengine.signals.strategy import StrategyFile

REPO = Path(__file__).resolve().parents[3]
MINIMAL: dict[str, Any] = {
    "name": "m",
    "symbols": ["BTCUSDT"],
    "direction": {"feature": "flow_fast", "min": 0.05},
    "factors": [{"feature": "flow_mid", "weight": 1, "full": 0.1}],
    "entry": {"threshold": 50},
    "exit": {"sl_atr": 1.5},
}
MINIMAL_CANONICAL = (
    '{"atr_percentile_min_values":288,"costs":{"fee_bps":0,"slippage_bps":0},'
    '"direction":{"confirm":[],"feature":"flow_fast","min":0.05},"enabled":true,'
    '"entry":{"cooldown":"0s","max_open_per_symbol":null,"min_coverage":0,"threshold":50},'
    '"exit":{"breakeven_after_tp1":false,"max_hold":null,"sl_atr":1.5,"tp1_atr":null,'
    '"tp1_fraction":null,"tp2_atr":null},'
    '"factors":[{"contrarian":false,"feature":"flow_mid","full":0.1,"unsigned":false,"weight":1}],'
    '"gates":{},"max_staleness":"5m","name":"m","paper":{"enabled":true,"risk_usd":100},'
    '"symbols":["BTCUSDT"],"tick":"15s","windows":{"day":"24h","fast":"30m","mid":"4h"}}'
)


DELETE = object()


def with_changes(**changes: Any) -> dict[str, Any]:
    """MINIMAL with changes at ``__``-separated paths (``exit__tp1_atr=2``); DELETE removes."""
    doc = copy.deepcopy(MINIMAL)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return doc


def errors_of(doc: Any) -> list[str]:
    full, errors = validate_document(doc)
    assert (full is None) == bool(errors)
    return errors


# ---- the shipped strategies -------------------------------------------------------------------


def test_shipped_strategies_are_valid_and_distinct() -> None:
    files = sorted((REPO / "strategies").glob("*.json"))
    assert [p.name for p in files] == ["v51.json", "v52.json"]
    assert check_files(files) == []
    strategies = load_strategy_set(REPO / "strategies")
    assert strategies.names == ("v51", "v52")
    v51, v52 = strategies["v51"], strategies["v52"]
    assert v51.hash != v52.hash
    assert v51.symbols == v52.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")
    assert v51.direction.feature != v52.direction.feature
    assert any(f.contrarian for f in v51.factors)


def test_v52_is_the_documented_example() -> None:
    v52 = load_strategy_set(REPO / "strategies")["v52"]
    assert v52.tick_ms == 15_000
    assert (v52.windows.fast_ms, v52.windows.mid_ms, v52.windows.day_ms) == (
        1_800_000,
        14_400_000,
        86_400_000,
    )
    assert v52.direction.confirm == ("flow_mid",)
    assert [(g.feature, g.low, g.high) for g in v52.gates] == [
        ("atr_percentile", 20.0, 95.0),
        ("trades_fast", 50.0, None),
    ]
    assert v52.entry.cooldown_ms == 1_800_000
    assert v52.exit.max_hold_ms == 4_200_000
    assert sum(f.weight for f in v52.factors) == 100


# ---- errors with JSON paths -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (with_changes(factors__0__weight=0), "$.factors[0].weight: must be > 0"),
        (with_changes(factors__0__full=-1), "$.factors[0].full: must be > 0"),
        (with_changes(factors__0__weight=True), "$.factors[0].weight: must be a number"),
        (with_changes(bogus=1), "$.bogus: unknown key"),
        (with_changes(entry__thresold=70), "$.entry.thresold: unknown key"),
        (with_changes(entry__threshold=DELETE), "$.entry.threshold: is required"),
        (with_changes(exit=DELETE), "$.exit: is required"),
        (with_changes(symbols=[]), "$.symbols: must have at least 1 item"),
        (with_changes(symbols=["BTCUSDT", "BTCUSDT"]), '$.symbols[1]: duplicate item "BTCUSDT"'),
        (with_changes(direction__feature="flow"), '$.direction.feature: unknown feature "flow"'),
        (
            with_changes(direction__confirm=["nope"]),
            '$.direction.confirm[0]: unknown feature "nope"',
        ),
        (with_changes(direction__min=-0.1), "$.direction.min: must be >= 0"),
        (with_changes(gates={"foo": [1, 2]}), '$.gates.foo: unknown feature "foo"'),
        (with_changes(gates={"atr": [1]}), "$.gates.atr: must have at least 2 items"),
        (with_changes(gates={"atr": ["a", None]}), "$.gates.atr[0]: must be a number or null"),
        (with_changes(gates={"atr": [3, 1]}), "$.gates.atr: low 3 is above high 1"),
        (with_changes(entry__threshold=101), "$.entry.threshold: must be <= 100"),
        (with_changes(entry__max_open_per_symbol=0), "$.entry.max_open_per_symbol: must be >= 1"),
        (with_changes(atr_percentile_min_values=11), "$.atr_percentile_min_values: must be >= 12"),
        (
            with_changes(tick="15"),
            "$.tick: must be a duration like '15s', '30m', '4h' or '1d', got \"15\"",
        ),
        (with_changes(tick="1500ms"), '$.tick: must be whole seconds, got "1500ms"'),
        (with_changes(windows={"day": "25h"}), '$.windows.day: must be at most 24h, got "25h"'),
        (with_changes(windows={"day": "1d"}), None),
        (
            with_changes(windows={"fast": "5h"}),
            "$.windows.fast: must not be longer than windows.mid",
        ),
        (with_changes(max_staleness="27h"), '$.max_staleness: must be at most 26h, got "27h"'),
        (with_changes(max_staleness="26h"), None),
        (
            with_changes(factors__0__unsigned=True, factors__0__contrarian=True),
            "$.factors[0]: unsigned and contrarian cannot both be true",
        ),
        (
            with_changes(exit__tp1_atr=1.0),
            "$.exit.tp1_fraction: is required when exit.tp1_atr is set",
        ),
        (with_changes(exit__tp1_fraction=0.5), "$.exit.tp1_fraction: needs exit.tp1_atr"),
        (
            with_changes(exit__tp1_atr=2.0, exit__tp1_fraction=0.5, exit__tp2_atr=1.0),
            "$.exit.tp2_atr: must be greater than exit.tp1_atr",
        ),
        (
            with_changes(exit__tp1_fraction=1.5, exit__tp1_atr=1),
            "$.exit.tp1_fraction: must be <= 1",
        ),
        (with_changes(exit__max_hold="30s5"), "$.exit.max_hold: must be a duration like"),
        (
            with_changes(
                factors=[*MINIMAL["factors"], {"feature": "flow_mid", "weight": 1, "full": 1}]
            ),
            '$.factors[1].feature: "flow_mid" is already a factor ($.factors[0])',
        ),
        ([1, 2], "$: must be an object"),
        (with_changes(exit__sl_atr=10**400), "$.exit.sl_atr: is out of range"),
    ],
)
def test_each_rule_is_reported_with_its_json_path(doc: Any, expected: str | None) -> None:
    errors = errors_of(doc)
    if expected is None:
        assert errors == []
    else:
        assert any(e.startswith(expected) for e in errors), errors


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path) -> None:
    doc = with_changes(
        symbols=[],
        factors__0__weight=0,
        bogus=True,
        windows={"day": "25h"},
        exit__tp1_atr=1.0,
    )
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    assert check_files([path]) == [
        f"{path}: $.symbols: must have at least 1 item",
        f"{path}: $.factors[0].weight: must be > 0",
        f"{path}: $.bogus: unknown key",
        f'{path}: $.windows.day: must be at most 24h, got "25h"',
        f"{path}: $.exit.tp1_fraction: is required when exit.tp1_atr is set",
    ]


def test_json_syntax_duplicate_keys_and_nan_are_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x",\n "symbols": [}')
    dup = tmp_path / "dup.json"
    dup.write_text('{"name": "a", "name": "b"}')
    nan = tmp_path / "nan.json"
    nan.write_text(json.dumps(with_changes(entry__threshold=0)).replace(": 0}", ": NaN}"))
    lines = check_files([broken, dup, nan])
    assert lines[0].startswith(f"{broken}: invalid JSON: ")
    assert "line 2" in lines[0]
    assert lines[1] == f'{dup}: invalid JSON: duplicate key "name"'
    assert lines[2] == f"{nan}: invalid JSON: NaN is not valid JSON"


def test_names_must_be_unique_across_files(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(MINIMAL))
    (tmp_path / "b.json").write_text(json.dumps(MINIMAL))
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert check_files([tmp_path]) == [f'{b}: $.name: duplicate strategy name "m" (also in {a})']


def test_load_strategy_set_raises_one_error_listing_every_problem(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(with_changes(factors__0__weight=0)))
    (tmp_path / "b.json").write_text(json.dumps(with_changes(name="b", bogus=1)))
    (tmp_path / "notes.txt").write_text("not a strategy")
    with pytest.raises(StrategyError) as caught:
        load_strategy_set(tmp_path)
    err = caught.value
    assert isinstance(err, ConfigError)
    assert err.problems == (
        f"{tmp_path / 'a.json'}: $.factors[0].weight: must be > 0",
        f"{tmp_path / 'b.json'}: $.bogus: unknown key",
    )
    assert str(err).startswith("2 problems in strategies: ")
    assert "\n" not in str(err)


def test_a_set_refuses_two_strategies_of_one_name() -> None:
    with pytest.raises(StrategyError, match="duplicate strategy name"):
        StrategySet.of([parse_strategy(MINIMAL), parse_strategy(with_changes(enabled=False))])


def test_empty_directory_is_an_empty_set_and_missing_one_an_error(tmp_path: Path) -> None:
    assert len(load_strategy_set(tmp_path)) == 0
    with pytest.raises(StrategyError, match="not a directory"):
        load_strategy_set(tmp_path / "missing")


def test_a_strategy_naming_a_symbol_that_is_not_collected_is_refused(tmp_path: Path) -> None:
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    off = tmp_path / "off.json"
    a.write_text(json.dumps(with_changes(symbols=["BTCUSDT", "DOGEUSDT", "ETHUSDT"])))
    b.write_text(json.dumps(with_changes(name="b", symbols=["ETHUSDT"])))
    # Not evaluated, so not refused: enabling it later is checked then.
    off.write_text(json.dumps(with_changes(name="off", enabled=False, symbols=["PEPEUSDT"])))
    with pytest.raises(StrategyError) as caught:
        load_strategy_set(tmp_path, ["BTCUSDT", "ETHUSDT"])
    assert caught.value.problems == (
        f"{a}: $.symbols[1]: DOGEUSDT is not collected: add it to [collect] symbols "
        "(ARB_COLLECT_SYMBOLS) or remove it from this strategy",
    )
    assert str(caught.value).startswith("1 problem in strategies: ")

    stopped = Collected.of(["BTCUSDT", "ETHUSDT", "DOGEUSDT"], {"ETHUSDT": "not listed"})
    with pytest.raises(StrategyError) as caught:
        load_strategy_set(tmp_path, stopped)
    why = "is not collected: the exchange stopped it (not listed); remove it from this strategy"
    assert caught.value.problems == (
        f"{a}: $.symbols[2]: ETHUSDT {why}",
        f"{b}: $.symbols[0]: ETHUSDT {why}",
    )

    loaded = load_strategy_set(tmp_path, ["BTCUSDT", "ETHUSDT", "DOGEUSDT"])
    assert loaded.names == ("m", "b", "off")
    assert len(load_strategy_set(tmp_path)) == 3  # no symbols given: not checked (backtests)


def test_symbol_problems_are_listed_with_the_other_files_problems(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps(with_changes(factors__0__weight=0)))
    (tmp_path / "b.json").write_text(json.dumps(with_changes(name="b", symbols=["XYZUSDT"])))
    with pytest.raises(StrategyError) as caught:
        load_strategy_set(tmp_path, ["BTCUSDT"])
    assert [p.split(": ")[1] for p in caught.value.problems] == [
        "$.factors[0].weight",
        "$.symbols[0]",
    ]


# ---- defaults and hashing ---------------------------------------------------------------------


def test_hash_is_sha256_of_the_canonical_json_with_defaults() -> None:
    s = parse_strategy(MINIMAL)
    assert s.canonical_json == MINIMAL_CANONICAL
    assert s.hash == hashlib.sha256(MINIMAL_CANONICAL.encode("utf-8")).hexdigest()


def test_spelling_out_defaults_does_not_change_the_hash() -> None:
    explicit = json.loads(MINIMAL_CANONICAL)
    assert parse_strategy(explicit).hash == parse_strategy(MINIMAL).hash
    reordered = dict(reversed(list(MINIMAL.items())))
    assert parse_strategy(reordered).hash == parse_strategy(MINIMAL).hash


def test_any_change_changes_the_hash() -> None:
    base = parse_strategy(MINIMAL).hash
    assert parse_strategy(with_changes(entry__threshold=51)).hash != base
    assert parse_strategy(with_changes(enabled=False)).hash != base
    # durations are hashed as written: "30m" and "1800s" are different texts
    assert parse_strategy(with_changes(windows={"fast": "1800s"})).hash != base


def test_typed_strategy_has_defaults_applied() -> None:
    s = parse_strategy(MINIMAL, source="m.json")
    assert s.enabled is True
    assert s.tick_ms == 15_000
    assert s.max_staleness_ms == 300_000
    assert s.direction.confirm == ()
    assert s.factors[0].unsigned is False
    assert s.factors[0].contrarian is False
    assert s.gates == ()
    assert (s.entry.min_coverage, s.entry.cooldown_ms, s.entry.max_open_per_symbol) == (0, 0, None)
    assert (s.exit.tp1_atr, s.exit.tp2_atr, s.exit.max_hold_ms) == (None, None, None)
    assert s.exit.breakeven_after_tp1 is False
    assert (s.costs.fee_bps, s.costs.slippage_bps) == (0, 0)
    assert (s.paper.enabled, s.paper.risk_usd) == (True, 100)
    assert s.feature_spec.day_ms == 86_400_000
    assert s.document()["windows"] == {"day": "24h", "fast": "30m", "mid": "4h"}
    assert s.source == "m.json"


# ---- the published schema ---------------------------------------------------------------------


def test_schema_is_valid_draft_2020_12_and_accepts_the_shipped_files() -> None:
    schema = strategy_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for path in sorted((REPO / "strategies").glob("*.json")):
        assert list(validator.iter_errors(json.loads(path.read_text()))) == []
    assert strategy_schema() == schema  # a fresh copy every call


@pytest.mark.parametrize(
    "doc",
    [
        MINIMAL,
        with_changes(bogus=1),
        with_changes(factors__0__weight=0),
        with_changes(factors__0__weight="1"),
        with_changes(symbols=[]),
        with_changes(symbols=["btc"]),
        with_changes(direction__feature="flow"),
        with_changes(gates={"foo": [1, 2]}),
        with_changes(gates={"atr": [1, 2, 3]}),
        with_changes(gates={"atr": [None, None]}),
        with_changes(tick="15 s"),
        with_changes(entry__max_open_per_symbol=None),
        with_changes(entry=DELETE),
        with_changes(exit__max_hold=None),
        with_changes(paper={"risk_usd": 0}),
        with_changes(costs={"fee_bps": -1}),
    ],
)
def test_schema_and_validator_agree_on_structure(doc: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(strategy_schema())
    schema_ok = not list(validator.iter_errors(doc))
    assert schema_ok == (errors_of(doc) == [])


def test_inputs_name_what_the_live_engine_waits_for_from_what_the_strategy_reads() -> None:
    trades_only = parse_strategy(with_changes(paper={"enabled": False}))
    assert trades_only.inputs == {"tape"}
    reading = parse_strategy(
        with_changes(
            factors=[
                {"feature": "ls_top", "weight": 1, "full": 0.1},
                {"feature": "funding_annualised", "weight": 1, "full": 0.1},
                {"feature": "coinbase_premium_bps", "weight": 1, "full": 5},
            ],
            gates={"oi_change_1h": [0, None], "taker_ratio": [None, 1]},
        )
    )
    assert reading.inputs == {
        "tape",
        "funding_rate",  # paper trading charges funding from its history
        "ls_top_position",
        "premium_index",
        "funding_interval_hours",
        "coinbase_price",
        "open_interest",
        "taker_ratio",
    }


def _struct_of(annotation: Any) -> type[msgspec.Struct] | None:
    """The struct a field holds, itself or as the items of a tuple."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, msgspec.Struct):
            return candidate
    return None


def _assert_same_shape(shape: type[msgspec.Struct], schema: dict[str, Any], where: str) -> None:
    fields = {f.encode_name: f for f in msgspec.structs.fields(shape)}
    properties = schema["properties"]
    assert list(fields) == list(properties), where
    required = {name for name, f in fields.items() if f.required}
    assert required == set(schema.get("required", [])), where
    hints = typing.get_type_hints(shape)
    for name, f in fields.items():
        sub = properties[name]
        if not f.required:
            default = f.default_factory() if f.default is msgspec.NODEFAULT else f.default
            plain = msgspec.to_builtins(default, enc_hook=encode_hook)
            stated = sub["default"]
            if isinstance(plain, dict) and "properties" in sub:  # a section: its own defaults
                stated = {k: s["default"] for k, s in sub["properties"].items()}
            assert plain == stated or list(plain) == stated, f"{where}.{name}"
        nested = _struct_of(hints[f.name])
        if nested is not None:
            _assert_same_shape(nested, sub.get("items", sub), f"{where}.{name}")


def test_the_published_schema_states_the_structs_keys_requirements_and_defaults() -> None:
    """The schema (what users write against) and the structs (what the engine reads) are one
    shape: same keys in the same order, same required keys, same defaults."""
    _assert_same_shape(StrategyFile, strategy_schema(), "$")


def test_one_message_per_mistake_in_the_order_of_the_file() -> None:
    """A wrong type is not also an unknown feature; an unknown gate's bounds are not checked;
    1.0 is not an integer; a key that is not an identifier is quoted in the path."""
    doc = with_changes(
        direction__feature=5,
        atr_percentile_min_values=144.0,
        gates={"a b": [1, 2, 3], "atr": [1, 2, 3], "vwap_dev_fast": 5},
        symbols=["BTCUSDT", "x", "BTCUSDT"],
    )
    assert errors_of(doc) == [
        '$.symbols[1]: must match ^[A-Z0-9]{2,32}$, got "x"',
        '$.symbols[2]: duplicate item "BTCUSDT"',
        "$.direction.feature: must be a string",
        "$.atr_percentile_min_values: must be an integer",
        '$.gates["a b"]: unknown feature "a b"',
        "$.gates.atr: must have at most 2 items",
        "$.gates.vwap_dev_fast: must be an array",
    ]


def test_a_strategy_is_a_value_equal_to_its_reload() -> None:
    first, again = parse_strategy(MINIMAL, "m.json"), parse_strategy(MINIMAL, "m.json")
    assert first.tick_ms == 15_000  # derived values are cached on one of them only
    assert first == again
    assert {first: "kept"}[again] == "kept"
    assert first != parse_strategy(with_changes(entry__threshold=51), "m.json")
