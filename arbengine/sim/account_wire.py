"""Wire formatting: the account's records as Binance's REST replies and user-data events.

Field names, their order and the number formats are Binance's (decimal strings with the
symbol's precisions, 8 decimals for money): a client sees the same JSON as from the
exchange. Nothing here changes state.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from arbengine.sim.account_records import AlgoOrder, Income, Order, SimFill
from arbengine.sim.leverage_brackets import max_notional
from arbengine.sim.margin import ZERO, Marked, Position, Totals, q8
from arbengine.sim.symbols import SymbolSpec, fmt_decimal, fmt_units

ALL_DONE = {"code": 200, "msg": "The operation of cancel all open order is done."}


def plain(value: Decimal) -> str:
    """Shortest exact decimal string, never exponent notation (``61000.10`` → ``61000.1``)."""
    if value == 0:
        return "0"
    text = f"{value.normalize():f}"
    return text


# ---- REST replies --------------------------------------------------------------------------


def order_reply(o: Order, spec: SymbolSpec, *, result: bool, query: bool = False) -> dict[str, Any]:
    filled = result and o.status == "FILLED"
    reply: dict[str, Any] = {
        "orderId": o.order_id,
        "symbol": o.symbol,
        "status": o.status if result else "NEW",
        "clientOrderId": o.client_id,
        "price": fmt_units(0, spec.price_precision),
        "avgPrice": fmt_decimal(o.avg_price if filled else ZERO, spec.price_precision),
        "origQty": fmt_decimal(o.qty, spec.qty_precision),
        "executedQty": fmt_decimal(o.executed if filled else ZERO, spec.qty_precision),
        "cumQuote": fmt_decimal(o.cum_quote if filled else ZERO, 8),
        "timeInForce": "GTC",
        "type": "MARKET",
        "reduceOnly": o.reduce_only,
        "closePosition": o.close_position,
        "side": o.side,
        "positionSide": "BOTH",
        "stopPrice": fmt_decimal(o.stop_price, spec.price_precision),
        "workingType": o.working_type,
        "priceProtect": o.price_protect,
        "origType": o.orig_type,
        "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "goodTillDate": 0,
        "updateTime": o.update_time,
    }
    if not query:
        reply["cumQty"] = reply["executedQty"]
    else:
        reply["time"] = o.time
    return reply


def algo_reply(a: AlgoOrder, spec: SymbolSpec) -> dict[str, Any]:
    return {
        "algoId": a.algo_id,
        "clientAlgoId": a.client_algo_id,
        "algoType": "CONDITIONAL",
        "orderType": a.order_type,
        "symbol": a.symbol,
        "side": a.side,
        "positionSide": "BOTH",
        "timeInForce": "GTE_GTC" if a.close_position else "GTC",
        "quantity": fmt_decimal(a.qty or ZERO, spec.qty_precision),
        "algoStatus": a.status,
        "actualOrderId": "" if a.actual_order_id is None else str(a.actual_order_id),
        "actualPrice": fmt_decimal(a.avg_price, spec.price_precision) if a.executed else "0",
        "triggerPrice": fmt_decimal(a.trigger, spec.price_precision),
        "price": fmt_units(0, spec.price_precision),
        "icebergQuantity": None,
        "selfTradePreventionMode": "EXPIRE_MAKER",
        "workingType": a.working_type,
        "priceMatch": "NONE",
        "closePosition": a.close_position,
        "priceProtect": a.price_protect,
        "reduceOnly": a.reduce_only,
        "activatePrice": "",
        "callbackRate": "",
        "createTime": a.create_time,
        "updateTime": a.update_time,
        "triggerTime": a.trigger_time,
        "goodTillDate": 0,
    }


def algo_canceled(a: AlgoOrder) -> dict[str, Any]:
    return {"algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "code": "200", "msg": "success"}


def leverage_reply(leverage: int, symbol: str) -> dict[str, Any]:
    return {"leverage": leverage, "maxNotionalValue": max_notional(leverage), "symbol": symbol}


def position_row_v3(
    m: Marked, spec: SymbolSpec, break_even: Decimal, liquidation: Decimal
) -> dict[str, Any]:
    pos = m.position
    im = m.initial_margin
    return {
        "symbol": pos.symbol,
        "positionSide": "BOTH",
        "positionAmt": fmt_decimal(pos.amt, spec.qty_precision),
        "entryPrice": plain(q8(pos.entry)),
        "breakEvenPrice": plain(break_even),
        "markPrice": fmt_decimal(m.mark),
        "unRealizedProfit": fmt_decimal(m.upnl),
        "liquidationPrice": plain(liquidation),
        "isolatedMargin": "0",
        "notional": fmt_decimal(q8(pos.amt * m.mark)),
        "marginAsset": "USDT",
        "isolatedWallet": "0",
        "initialMargin": fmt_decimal(im),
        "maintMargin": fmt_decimal(m.maint_margin),
        "positionInitialMargin": fmt_decimal(im),
        "openOrderInitialMargin": "0",
        "adl": 2 if pos.amt else 0,
        "bidNotional": "0",
        "askNotional": "0",
        "updateTime": pos.update_time,
    }


def position_row_v2(pos: Position, v3: dict[str, Any]) -> dict[str, Any]:
    """The v2 row: the v3 row's values in the older shape (leverage, margin type)."""
    return {
        "symbol": pos.symbol,
        "positionAmt": v3["positionAmt"],
        "entryPrice": v3["entryPrice"],
        "breakEvenPrice": v3["breakEvenPrice"],
        "markPrice": v3["markPrice"],
        "unRealizedProfit": v3["unRealizedProfit"],
        "liquidationPrice": v3["liquidationPrice"],
        "leverage": str(pos.leverage),
        "maxNotionalValue": max_notional(pos.leverage),
        "marginType": "cross",
        "isolatedMargin": "0.00000000",
        "isAutoAddMargin": "false",
        "positionSide": "BOTH",
        "notional": v3["notional"],
        "isolatedWallet": "0",
        "updateTime": pos.update_time,
    }


