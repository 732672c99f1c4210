"""Signal engine: features, strategies and scoring as synchronous cores.

See SIGNALS.md for the contract these modules implement.
"""

from arbengine.signals.features import (
    DEFAULT_SPEC,
    FEATURE_NAMES,
    Features,
    FeatureSpec,
    SymbolFeatures,
)
from arbengine.signals.scoring import (
    Evaluation,
    FactorResult,
    GateResult,
    NoFire,
    direction_of,
    evaluate_strategy,
    factor_score,
)
from arbengine.signals.series import InputSeries
from arbengine.signals.signal_core import (
    DEFAULT_GRACE_MS,
    OpenPositions,
    SignalCore,
    due_ticks,
    tick_at_or_after,
)
from arbengine.signals.strategy import (
    Collected,
    Strategy,
    StrategyError,
    StrategySet,
    canonical_json,
    check_files,
    content_hash,
    load_strategy_set,
    parse_strategy,
    uncollected_symbols,
    validate_document,
)
from arbengine.signals.strategy_rules import strategy_schema
from arbengine.signals.trade_window import AddResult, TickOrderError

__all__ = [
    "DEFAULT_GRACE_MS",
    "DEFAULT_SPEC",
    "FEATURE_NAMES",
    "AddResult",
    "Collected",
    "Evaluation",
    "FactorResult",
    "FeatureSpec",
    "Features",
    "GateResult",
    "InputSeries",
    "NoFire",
    "OpenPositions",
    "SignalCore",
    "Strategy",
    "StrategyError",
    "StrategySet",
    "SymbolFeatures",
    "TickOrderError",
    "canonical_json",
    "check_files",
    "content_hash",
    "direction_of",
    "due_ticks",
    "evaluate_strategy",
    "factor_score",
    "load_strategy_set",
    "parse_strategy",
    "strategy_schema",
    "tick_at_or_after",
    "uncollected_symbols",
    "validate_document",
]
