"""Typed events of the signal engine: one aggTrade, and a fired signal.

Market data travels as the types in :mod:`arbengine.domain.market`; this
module adds what the signal engine produces. Frozen msgspec Structs so a
consumer can neither mutate what another consumer also holds nor decode a
payload with a misspelt field.
"""

from __future__ import annotations

from typing import Literal

import msgspec


class AggTrade(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One Binance aggTrade (`a`, `p`, `q`, `T`, `m`), for callers that have a single trade."""

    symbol: str
    agg_id: int
    price: float
    qty: float
    time_ms: int
    is_buyer_maker: bool
    """True: the buyer was the maker, so the taker sold (signed volume −q)."""


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
