"""Replies and frames decoded once at the exchange edge: typed, lenient to new keys, exact."""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from arbengine.domain.errors import RetryableError
from arbengine.exchange.exchange_errors import InvalidResponse
from arbengine.exchange.payloads import AggTradeWire, MarkPriceEvent, decode_combined
from arbengine.exchange.replies import (
    AggTrades,
    ExchangeInfo,
    FundingRate,
    PremiumIndex,
    decode_reply,
)

PREMIUM_INDEX = (
    b'{"symbol":"BTCUSDT","markPrice":"11793.63104562","indexPrice":"11781.80495970",'
    b'"estimatedSettlePrice":"11781.16138815","lastFundingRate":"0.00038246",'
    b'"interestRate":"0.00010000","nextFundingTime":1597392000000,"time":1597370495002}'
)
AGG_TRADES = (
    b'[{"a":26129,"p":"0.01633102","q":"4.70443515","f":27781,"l":27781,'
    b'"T":1498793709153,"m":true},'
    b'{"a":26130,"p":"0.01633200","q":"1.5","f":27782,"l":27783,"T":1498793709160,"m":false}]'
)


def test_a_good_reply_is_typed_with_the_numbers_binance_sends_as_strings_as_floats() -> None:
    index = decode_reply(PREMIUM_INDEX, PremiumIndex, "GET /fapi/v1/premiumIndex")
    assert index == PremiumIndex(
        symbol="BTCUSDT",
        markPrice=11793.63104562,
        indexPrice=11781.80495970,
        lastFundingRate=0.00038246,
        time=1597370495002,
        estimatedSettlePrice=11781.16138815,
        interestRate=0.0001,
        nextFundingTime=1597392000000,
    )
    trades = decode_reply(AGG_TRADES, AggTrades, "GET /fapi/v1/aggTrades")
    assert [(t.a, t.p, t.q, t.f, t.l, t.T, t.m) for t in trades] == [
        (26129, 0.01633102, 4.70443515, 27781, 27781, 1498793709153, True),
        (26130, 0.016332, 1.5, 27782, 27783, 1498793709160, False),
    ]


def test_keys_binance_adds_are_ignored_and_keys_it_may_leave_out_have_their_meaning() -> None:
    info = decode_reply(
        b'{"timezone":"UTC","futuresType":"U_MARGINED","rateLimits":[{"rateLimitType":'
        b'"REQUEST_WEIGHT","interval":"MINUTE","intervalNum":1,"limit":2400,"new":1}],'
        b'"symbols":[{"symbol":"BTCUSDT","status":"TRADING","contractType":"PERPETUAL",'
        b'"filters":[{"filterType":"PRICE_FILTER"}],"someNewKey":[1,2]},{"symbol":"ETHUSDT"}]}',
        ExchangeInfo,
        "GET /fapi/v1/exchangeInfo",
    )
    assert [(r.rateLimitType, r.limit) for r in info.rateLimits] == [("REQUEST_WEIGHT", 2400)]
    assert [(s.symbol, s.status, s.contractType) for s in info.symbols] == [
        ("BTCUSDT", "TRADING", "PERPETUAL"),
        ("ETHUSDT", "TRADING", "PERPETUAL"),
    ]
    # An old funding row has an empty mark price; a newer one a number: both decode.
    rows = decode_reply(
        b'[{"symbol":"BTCUSDT","fundingRate":"-0.00010000","fundingTime":1,"markPrice":""},'
        b'{"symbol":"BTCUSDT","fundingRate":"0.00010000","fundingTime":2,"markPrice":"5.5"},'
        b'{"symbol":"BTCUSDT","fundingRate":0.0002,"fundingTime":"3"}]',
        list[FundingRate],
        "GET /fapi/v1/fundingRate",
    )
    assert rows == [
        FundingRate(fundingRate=-0.0001, fundingTime=1, markPrice=""),
        FundingRate(fundingRate=0.0001, fundingTime=2, markPrice=5.5),
        FundingRate(fundingRate=0.0002, fundingTime=3, markPrice=None),
    ]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            AGG_TRADES.replace(b'"p":"0.01633200"', b'"p":"n/a"'),
            "GET /fapi/v1/aggTrades: unexpected reply: Expected `float`, got `str` - at `$[1].p`",
        ),
        (
            AGG_TRADES.replace(b'"a":26130,', b""),
            "GET /fapi/v1/aggTrades: unexpected reply: Object missing required field `a` - at "
            "`$[1]`",
        ),
        (
            b'{"code":0,"msg":"ok"}',
            "GET /fapi/v1/aggTrades: unexpected reply: Expected `array`, got `object`",
        ),
        (
            b"<html><title>502 Bad Gateway</title></html>",
            "GET /fapi/v1/aggTrades: reply is not JSON: HTML page '502 Bad Gateway'",
        ),
        (
            AGG_TRADES[:40],
            "GET /fapi/v1/aggTrades: reply is not JSON: " + repr(AGG_TRADES[:40].decode()),
        ),
    ],
    ids=["mistyped", "missing", "wrong-shape", "html", "truncated"],
)
def test_a_reply_of_another_shape_is_an_invalid_response_naming_the_call_and_the_key(
    body: bytes, message: str
) -> None:
    with pytest.raises(InvalidResponse) as invalid:
        decode_reply(body, AggTrades, "GET /fapi/v1/aggTrades")
    assert str(invalid.value) == message
    assert isinstance(invalid.value, RetryableError)  # a proxy's hiccup: try again later


