"""Which configured symbols are followed: checked against exchangeInfo, skipped with a reason."""

from __future__ import annotations

import msgspec
import pytest

from arbengine.collect.listing import SymbolListing, listing_problems
from arbengine.exchange.exchange_errors import InvalidResponse
from arbengine.exchange.replies import ExchangeInfo, decode_reply
from arbengine.runtime.health import HealthBoard


def info(*entries: dict) -> ExchangeInfo:
    """An exchangeInfo reply as the client decodes it."""
    return decode_reply(msgspec.json.encode({"symbols": entries}), ExchangeInfo, "exchangeInfo")


def perpetual(symbol: str, status: str = "TRADING", contract: str = "PERPETUAL") -> dict:
    return {"symbol": symbol, "status": status, "contractType": contract, "filters": []}


def test_only_trading_perpetuals_are_followed() -> None:
    problems = listing_problems(
        info(
            perpetual("BTCUSDT"),
            perpetual("ETHUSDT", status="SETTLING"),
            perpetual("BTCUSDT_260327", contract="CURRENT_QUARTER"),
            {"symbol": "SOLUSDT"},  # keys Binance may leave out are not held against it
        ),
        ["BTCUSDT", "ETHUSDT", "BTCUSDT_260327", "SOLUSDT", "BTCUSTD"],
    )
    assert problems == {
        "ETHUSDT": "not trading (status SETTLING)",
        "BTCUSDT_260327": "not a perpetual contract (contractType CURRENT_QUARTER)",
        "BTCUSTD": "not listed by the exchange",
    }


@pytest.mark.parametrize("reply", [b"{}", b'{"symbols": []}'])
def test_a_reply_without_symbols_is_invalid_not_a_mass_delisting(reply: bytes) -> None:
    with pytest.raises(InvalidResponse, match="lists no symbols"):
        listing_problems(decode_reply(reply, ExchangeInfo, "exchangeInfo"), ["BTCUSDT"])


def test_a_reply_whose_symbols_are_not_a_list_is_invalid_where_it_is_decoded() -> None:
    with pytest.raises(InvalidResponse) as invalid:
        decode_reply(b'{"symbols": "none"}', ExchangeInfo, "GET /fapi/v1/exchangeInfo")
    assert str(invalid.value) == (
        "GET /fapi/v1/exchangeInfo: unexpected reply: Expected `array`, got `str` - at `$.symbols`"
    )


def test_skipped_at_start_then_stopped_while_running_each_reported_once() -> None:
    board = HealthBoard(wall=lambda: 1_000.0)
    listing = SymbolListing(["btcusdt", "ETHUSDT", "NOPEUSDT"], health=board, wall=lambda: 1_000.0)
    told: list[str] = []
    listing.on_stop(told.append)
    listing.waiting("the exchange did not answer exchangeInfo")
    assert [d.component for d in board.current()] == ["collect"]

    assert listing.apply(info(perpetual("BTCUSDT"), perpetual("ETHUSDT"))) == ["NOPEUSDT"]
    assert listing.ready.is_set()
    assert listing.active() == ["BTCUSDT", "ETHUSDT"]
    assert told == ["NOPEUSDT"]
    assert [(d.subject, d.reason) for d in board.current()] == [
        ("NOPEUSDT", "skipped: not listed by the exchange")
    ]

    # A collector meets -1121 for ETHUSDT before the next refresh; the refresh then agrees.
    assert listing.stop("ETHUSDT", "the exchange answered -1121") is True
    assert listing.stop("ETHUSDT", "again") is False
    assert listing.apply(info(perpetual("BTCUSDT"))) == []
    assert told == ["NOPEUSDT", "ETHUSDT"]
    assert listing.active() == ["BTCUSDT"]
    assert listing.view() == {
        "configured": ["BTCUSDT", "ETHUSDT", "NOPEUSDT"],
        "collecting": ["BTCUSDT"],
        "checked": True,
        "skipped": [
            {"symbol": "NOPEUSDT", "reason": "not listed by the exchange", "since": 1000.0},
            {"symbol": "ETHUSDT", "reason": "the exchange answered -1121", "since": 1000.0},
        ],
    }
    assert [(d.subject, d.reason) for d in board.current()] == [
        ("ETHUSDT", "stopped: the exchange answered -1121"),
        ("NOPEUSDT", "skipped: not listed by the exchange"),
    ]
