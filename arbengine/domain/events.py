"""Typed events of the signal engine: a fired signal.

Market data travels as the types in :mod:`arbengine.domain.market` (trades
only as a columnar ``TradeBatch``); this module adds what the signal engine
produces. Frozen msgspec Structs so a consumer can neither mutate what another
consumer also holds nor decode a payload with a misspelt field.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class Signal(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A strategy fired at a tick: what the paper trader and the notifier act on.

    Carries everything needed to explain and to reproduce the decision: the
    strategy's content hash, the features it saw and each factor's
    contribution ``wᵢ·sᵢ`` (absent factors are left out).
    """

    tick_ms: int
    symbol: str
    strategy: str
    strategy_hash: str
    direction: Literal[1, -1]
    score: float
    coverage: float
    price: float
    atr: float
    features: dict[str, float]
    contributions: dict[str, float]
