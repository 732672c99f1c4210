"""The signer against Binance's published example."""

from __future__ import annotations

from urllib.parse import parse_qsl

from arbengine.exchange.signing import encode_params, sign, signed_query

SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
PAYLOAD = (
    "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
    "&recvWindow=5000&timestamp=1591702613943"
)


def test_published_vector() -> None:
    assert sign(SECRET, PAYLOAD) == (
        "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
    )


def test_signed_query_appends_window_timestamp_and_signature_last() -> None:
    params = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": 1,
              "price": 9000, "timeInForce": "GTC"}  # fmt: skip
    query = signed_query(params, SECRET, 1591702613943, 5000)
    assert (
        query
        == f"{PAYLOAD}&signature=3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
    )
    assert [k for k, _ in parse_qsl(query)][-1] == "signature"


def test_booleans_are_spelt_as_binance_expects() -> None:
    assert encode_params({"reduceOnly": True, "closePosition": False}) == (
        "reduceOnly=true&closePosition=false"
    )