def balance_rows(t: Totals, update_time: int) -> list[dict[str, Any]]:
    return [
        {
            "accountAlias": "SgsR",
            "asset": "USDT",
            "balance": fmt_decimal(t.wallet),
            "crossWalletBalance": fmt_decimal(t.wallet),
            "crossUnPnl": fmt_decimal(t.upnl),
            "availableBalance": fmt_decimal(t.available),
            "maxWithdrawAmount": fmt_decimal(t.available),
            "marginAvailable": True,
            "updateTime": update_time,
        }
    ]


def account_position(m: Marked, spec: SymbolSpec) -> dict[str, Any]:
    pos = m.position
    return {
        "symbol": pos.symbol,
        "positionSide": "BOTH",
        "positionAmt": fmt_decimal(pos.amt, spec.qty_precision),
        "entryPrice": plain(q8(pos.entry)),
        "unrealizedProfit": fmt_decimal(m.upnl),
        "isolatedMargin": "0",
        "notional": fmt_decimal(q8(pos.amt * m.mark)),
        "isolatedWallet": "0",
        "initialMargin": fmt_decimal(m.initial_margin),
        "maintMargin": fmt_decimal(m.maint_margin),
        "leverage": str(pos.leverage),
        "updateTime": pos.update_time,
    }


def account_info(t: Totals, update_time: int, positions: list[dict[str, Any]]) -> dict[str, Any]:
    asset = {
        "asset": "USDT",
        "walletBalance": fmt_decimal(t.wallet),
        "unrealizedProfit": fmt_decimal(t.upnl),
        "marginBalance": fmt_decimal(t.margin_balance),
        "maintMargin": fmt_decimal(t.mm),
        "initialMargin": fmt_decimal(t.im),
        "positionInitialMargin": fmt_decimal(t.im),
        "openOrderInitialMargin": "0.00000000",
        "crossWalletBalance": fmt_decimal(t.wallet),
        "crossUnPnl": fmt_decimal(t.upnl),
        "availableBalance": fmt_decimal(t.available),
        "maxWithdrawAmount": fmt_decimal(t.available),
        "updateTime": update_time,
    }
    return {
        "totalInitialMargin": fmt_decimal(t.im),
        "totalMaintMargin": fmt_decimal(t.mm),
        "totalWalletBalance": fmt_decimal(t.wallet),
        "totalUnrealizedProfit": fmt_decimal(t.upnl),
        "totalMarginBalance": fmt_decimal(t.margin_balance),
        "totalPositionInitialMargin": fmt_decimal(t.im),
        "totalOpenOrderInitialMargin": "0.00000000",
        "totalCrossWalletBalance": fmt_decimal(t.wallet),
        "totalCrossUnPnl": fmt_decimal(t.upnl),
        "availableBalance": fmt_decimal(t.available),
        "maxWithdrawAmount": fmt_decimal(t.available),
        "assets": [asset],
        "positions": positions,
    }


def user_trade(f: SimFill, spec: SymbolSpec) -> dict[str, Any]:
    return {
        "buyer": f.side == "BUY",
        "commission": fmt_decimal(f.commission),
        "commissionAsset": "USDT",
        "id": f.trade_id,
        "maker": False,
        "marginAsset": "USDT",
        "orderId": f.order_id,
        "price": fmt_decimal(f.price, spec.price_precision),
        "qty": fmt_decimal(f.qty, spec.qty_precision),
        "quoteQty": fmt_decimal(q8(f.price * f.qty)),
        "realizedPnl": fmt_decimal(f.realized),
        "side": f.side,
        "positionSide": "BOTH",
        "symbol": f.symbol,
        "time": f.time,
    }