def test_a_rest_row_and_a_stream_frame_decode_to_the_same_wire_trade() -> None:
    (row,) = decode_reply(
        b'[{"a":5,"p":"100.5","q":"0.25","f":7,"l":8,"T":1000,"m":true}]', AggTrades, "rest"
    )
    frame = decode_combined(
        b'{"stream":"btcusdt@aggTrade","data":{"e":"aggTrade","E":1001,"s":"BTCUSDT",'
        b'"a":5,"p":"100.5","q":"0.25","f":7,"l":8,"T":1000,"m":true,"M":true}}'
    ).data
    assert type(frame) is AggTradeWire
    assert (frame.s, frame.E) == ("BTCUSDT", 1001)
    assert msgspec.structs.replace(frame, s="", E=0) == row


def test_a_mark_price_frame_without_a_settle_price_or_funding_rate_decodes() -> None:
    frame = decode_combined(
        b'{"stream":"btcusdt@markPrice@1s","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT",'
        b'"p":"10.5","i":"10.4","P":"","r":"","T":0}}'
    ).data
    assert frame == MarkPriceEvent(s="BTCUSDT", E=1, p=10.5, i=10.4, P="", r="", T=0)


@given(
    st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=1e12).map(repr)
    | st.decimals(min_value=0, max_value=10**12, places=8, allow_nan=False).map(str)
    | st.from_regex(r"\A(0|[1-9][0-9]{0,19})(\.[0-9]{1,20})?\Z")
)
def test_a_decimal_string_decodes_to_the_same_float_as_python_parses_it(text: str) -> None:
    """Parity with the stored tape and the backtests: the bits must not change.

    The strings are decimals as Binance writes them (JSON's number syntax); one that is not
    (``"00.5"``, ``".5"``) is refused as an invalid reply rather than read differently.
    """
    (trade,) = decode_reply(
        b'[{"a":1,"p":"%s","q":"%s","f":1,"l":1,"T":1,"m":false}]' % (text.encode(), text.encode()),
        AggTrades,
        "rest",
    )
    expected = float(text)
    assert trade.p == expected
    assert math.copysign(1, trade.p) == math.copysign(1, expected)


def test_trading_replies_decode_their_decimals_exactly() -> None:
    from decimal import Decimal

    from arbengine.exchange.replies import AlgoOrderReply, PositionRisk, SymbolLeverageBrackets

    brackets = decode_reply(
        b'{"symbol":"ETHUSDT","notionalCoef":1.5,"brackets":[{"bracket":1,"initialLeverage":125,'
        b'"notionalCap":10000,"notionalFloor":0,"maintMarginRatio":0.0065,"cum":0}]}',
        SymbolLeverageBrackets,
        "GET /fapi/v1/leverageBracket",
    )
    assert brackets.brackets[0].notionalCap == Decimal(10000)
    (position,) = decode_reply(
        b'[{"symbol":"BTCUSDT","positionSide":"BOTH","positionAmt":"-0.010","entryPrice":"60010.1",'
        b'"breakEvenPrice":"0.0","markPrice":"60000.00000000","unRealizedProfit":"0.101",'
        b'"liquidationPrice":"0","notional":"-600.0","updateTime":1765000800000}]',
        list[PositionRisk],
        "GET /fapi/v3/positionRisk",
    )
    assert (position.positionAmt, position.entryPrice) == (Decimal("-0.010"), Decimal("60010.1"))
    algo = decode_reply(
        b'{"algoId":2146760,"clientAlgoId":"6B2I9XVcJpCjqPAJ4YoFX7","algoType":"CONDITIONAL",'
        b'"orderType":"TAKE_PROFIT_MARKET","symbol":"BNBUSDT","side":"SELL","positionSide":"BOTH",'
        b'"timeInForce":"GTC","quantity":"0.01","algoStatus":"NEW","triggerPrice":"750.000",'
        b'"price":"0.000","workingType":"CONTRACT_PRICE","closePosition":false,'
        b'"reduceOnly":true,"createTime":1750485492076,"updateTime":1750485492076}',
        AlgoOrderReply,
        "POST /fapi/v1/algoOrder",
    )
    assert (algo.triggerPrice, algo.quantity, algo.algoStatus) == (
        Decimal("750.000"),
        Decimal("0.01"),
        "NEW",
    )
