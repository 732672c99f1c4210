"""Request authentication: Binance's published vector and every rejection a client can meet."""

from __future__ import annotations

import pytest

from arbengine.sim.error_reply import SimApiError
from arbengine.sim.request_auth import check_api_key, parse_params, sign, verify_signed

SECRET = "2b5eb11e18796d12d88f13dc27dbbd02c2cc51ff7059765ed9821957d82bb4d9"
PAYLOAD = (
    "symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=1&price=9000&timeInForce=GTC"
    "&recvWindow=5000&timestamp=1591702613943"
)
EXPECTED = "3c661234138461fcc7a7d8746c6558c9842d4e10870d2ecbedf7777cad694af9"
NOW = 1591702613943


def test_signer_matches_binance_published_vector() -> None:
    assert sign(SECRET, PAYLOAD) == EXPECTED


def test_signature_in_the_query_string_is_accepted() -> None:
    params = verify_signed(f"{PAYLOAD}&signature={EXPECTED}", "", SECRET, NOW)
    assert params["symbol"] == "BTCUSDT"
    assert params["timestamp"] == str(NOW)
    assert "signature" not in params


def test_signature_in_the_body_is_accepted() -> None:
    params = verify_signed("", f"{PAYLOAD}&signature={EXPECTED}", SECRET, NOW)
    assert params["price"] == "9000"


def test_message_is_query_followed_directly_by_body() -> None:
    query, body = "symbol=BTCUSDT&side=BUY", "type=MARKET&quantity=1&timestamp=1591702613943"
    signature = sign(SECRET, query + body)
    params = verify_signed(query, f"{body}&signature={signature}", SECRET, NOW)
    assert params["type"] == "MARKET"
    assert params["side"] == "BUY"


def test_tampered_parameter_is_rejected_with_1022() -> None:
    tampered = PAYLOAD.replace("quantity=1", "quantity=2")
    with pytest.raises(SimApiError) as err:
        verify_signed(f"{tampered}&signature={EXPECTED}", "", SECRET, NOW)
    assert err.value.code == -1022


def test_wrong_secret_is_rejected_with_1022() -> None:
    with pytest.raises(SimApiError) as err:
        verify_signed(f"{PAYLOAD}&signature={EXPECTED}", "", "another-secret", NOW)
    assert err.value.code == -1022


def test_stale_timestamp_is_rejected_with_1021() -> None:
    with pytest.raises(SimApiError) as err:
        verify_signed(f"{PAYLOAD}&signature={EXPECTED}", "", SECRET, NOW + 5001)
    assert err.value.code == -1021
    assert "recvWindow" in err.value.msg


def test_timestamp_at_the_edge_of_recv_window_is_accepted() -> None:
    verify_signed(f"{PAYLOAD}&signature={EXPECTED}", "", SECRET, NOW + 5000)


def test_timestamp_a_second_ahead_of_the_server_is_rejected_with_1021() -> None:
    with pytest.raises(SimApiError) as err:
        verify_signed(f"{PAYLOAD}&signature={EXPECTED}", "", SECRET, NOW - 1000)
    assert err.value.code == -1021
    assert "ahead" in err.value.msg


def test_missing_signature_and_missing_timestamp_are_1102() -> None:
    with pytest.raises(SimApiError) as err:
        verify_signed(PAYLOAD, "", SECRET, NOW)
    assert err.value.code == -1102
    query = "symbol=BTCUSDT"
    with pytest.raises(SimApiError) as err:
        verify_signed(f"{query}&signature={sign(SECRET, query)}", "", SECRET, NOW)
    assert err.value.code == -1102
    assert "timestamp" in err.value.msg


def test_repeated_parameter_is_1101() -> None:
    with pytest.raises(SimApiError) as err:
        parse_params("symbol=BTCUSDT&symbol=ETHUSDT", "")
    assert err.value.code == -1101


def test_api_key_missing_is_2014_and_wrong_is_2015() -> None:
    with pytest.raises(SimApiError) as err:
        check_api_key(None, "key")
    assert (err.value.code, err.value.status) == (-2014, 401)
    with pytest.raises(SimApiError) as err:
        check_api_key("other", "key")
    assert (err.value.code, err.value.status) == (-2015, 401)
    check_api_key("key", "key")