def income_row(i: Income) -> dict[str, Any]:
    return {
        "symbol": i.symbol,
        "incomeType": i.kind,
        "income": fmt_decimal(i.amount),
        "asset": "USDT",
        "info": i.info,
        "time": i.time,
        "tranId": i.tran_id,
        "tradeId": i.trade_id,
    }


def commission_rate(symbol: str, maker_fee: Decimal, taker_fee: Decimal) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "makerCommissionRate": plain(maker_fee),
        "takerCommissionRate": plain(taker_fee),
    }


# ---- user data stream events ---------------------------------------------------------------


def order_event(
    o: Order, spec: SymbolSpec, exec_type: str, status: str, fill: SimFill | None
) -> dict[str, Any]:
    now = o.update_time
    qp, pp = spec.qty_precision, spec.price_precision
    body: dict[str, Any] = {
        "s": o.symbol,
        "c": o.client_id,
        "S": o.side,
        "o": "MARKET",
        "f": "GTC",
        "q": fmt_decimal(o.qty, qp),
        "p": fmt_units(0, pp),
        "ap": fmt_decimal(o.avg_price, pp) if fill else "0",
        "sp": fmt_decimal(o.stop_price, pp),
        "x": exec_type,
        "X": status,
        "i": o.order_id,
        "l": fmt_decimal(fill.qty if fill else ZERO, qp),
        "z": fmt_decimal(o.executed if fill else ZERO, qp),
        "L": fmt_decimal(fill.price, pp) if fill else "0",
        "n": fmt_decimal(fill.commission if fill else ZERO),
        "T": now,
        "t": fill.trade_id if fill else 0,
        "b": "0",
        "a": "0",
        "m": False,
        "R": o.reduce_only,
        "wt": o.working_type,
        "ot": o.orig_type,
        "ps": "BOTH",
        "cp": o.close_position,
        "rp": fmt_decimal(fill.realized if fill else ZERO),
        "pP": o.price_protect,
        "si": 0,
        "ss": 0,
        "V": "EXPIRE_MAKER",
        "pm": "NONE",
        "gtd": 0,
    }
    if fill:
        body["N"] = "USDT"
    return {"e": "ORDER_TRADE_UPDATE", "E": now, "T": now, "o": body}


def position_update(
    pos: Position, spec: SymbolSpec, break_even: Decimal, upnl: Decimal
) -> dict[str, Any]:
    """One entry of an ``ACCOUNT_UPDATE``'s positions."""
    return {
        "s": pos.symbol,
        "pa": fmt_decimal(pos.amt, spec.qty_precision),
        "ep": plain(q8(pos.entry)),
        "bep": plain(break_even),
        "cr": fmt_decimal(pos.cum_realized),
        "up": fmt_decimal(upnl),
        "mt": "cross",
        "iw": "0",
        "ps": "BOTH",
        "ma": "USDT",
    }


def account_event(
    now: int, reason: str, wallet: Decimal, change: str, positions: list[dict[str, Any]]
) -> dict[str, Any]:
    """``ACCOUNT_UPDATE``: ``change`` is the balance change (``bc``) as sent."""
    return {
        "e": "ACCOUNT_UPDATE",
        "E": now,
        "T": now,
        "a": {
            "m": reason,
            "B": [
                {
                    "a": "USDT",
                    "wb": fmt_decimal(wallet),
                    "cw": fmt_decimal(wallet),
                    "bc": change,
                }
            ],
            "P": positions,
        },
    }


def algo_event(a: AlgoOrder, spec: SymbolSpec, now: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "caid": a.client_algo_id,
        "aid": a.algo_id,
        "at": "CONDITIONAL",
        "o": a.order_type,
        "s": a.symbol,
        "S": a.side,
        "ps": "BOTH",
        "f": "GTE_GTC" if a.close_position else "GTC",
        "q": fmt_decimal(a.qty or ZERO, spec.qty_precision),
        "X": a.status,
        "ai": "" if a.actual_order_id is None else str(a.actual_order_id),
        "ap": fmt_decimal(a.avg_price, spec.price_precision) if a.executed else "0",
        "aq": fmt_decimal(a.executed, spec.qty_precision),
        "act": "MARKET" if a.actual_order_id is not None else "0",
        "tp": fmt_decimal(a.trigger, spec.price_precision),
        "p": "0",
        "V": "EXPIRE_MAKER",
        "wt": a.working_type,
        "pm": "NONE",
        "cp": a.close_position,
        "pP": a.price_protect,
        "R": a.reduce_only,
        "tt": a.trigger_time,
        "gtd": 0,
    }
    if a.reject_reason:
        body["rm"] = a.reject_reason
    return {"e": "ALGO_UPDATE", "T": now, "E": now, "o": body}
