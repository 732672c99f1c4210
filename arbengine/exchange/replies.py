"""The REST replies the daemon reads, as typed structs: the exchange's keys, decoded once.

``BinanceRest.request(..., reply=PremiumIndex)`` decodes the body into the
type asked for and nothing else: no caller sees a dictionary. Only the keys
we read are declared; the others are ignored (Binance adds fields without
notice). A missing or mistyped key we read makes the reply invalid
(``InvalidResponse``, retryable, naming the path and the key), never a
``KeyError`` deep inside a poller. Numbers sent as strings decode straight
into floats (see :mod:`arbengine.exchange.payloads`).

Binance's own spelling is kept (``markPrice``, ``fundingTime``): these types
are the wire, read at the edge and turned into the domain's types there.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from arbengine.exchange.exchange_errors import InvalidResponse
from arbengine.exchange.payloads import AggTradeWire, OptionalNumber

T = TypeVar("T")
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(rb"<[^>]*>")


class ServerTime(msgspec.Struct, frozen=True):
    """``GET /fapi/v1/time``."""

    serverTime: int


class RateLimit(msgspec.Struct, frozen=True):
    rateLimitType: str
    interval: str
    limit: int
    intervalNum: int = 1


class SymbolFilter(msgspec.Struct, frozen=True):
    """One of an ``exchangeInfo`` symbol's ``filters``: the keys of the kinds the live
    executor reads (``PRICE_FILTER``, ``LOT_SIZE``, ``MARKET_LOT_SIZE``, ``MIN_NOTIONAL``;
    the futures key of the last is ``notional``); other kinds decode with all of them None.

    Prices and quantities are ``Decimal``: order rounding must be exact.
    """

    filterType: str
    tickSize: Decimal | None = None
    minPrice: Decimal | None = None
    maxPrice: Decimal | None = None
    stepSize: Decimal | None = None
    minQty: Decimal | None = None
    maxQty: Decimal | None = None
    notional: Decimal | None = None


class SymbolInfo(msgspec.Struct, frozen=True):
    """One ``exchangeInfo`` symbol; Binance may leave out keys that hold their usual value."""

    symbol: str
    status: str = "TRADING"
    contractType: str = "PERPETUAL"
    filters: list[SymbolFilter] = []


class ExchangeInfo(msgspec.Struct, frozen=True):
    """``GET /fapi/v1/exchangeInfo``: the rate limits and the listed symbols."""

    rateLimits: list[RateLimit] = []
    symbols: list[SymbolInfo] = []


class PremiumIndex(msgspec.Struct, frozen=True):
    """``GET /fapi/v1/premiumIndex``: one (with ``symbol``) or a list of them (without).

    The list holds delivery contracts too, whose funding keys are empty (``""``, next
    funding 0): a reply for every symbol must decode whatever symbols it lists.
    """

    symbol: str
    markPrice: float
    indexPrice: float
    time: int
    lastFundingRate: OptionalNumber = None
    estimatedSettlePrice: OptionalNumber = None
    interestRate: OptionalNumber = None
    nextFundingTime: int = 0


class OpenInterest(msgspec.Struct, frozen=True):
    """``GET /fapi/v1/openInterest``."""

    openInterest: float
    time: int


class FundingRate(msgspec.Struct, frozen=True):
    """A row of ``GET /fapi/v1/fundingRate`` (old rows may have an empty ``markPrice``)."""

    fundingRate: float
    fundingTime: int
    markPrice: OptionalNumber = None


class FundingInfo(msgspec.Struct, frozen=True):
    """A row of ``GET /fapi/v1/fundingInfo``: symbols whose funding interval is not 8 h."""

    symbol: str
    fundingIntervalHours: int


class OpenInterestHist(msgspec.Struct, frozen=True):
    """A row of ``GET /futures/data/openInterestHist``."""

    timestamp: int
    sumOpenInterest: float
    sumOpenInterestValue: OptionalNumber = None


class LongShortRatio(msgspec.Struct, frozen=True):
    """A row of the three ``/futures/data/*LongShort*Ratio`` series (accounts or positions)."""

    timestamp: int
    longShortRatio: float
    longAccount: OptionalNumber = None
    shortAccount: OptionalNumber = None


class TakerVolume(msgspec.Struct, frozen=True):
    """A row of ``GET /futures/data/takerlongshortRatio``."""

    timestamp: int
    buySellRatio: float
    buyVol: OptionalNumber = None
    sellVol: OptionalNumber = None


AggTrades = list[AggTradeWire]
"""``GET /fapi/v1/aggTrades``: the same rows as the stream's aggTrade payloads."""


class AccountBalance(msgspec.Struct, frozen=True):
    """A row of ``GET /fapi/v3/balance`` (signed)."""

    asset: str
    balance: float
    availableBalance: float
    crossWalletBalance: float = 0.0
    updateTime: int = 0


class OrderReply(msgspec.Struct, frozen=True):
    """``POST``/``GET``/``DELETE /fapi/v1/order`` (signed): the order as the exchange has it."""

    orderId: int
    symbol: str
    status: str
    clientOrderId: str
    side: str
    type: str
    origQty: float
    executedQty: float
    avgPrice: float = 0.0
    updateTime: int = 0
    reduceOnly: bool = False
    closePosition: bool = False


class LeverageBracket(msgspec.Struct, frozen=True):
    """One bracket of ``GET /fapi/v1/leverageBracket`` (signed): up to ``notionalCap`` of
    position notional, at most ``initialLeverage``."""

    bracket: int
    initialLeverage: int
    notionalCap: Decimal
    notionalFloor: Decimal = Decimal(0)
    maintMarginRatio: float = 0.0
    cum: float = 0.0


class SymbolLeverageBrackets(msgspec.Struct, frozen=True):
    """``GET /fapi/v1/leverageBracket``: one symbol's brackets (the reply is a list of
    these without ``symbol``, and one of them, or a one-element list, with it)."""

    symbol: str
    brackets: list[LeverageBracket]


class PositionRisk(msgspec.Struct, frozen=True):
    """A row of ``GET /fapi/v3/positionRisk`` (signed): ``positionAmt`` is signed (short < 0)."""

    symbol: str
    positionAmt: Decimal
    entryPrice: Decimal
    positionSide: str = "BOTH"
    markPrice: float = 0.0
    unRealizedProfit: float = 0.0
    liquidationPrice: float = 0.0
    notional: float = 0.0
    updateTime: int = 0


class AlgoOrderReply(msgspec.Struct, frozen=True):
    """``POST``/``GET /fapi/v1/algoOrder`` and the rows of ``GET /fapi/v1/openAlgoOrders``
    (signed): a conditional order as the exchange has it (``algoStatus`` NEW, TRIGGERING,
    TRIGGERED, FINISHED, CANCELED, EXPIRED, REJECTED)."""

    algoId: int
    clientAlgoId: str
    symbol: str
    side: str
    orderType: str
    algoStatus: str
    triggerPrice: Decimal
    quantity: Decimal = Decimal(0)
    closePosition: bool = False
    reduceOnly: bool = False
    workingType: str = "CONTRACT_PRICE"
    actualOrderId: str = ""
    updateTime: int = 0


class AlgoCancelReply(msgspec.Struct, frozen=True):
    """``DELETE /fapi/v1/algoOrder`` (signed): ``{"algoId", "clientAlgoId", "code": "200",
    "msg": "success"}``, not the order itself."""

    algoId: int
    clientAlgoId: str


class UserTrade(msgspec.Struct, frozen=True):
    """A row of ``GET /fapi/v1/userTrades`` (signed): one fill of one of our orders."""

    id: int
    orderId: int
    symbol: str
    side: str
    price: float
    qty: float
    commission: float
    commissionAsset: str = "USDT"
    realizedPnl: float = 0.0
    time: int = 0


class ListenKeyReply(msgspec.Struct, frozen=True):
    """``POST``/``PUT /fapi/v1/listenKey`` (API key, unsigned): the user stream's key
    (a keep-alive may answer ``{}``)."""

    listenKey: str = ""


class ErrorReply(msgspec.Struct, frozen=True):
    """The body of a refused call: ``{"code": -1121, "msg": "Invalid symbol."}``."""

    code: int
    msg: str = ""


class SpotTicker(msgspec.Struct, frozen=True):
    """Coinbase ``GET /products/<product>/ticker``; ``time`` is the last spot trade's (ISO)."""

    price: float
    time: str
    bid: OptionalNumber = None
    ask: OptionalNumber = None


_DECODERS: dict[object, msgspec.json.Decoder[Any]] = {}
"""One decoder per reply type, built on first use (building one costs more than a decode)."""


def _decoder(reply: type[T]) -> msgspec.json.Decoder[T]:
    decoder = _DECODERS.get(reply)
    if decoder is None:
        decoder = _DECODERS[reply] = msgspec.json.Decoder(reply, strict=False)
    return decoder


def decode_reply(body: bytes, reply: type[T], where: str) -> T:
    """``body`` as a ``reply``; ``InvalidResponse`` naming ``where`` and the key otherwise.

    Not JSON at all (a proxy's page, a truncated body) says what came instead; JSON of
    another shape says where it differs, as msgspec's path (``$[0].p``).
    """
    decoder: msgspec.json.Decoder[T] = _decoder(reply)
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidResponse(f"{where}: unexpected reply: {exc}") from None
    except msgspec.DecodeError:
        raise InvalidResponse(f"{where}: reply is not JSON: {summarize_body(body)}") from None


def summarize_body(body: bytes, limit: int = 160) -> str:
    """One line about a body that is not the JSON we expect (a WAF or proxy HTML page)."""
    if body.lstrip()[:1] == b"<":
        title = _TITLE.search(body)
        text = title.group(1) if title else _TAGS.sub(b" ", body)
        summary = " ".join(text.decode(errors="replace").split())
        return f"HTML page {summary[:limit]!r}" if summary else "an HTML page"
    summary = " ".join(body.decode(errors="replace").split())
    return repr(summary[:limit]) if summary else "an empty body"


class IncomeRow(msgspec.Struct, frozen=True):
    """A row of ``GET /fapi/v1/income`` (signed): one change of the wallet (``incomeType``
    FUNDING_FEE, COMMISSION, REALIZED_PNL, …), ``income`` in ``asset``, negative when paid."""

    symbol: str
    incomeType: str
    income: float
    asset: str = "USDT"
    time: int = 0
    tranId: int = 0
