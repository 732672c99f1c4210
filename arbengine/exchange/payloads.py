"""Market stream payloads as typed structs, decoded straight from the frame bytes.

Decoding into msgspec structs is about twice as fast as ``orjson.loads`` plus
dictionary look-ups, which matters at tens of thousands of frames a second.
Unknown keys are ignored (Binance adds fields without notice); a missing or
mistyped known key is a malformed frame.

Numbers: Binance sends decimals as JSON strings (``"p":"58940.14"``). Every
decoder of the exchange edge runs in msgspec's lax mode (``strict=False``), in
which a numeric string decodes into a ``float`` (or ``int``) field, converted
in C, with the same bits as ``float(text)``: the number is parsed once, where
the bytes arrive. A number Binance may send as an empty string (an estimated
settle price, a delivery contract's funding rate) is an ``OptionalNumber``,
read with :func:`number_or_none`.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

OptionalNumber: TypeAlias = float | Literal[""] | None
"""A decimal that Binance may leave out or send as ``""`` (both mean: none)."""


def number_or_none(value: OptionalNumber) -> float | None:
    return None if value == "" else value


class AggTradeWire(msgspec.Struct, tag_field="e", tag="aggTrade", frozen=True):
    """One aggTrade as Binance sends it: a stream frame's payload or a ``/fapi/v1/aggTrades`` row.

    Both carry the same keys (``a p q f l T m``); the stream adds the event type
    ``e``, the symbol ``s`` and the event time ``E``, which a REST row lacks (a
    row's symbol is the one asked for). The collectors turn these into a
    ``TradeBatch`` at once: no single-trade object travels further.
    """

    a: int
    p: float
    q: float
    f: int
    l: int  # noqa: E741 - Binance's key
    T: int
    m: bool
    s: str = ""
    E: int = 0


class MarkPriceEvent(msgspec.Struct, tag_field="e", tag="markPriceUpdate", frozen=True):
    s: str
    E: int
    p: float
    i: float
    P: OptionalNumber = None
    r: OptionalNumber = None
    T: int = 0


class ForceOrder(msgspec.Struct, frozen=True):
    s: str
    S: str
    q: float
    p: float
    ap: float
    z: float
    T: int
    o: str = ""
    f: str = ""
    X: str = ""
    l: float = 0.0  # noqa: E741 - Binance's key


class ForceOrderEvent(msgspec.Struct, tag_field="e", tag="forceOrder", frozen=True):
    E: int
    o: ForceOrder


MarketPayload = AggTradeWire | MarkPriceEvent | ForceOrderEvent


class CombinedMessage(msgspec.Struct, frozen=True):
    stream: str
    data: MarketPayload


decode_combined = msgspec.json.Decoder(CombinedMessage, strict=False).decode
