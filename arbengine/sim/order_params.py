"""Order validation: request parameters read and checked as Binance does, in its words.

Each function refuses with the ``SimApiError`` (code and message) Binance answers for
that mistake; none looks at the account's state (positions, margin, open orders), which
the account checks after them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

from arbengine.sim.error_reply import SimApiError, mandatory
from arbengine.sim.symbols import NumberFormatError, PrecisionError, SymbolSpec, to_units

CLIENT_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
CLIENT_ID_RANGE = r"^[\.A-Z\:/a-z0-9_-]{1,36}$"
CONDITIONAL_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET")
ALGO_ONLY_TYPES = (
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
)
WORKING_TYPES = ("MARK_PRICE", "CONTRACT_PRICE")


def bool_param(params: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "false"):
        return raw.lower() == "true"
    raise SimApiError(-1130, f"Data sent for parameter '{name}' is not valid.")


def int_param(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise SimApiError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'.",
        )
    return int(raw)


def symbol_spec(specs: Mapping[str, SymbolSpec], params: Mapping[str, str]) -> SymbolSpec:
    symbol = params.get("symbol")
    if not symbol:
        raise mandatory("symbol")
    spec = specs.get(symbol)
    if spec is None:
        raise SimApiError(-1121, "Invalid symbol.")
    return spec


def quantity(spec: SymbolSpec, params: Mapping[str, str], *, market_lot: bool) -> Decimal:
    raw = params.get("quantity")
    if not raw:
        raise mandatory("quantity")
    try:
        units = to_units(raw, spec.qty_precision)
    except PrecisionError:
        raise SimApiError(-1111, "Precision is over the maximum defined for this asset.") from None
    except NumberFormatError:
        raise SimApiError(-1100, "Illegal characters found in parameter 'quantity'.") from None
    if units <= 0:
        raise SimApiError(-4003, "Quantity less than or equal to zero.")
    max_qty = spec.market_max_qty if market_lot else spec.max_qty
    if units > max_qty:
        raise SimApiError(-4005, "Quantity greater than max quantity.")
    if units < spec.min_qty or units % spec.step:
        kind = "MARKET_LOT_SIZE" if market_lot else "LOT_SIZE"
        raise SimApiError(-1013, f"Filter failure: {kind}")
    return Decimal(units).scaleb(-spec.qty_precision)


def trigger_units(spec: SymbolSpec, params: Mapping[str, str]) -> int:
    """``triggerPrice`` in price units, on the tick grid."""
    raw = params.get("triggerPrice")
    if not raw:
        raise mandatory("triggerPrice")
    try:
        units = to_units(raw, spec.price_precision)
    except PrecisionError:
        raise SimApiError(-1111, "Precision is over the maximum defined for this asset.") from None
    except NumberFormatError:
        raise SimApiError(-1100, "Illegal characters found in parameter 'triggerPrice'.") from None
    if units <= 0:
        raise SimApiError(-4006, "Stop price less than zero.")
    if units % spec.tick:
        raise SimApiError(-4014, "Price not increased by tick size.")
    return units


def client_id(params: Mapping[str, str], name: str) -> str | None:
    cid = params.get(name)
    if cid is None or cid == "":
        return None
    if not CLIENT_ID.match(cid):
        raise SimApiError(
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '{CLIENT_ID_RANGE}'.",
        )
    return cid


def check_position_side(params: Mapping[str, str]) -> None:
    """One-way mode: only ``BOTH`` (or nothing)."""
    ps = params.get("positionSide", "BOTH")
    if ps not in ("BOTH", ""):
        raise SimApiError(-4061, "Order's position side does not match user's setting.")


def side(params: Mapping[str, str]) -> str:
    value = params.get("side")
    if not value:
        raise mandatory("side")
    if value not in ("BUY", "SELL"):
        raise SimApiError(-1117, "Invalid side.")
    return value


def market_order_type(params: Mapping[str, str]) -> str:
    """``/fapi/v1/order`` takes ``MARKET`` only; conditional types belong to the algo API."""
    otype = params.get("type")
    if not otype:
        raise mandatory("type")
    if otype in ALGO_ONLY_TYPES:
        raise SimApiError(
            -4120,
            "Order type not supported for this endpoint. Please use the Algo Order API "
            "endpoints instead.",
        )
    if otype != "MARKET":
        raise SimApiError(-1116, "Invalid orderType.")
    return otype


def response_type(params: Mapping[str, str]) -> str:
    resp_type = params.get("newOrderRespType", "ACK") or "ACK"
    if resp_type not in ("ACK", "RESULT"):
        raise SimApiError(-1130, "Data sent for parameter 'newOrderRespType' is not valid.")
    return resp_type


def algo_type(params: Mapping[str, str]) -> str:
    value = params.get("algoType")
    if not value:
        raise mandatory("algoType")
    if value != "CONDITIONAL":
        raise SimApiError(-1130, "Data sent for parameter 'algoType' is not valid.")
    return value


def conditional_order_type(params: Mapping[str, str]) -> str:
    otype = params.get("type")
    if not otype:
        raise mandatory("type")
    if otype not in CONDITIONAL_TYPES:
        raise SimApiError(-1116, "Invalid orderType.")
    return otype


def working_type(params: Mapping[str, str]) -> str:
    working = params.get("workingType") or "CONTRACT_PRICE"
    if working not in WORKING_TYPES:
        raise SimApiError(-1130, "Data sent for parameter 'workingType' is not valid.")
    return working


def order_lookup(params: Mapping[str, str]) -> tuple[int | None, str]:
    """``(orderId, origClientOrderId)`` of a query or cancel: one of them must be sent."""
    oid = int_param(params, "orderId")
    cid = params.get("origClientOrderId")
    if oid is None and not cid:
        raise SimApiError(
            -1102,
            "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
        )
    return oid, cid or ""


def algo_lookup(params: Mapping[str, str]) -> tuple[int | None, str]:
    """``(algoId, clientAlgoId)`` of a query or cancel: one of them must be sent."""
    aid = int_param(params, "algoId")
    cid = params.get("clientAlgoId")
    if aid is None and not cid:
        raise SimApiError(
            -1102, "Param 'clientAlgoId' or 'algoId' must be sent, but both were empty/null!"
        )
    return aid, cid or ""


def leverage(params: Mapping[str, str]) -> int:
    lev = int_param(params, "leverage")
    if lev is None:
        raise mandatory("leverage")
    if not 1 <= lev <= 125:
        raise SimApiError(-4028, f"Leverage {lev} is not valid")
    return lev
