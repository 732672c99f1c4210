"""The account engine on worked examples: fees, realised PnL, entry prices, filters, algos."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from arbengine.sim.account import Account
from arbengine.sim.error_reply import SimApiError
from arbengine.sim.symbols import KNOWN_SPECS

D = Decimal
T0 = 1_700_000_000_000


class FakeMarket:
    """Quotes and marks set by the test (price units: BTC and ETH have two decimals)."""

    def __init__(self) -> None:
        self.t = T0
        self.quotes = {"BTCUSDT": (6_000_000, 6_000_010), "ETHUSDT": (299_999, 300_000)}
        self.marks = {"BTCUSDT": 60000.05, "ETHUSDT": 2999.995}

    def now_ms(self) -> int:
        return self.t

    def quote(self, symbol: str) -> tuple[int, int]:
        return self.quotes[symbol]

    def mark(self, symbol: str) -> float:
        return self.marks[symbol]

    def set(self, symbol: str, bid: str, ask: str, mark: str | None = None) -> None:
        self.quotes[symbol] = (int(D(bid) * 100), int(D(ask) * 100))
        self.marks[symbol] = float(mark) if mark is not None else (float(bid) + float(ask)) / 2
        self.t += 1_000


@pytest.fixture
def market() -> FakeMarket:
    return FakeMarket()


def make_account(market: FakeMarket, balance: str = "10000") -> Account:
    specs = {s: KNOWN_SPECS[s] for s in ("BTCUSDT", "ETHUSDT")}
    return Account(specs, market, balance=D(balance))


def order(acc: Account, symbol: str, side: str, qty: str, **extra: str) -> dict[str, Any]:
    params = {
        "symbol": symbol,
        "side": side,
        "type": "MARKET",
        "quantity": qty,
        "newOrderRespType": "RESULT",
        **extra,
    }
    return acc.place_order(params)


def error_code(fn: Any, *args: Any, **kwargs: Any) -> int:
    with pytest.raises(SimApiError) as err:
        fn(*args, **kwargs)
    return err.value.code


def kinds(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        if e["e"] == "ORDER_TRADE_UPDATE":
            out.append(f"ORDER:{e['o']['x']}")
        elif e["e"] == "ALGO_UPDATE":
            out.append(f"ALGO:{e['o']['X']}")
        else:
            out.append(e["e"])
    return out


def test_open_then_close_long_fees_and_realised_pnl(market: FakeMarket) -> None:
    acc = make_account(market)
    reply = order(acc, "BTCUSDT", "BUY", "0.010", newClientOrderId="open-1")
    # Bought at the ask 60000.10: commission 60000.10 × 0.010 × 0.0005 = 0.3000005.
    assert reply["status"] == "FILLED"
    assert reply["avgPrice"] == "60000.10"
    assert reply["executedQty"] == "0.010"
    assert reply["cumQuote"] == "600.00100000"
    assert reply["clientOrderId"] == "open-1"
    assert acc.wallet == D("9999.6999995")
    pos = acc.positions["BTCUSDT"]
    assert (pos.amt, pos.entry) == (D("0.010"), D("60000.10"))

    market.set("BTCUSDT", "61000.00", "61000.10", mark="61000")
    reply = order(acc, "BTCUSDT", "SELL", "0.010", reduceOnly="true")
    # Sold at the bid 61000.00: PnL (61000 − 60000.10) × 0.010 = 9.999; fee 0.305.
    assert acc.wallet == D("9999.6999995") + D("9.999") - D("0.305")
    assert acc.wallet == D("10009.3939995")
    assert pos.amt == 0
    assert reply["reduceOnly"] is True
    trades = acc.user_trades({"symbol": "BTCUSDT"})
    assert [t["realizedPnl"] for t in trades] == ["0.00000000", "9.99900000"]
    assert [t["commission"] for t in trades] == ["0.30000050", "0.30500000"]
    income = acc.income_history({"symbol": "BTCUSDT"})
    assert sorted((i["incomeType"], i["income"]) for i in income) == [
        ("COMMISSION", "-0.30000050"),
        ("COMMISSION", "-0.30500000"),
        ("REALIZED_PNL", "9.99900000"),
    ]


def test_weighted_entry_partial_close_and_flip(market: FakeMarket) -> None:
    acc = make_account(market)
    market.set("ETHUSDT", "2999.99", "3000.00")
    order(acc, "ETHUSDT", "BUY", "0.100")
    market.set("ETHUSDT", "3009.99", "3010.00")
    order(acc, "ETHUSDT", "BUY", "0.300")
    pos = acc.positions["ETHUSDT"]
    assert pos.entry == D("3007.5")  # (0.1 × 3000 + 0.3 × 3010) / 0.4
    market.set("ETHUSDT", "3020.00", "3020.01")
    order(acc, "ETHUSDT", "SELL", "0.100")
    assert pos.amt == D("0.300")
    assert pos.entry == D("3007.5")  # shrinking keeps the entry
    market.set("ETHUSDT", "3000.00", "3000.01")
    order(acc, "ETHUSDT", "SELL", "0.500")
    assert pos.amt == D("-0.200")
    assert pos.entry == D("3000.00")  # flipped: the remainder opened at the fill
    realized = [t["realizedPnl"] for t in acc.user_trades({"symbol": "ETHUSDT"})]
    assert realized == ["0.00000000", "0.00000000", "1.25000000", "-2.25000000"]
    fees = D("0.15") + D("0.4515") + D("0.151") + D("0.75")
    assert acc.wallet == D(10000) + D("1.25") - D("2.25") - fees
    assert acc.positions["ETHUSDT"].cum_realized == D("-1.00")


def test_reduce_only_is_capped_at_the_position_and_rejected_when_it_would_not_reduce(
    market: FakeMarket,
) -> None:
    acc = make_account(market)
    assert error_code(order, acc, "BTCUSDT", "SELL", "0.010", reduceOnly="true") == -2022
    order(acc, "BTCUSDT", "BUY", "0.010")
    assert error_code(order, acc, "BTCUSDT", "BUY", "0.010", reduceOnly="true") == -2022
    reply = order(acc, "BTCUSDT", "SELL", "0.050", reduceOnly="true")
    assert reply["executedQty"] == "0.010"
    assert acc.positions["BTCUSDT"].amt == 0


def test_filters_and_validation_codes(market: FakeMarket) -> None:
    acc = make_account(market)
    assert error_code(order, acc, "BTCUSDT", "BUY", "0.001") == -4164  # 60 USDT < 100
    assert error_code(order, acc, "BTCUSDT", "BUY", "0.0015") == -1111
    assert error_code(order, acc, "BTCUSDT", "BUY", "0") == -4003
    assert error_code(order, acc, "BTCUSDT", "BUY", "500") == -4005
    assert error_code(order, acc, "NOPEUSDT", "BUY", "1") == -1121
    assert error_code(order, acc, "BTCUSDT", "UP", "0.010") == -1117
    assert error_code(order, acc, "BTCUSDT", "BUY", "0.010", positionSide="LONG") == -4061
    assert error_code(order, acc, "BTCUSDT", "BUY", "0.010", newClientOrderId="bad id!") == -1100
    assert error_code(acc.place_order, {"symbol": "BTCUSDT", "side": "BUY"}) == -1102
    stop = {"symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET", "quantity": "0.010"}
    assert error_code(acc.place_order, stop) == -4120
    limit = {"symbol": "BTCUSDT", "side": "SELL", "type": "LIMIT", "quantity": "0.010"}
    assert error_code(acc.place_order, limit) == -1116
    order(acc, "BTCUSDT", "BUY", "0.010")
    order(acc, "BTCUSDT", "SELL", "0.001", reduceOnly="true")  # reduce-only is exempt
    assert acc.positions["BTCUSDT"].amt == D("0.009")


def test_repeated_client_order_id_is_rejected_and_queryable(market: FakeMarket) -> None:
    acc = make_account(market)
    first = order(acc, "BTCUSDT", "BUY", "0.010", newClientOrderId="x-1")
    assert error_code(order, acc, "BTCUSDT", "BUY", "0.010", newClientOrderId="x-1") == -4116
    assert acc.positions["BTCUSDT"].amt == D("0.010")
    found = acc.query_order({"symbol": "BTCUSDT", "origClientOrderId": "x-1"})
    assert found["orderId"] == first["orderId"]
    assert found["status"] == "FILLED"
    assert error_code(acc.query_order, {"symbol": "BTCUSDT", "origClientOrderId": "x-2"}) == -2013
    assert error_code(acc.cancel_order, {"symbol": "BTCUSDT", "origClientOrderId": "x-1"}) == -2011


def test_ack_reply_is_new_and_events_follow_binance_order(market: FakeMarket) -> None:
    acc = make_account(market)
    reply = acc.place_order(
        {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.010"}
    )
    assert reply["status"] == "NEW"
    assert reply["executedQty"] == "0.000"
    events = acc.drain()
    assert kinds(events) == ["ORDER:NEW", "ACCOUNT_UPDATE", "ORDER:TRADE"]
    trade = events[2]["o"]
    assert trade["X"] == "FILLED"
    assert (trade["l"], trade["L"], trade["n"], trade["N"], trade["rp"]) == (
        "0.010",
        "60000.10",
        "0.30000050",
        "USDT",
        "0.00000000",
    )
    update = events[1]["a"]
    assert update["m"] == "ORDER"
    assert update["B"] == [{"a": "USDT", "wb": "9999.69999950", "cw": "9999.69999950", "bc": "0"}]
    assert update["P"][0]["pa"] == "0.010"
    assert update["P"][0]["ep"] == "60000.1"


def test_insufficient_margin_is_2019(market: FakeMarket) -> None:
    acc = make_account(market, balance="100")
    assert error_code(order, acc, "BTCUSDT", "BUY", "0.040") == -2019  # 2400 / 20 = 120 > 100
    order(acc, "BTCUSDT", "BUY", "0.030")  # 1800 / 20 = 90 fits
    assert error_code(order, acc, "BTCUSDT", "BUY", "0.010") == -2019
    order(acc, "BTCUSDT", "SELL", "0.030", reduceOnly="true")  # reducing is always allowed


def algo(acc: Account, **params: str) -> dict[str, Any]:
    base = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "workingType": "MARK_PRICE"}
    return acc.place_algo({**base, **params})


def test_stop_and_take_profit_trigger_on_mark_price(market: FakeMarket) -> None:
    acc = make_account(market)
    order(acc, "BTCUSDT", "BUY", "0.010")
    assert (
        error_code(
            algo, acc, side="SELL", type="STOP_MARKET", triggerPrice="60500", closePosition="true"
        )
        == -2021
    )
    assert (
        error_code(
            algo,
            acc,
            side="SELL",
            type="STOP_MARKET",
            triggerPrice="59000.05",
            closePosition="true",
        )
        == -4014
    )
    assert (
        error_code(
            algo,
            acc,
            side="SELL",
            type="STOP_MARKET",
            triggerPrice="59000",
            closePosition="true",
            quantity="0.010",
        )
        == -1106
    )
    stop = algo(
        acc,
        side="SELL",
        type="STOP_MARKET",
        triggerPrice="59000.00",
        closePosition="true",
        clientAlgoId="sl-1",
    )
    assert stop["algoStatus"] == "NEW"
    assert stop["timeInForce"] == "GTE_GTC"
    assert stop["orderType"] == "STOP_MARKET"
    take = algo(
        acc,
        side="SELL",
        type="TAKE_PROFIT_MARKET",
        triggerPrice="61000",
        quantity="0.005",
        reduceOnly="true",
        clientAlgoId="tp-1",
    )
    assert len(acc.open_algos({"symbol": "BTCUSDT"})) == 2
    acc.drain()

    market.set("BTCUSDT", "61000.40", "61000.50", mark="61000.45")
    acc.on_price("BTCUSDT", "MARK_PRICE", D("61000.45"))
    events = acc.drain()
    assert kinds(events) == [
        "ALGO:TRIGGERING",
        "ALGO:TRIGGERED",
        "ORDER:NEW",
        "ACCOUNT_UPDATE",
        "ORDER:TRADE",
        "ALGO:FINISHED",
    ]
    assert events[-1]["o"]["aid"] == take["algoId"]
    assert events[-1]["o"]["aq"] == "0.005"
    assert events[4]["o"]["ot"] == "TAKE_PROFIT_MARKET"
    assert events[4]["o"]["rp"] == "5.00150000"  # (61000.40 − 60000.10) × 0.005
    assert acc.positions["BTCUSDT"].amt == D("0.005")

    market.set("BTCUSDT", "58990.00", "58990.10", mark="58990.05")
    acc.on_price("BTCUSDT", "MARK_PRICE", D("58990.05"))
    events = acc.drain()
    assert events[-1]["o"]["X"] == "FINISHED"
    assert events[-1]["o"]["caid"] == "sl-1"
    assert acc.positions["BTCUSDT"].amt == 0
    filled = acc.query_order({"symbol": "BTCUSDT", "origClientOrderId": "sl-1"})
    assert (filled["origType"], filled["closePosition"], filled["executedQty"]) == (
        "STOP_MARKET",
        True,
        "0.005",
    )
    assert acc.query_algo({"clientAlgoId": "sl-1"})["algoStatus"] == "FINISHED"
    assert acc.open_algos({}) == []


def test_close_position_stop_expires_when_the_position_is_closed(market: FakeMarket) -> None:
    acc = make_account(market)
    order(acc, "BTCUSDT", "BUY", "0.010")
    algo(acc, side="SELL", type="STOP_MARKET", triggerPrice="59000", closePosition="true")
    acc.drain()
    order(acc, "BTCUSDT", "SELL", "0.010", reduceOnly="true")
    assert "ALGO:EXPIRED" in kinds(acc.drain())
    assert acc.open_algos({}) == []


def test_cancel_algo_and_cancel_all(market: FakeMarket) -> None:
    acc = make_account(market)
    order(acc, "BTCUSDT", "BUY", "0.010")
    first = algo(acc, side="SELL", type="STOP_MARKET", triggerPrice="59000", quantity="0.010")
    algo(acc, side="SELL", type="STOP_MARKET", triggerPrice="58000", quantity="0.010")
    reply = acc.cancel_algo({"algoId": str(first["algoId"])})
    assert reply["code"] == "200"
    assert error_code(acc.cancel_algo, {"algoId": str(first["algoId"])}) == -2011
    assert acc.cancel_all_algos({"symbol": "BTCUSDT"})["code"] == 200
    assert acc.open_algos({}) == []
    assert kinds(acc.drain())[-2:] == ["ALGO:CANCELED", "ALGO:CANCELED"]


def test_funding_long_pays_short_receives(market: FakeMarket) -> None:
    acc = make_account(market)
    market.set("ETHUSDT", "2999.99", "3000.00", mark="3000")
    order(acc, "ETHUSDT", "BUY", "0.100")
    wallet = acc.wallet
    acc.drain()
    assert acc.on_funding("ETHUSDT", T0 + 8, 0.0001, 3000.0) == D("-0.03")
    assert acc.wallet == wallet - D("0.03")
    event = acc.drain()[0]
    assert event["a"]["m"] == "FUNDING_FEE"
    assert event["a"]["B"][0]["bc"] == "-0.03000000"
    order(acc, "ETHUSDT", "SELL", "0.300")  # now short 0.2
    assert acc.on_funding("ETHUSDT", T0 + 9, 0.0001, 3000.0) == D("0.06")
    assert acc.on_funding("BTCUSDT", T0 + 9, 0.0001, 60000.0) == 0  # no position, no funding
    assert [i["income"] for i in acc.income_history({"incomeType": "FUNDING_FEE"})] == [
        "-0.03000000",
        "0.06000000",
    ]


def test_liquidation_at_the_computed_price(market: FakeMarket) -> None:
    acc = make_account(market, balance="100")
    order(acc, "BTCUSDT", "BUY", "0.030")
    pos = acc.positions["BTCUSDT"]
    liq = acc.liquidation_price(pos)
    # Margin balance meets maintenance (0.4 %) at (E·A − W) / (A − m·|A|).
    expected = (D("60000.10") * D("0.030") - acc.wallet) / (D("0.030") * D("0.996"))
    assert abs(liq - expected) < D("0.00000001")
    above = (liq + D("5")).quantize(D("0.1"))
    market.set("BTCUSDT", str(above), str(above + D("0.1")), mark=str(above))
    assert acc.check_liquidation() is False
    below = (liq - D("5")).quantize(D("0.1"))
    market.set("BTCUSDT", str(below), str(below + D("0.1")), mark=str(below))
    acc.drain()
    assert acc.check_liquidation() is True
    events = acc.drain()
    calc = [e for e in events if e["e"] == "ORDER_TRADE_UPDATE" and e["o"]["x"] == "CALCULATED"]
    assert len(calc) == 1
    assert calc[0]["o"]["c"].startswith("autoclose-")
    assert pos.amt == 0
    assert acc.wallet >= 0


def test_position_risk_balance_and_account_agree(market: FakeMarket) -> None:
    acc = make_account(market)
    order(acc, "BTCUSDT", "BUY", "0.010")
    market.set("BTCUSDT", "60999.90", "61000.00", mark="61000")
    rows = acc.position_risk({}, version=3)
    assert [r["symbol"] for r in rows] == ["BTCUSDT"]
    row = rows[0]
    assert row["positionAmt"] == "0.010"
    assert row["entryPrice"] == "60000.1"
    assert row["markPrice"] == "61000.00000000"
    assert row["unRealizedProfit"] == "9.99900000"
    assert row["notional"] == "610.00000000"
    assert D(row["breakEvenPrice"]) > D("60000.1")
    assert len(acc.position_risk({}, version=2)) == 2
    balance = acc.balance()[0]
    assert balance["balance"] == "9999.69999950"
    assert balance["crossUnPnl"] == "9.99900000"
    # available = wallet + uPnL − initial margin (610 / 20 = 30.5)
    assert D(balance["availableBalance"]) == D("9999.6999995") + D("9.999") - D("30.5")
    account = acc.account(3)
    assert account["totalWalletBalance"] == "9999.69999950"
    assert account["totalUnrealizedProfit"] == "9.99900000"
    assert account["availableBalance"] == balance["availableBalance"]
    assert account["positions"][0]["symbol"] == "BTCUSDT"


def test_leverage_and_margin_type_settings(market: FakeMarket) -> None:
    acc = make_account(market)
    assert acc.set_leverage({"symbol": "BTCUSDT", "leverage": "5"})["leverage"] == 5
    assert error_code(acc.set_leverage, {"symbol": "BTCUSDT", "leverage": "200"}) == -4028
    assert error_code(acc.set_margin_type, {"symbol": "BTCUSDT", "marginType": "CROSSED"}) == -4046
    small = make_account(market, balance="100")
    small.set_leverage({"symbol": "BTCUSDT", "leverage": "5"})
    assert error_code(order, small, "BTCUSDT", "BUY", "0.010") == -2019  # 600 / 5 = 120 > 100


def test_thin_book_trips_percent_price(market: FakeMarket) -> None:
    acc = make_account(market)
    acc.slippage_bps["BTCUSDT"] = 600
    assert error_code(order, acc, "BTCUSDT", "BUY", "0.010") == -4131
    acc.slippage_bps["BTCUSDT"] = 100
    reply = order(acc, "BTCUSDT", "BUY", "0.010")
    assert D(reply["avgPrice"]) == D("60600.10")


def test_finished_orders_fills_and_income_are_forgotten_after_90_days(market: FakeMarket) -> None:
    acc = make_account(market)
    old = order(acc, "BTCUSDT", "BUY", "0.010", newClientOrderId="old-1")
    stop = algo(acc, side="SELL", type="STOP_MARKET", triggerPrice="59000", quantity="0.010")
    acc.cancel_algo({"algoId": str(stop["algoId"])})
    keep = algo(acc, side="SELL", type="STOP_MARKET", triggerPrice="58000", quantity="0.010")
    market.t += 89 * 86_400_000
    recent = order(acc, "BTCUSDT", "SELL", "0.005")
    assert len(acc.user_trades({"symbol": "BTCUSDT"})) == 2  # nothing is 90 days old yet
    market.t += 2 * 86_400_000
    new = order(acc, "BTCUSDT", "SELL", "0.005")

    def query(**params: str) -> dict[str, Any]:
        return acc.query_order({"symbol": "BTCUSDT", **params})

    assert error_code(query, orderId=str(old["orderId"])) == -2013
    assert error_code(query, origClientOrderId="old-1") == -2013
    assert query(orderId=str(recent["orderId"]))["status"] == "FILLED"
    trades = acc.user_trades({"symbol": "BTCUSDT"})
    assert [t["orderId"] for t in trades] == [recent["orderId"], new["orderId"]]
    assert min(i["time"] for i in acc.income_history({"limit": "1000"})) > T0
    assert error_code(acc.query_algo, {"algoId": str(stop["algoId"])}) == -2013
    assert acc.query_algo({"algoId": str(keep["algoId"])})["algoStatus"] == "NEW"  # still open
