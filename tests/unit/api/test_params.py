"""Query strings and bodies: strict conversion, one 400 naming the field, ranges resolved."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from arbengine.api.http_errors import ApiError
from arbengine.api.params import parse_body, parse_query, resolve_range
from arbengine.api.schemas import (
    KlineQuery,
    LoginBody,
    NoQuery,
    PaperTradesQuery,
    RegisterBody,
    SnapshotsQuery,
    TradesSummaryQuery,
)

SYMBOLS = ("BTCUSDT", "ETHUSDT")
NOW = 1_700_000_000_000
HOUR = 3_600_000
DAY = 86_400_000


def query(shape: type, *pairs: tuple[str, str]):  # type: ignore[no-untyped-def]
    return parse_query(MultiDict(pairs), shape, SYMBOLS)


def refused(shape: type, *pairs: tuple[str, str]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        query(shape, *pairs)
    assert caught.value.status == 400
    return caught.value


def test_integers_are_parsed_and_defaults_applied() -> None:
    q = query(SnapshotsQuery, ("symbol", "BTCUSDT"), ("from", "5"), ("limit", "10"))
    assert (q.symbol, q.from_, q.to, q.limit) == ("BTCUSDT", 5, None, 10)
    assert query(SnapshotsQuery, ("symbol", "ETHUSDT")).limit == 1000


@pytest.mark.parametrize("text", ["null", "1.0", " 5", "+5", "0x10", "1_000", "٣", ""])
def test_an_integer_must_be_written_as_one(text: str) -> None:
    err = refused(SnapshotsQuery, ("symbol", "BTCUSDT"), ("from", text))
    assert (err.code, err.field, err.message) == (
        "invalid_parameter",
        "from",
        "from must be an integer",
    )


@pytest.mark.parametrize(
    ("pairs", "code", "field", "message"),
    [
        ([("symbol", "DOGEUSDT")], "unknown_symbol", "symbol", "symbol 'DOGEUSDT' is not tracked"),
        ([], "invalid_parameter", "symbol", "symbol is required"),
        (
            [("symbol", "BTCUSDT"), ("limit", "5001")],
            "invalid_parameter",
            "limit",
            "limit must be at most 5000",
        ),
        (
            [("symbol", "BTCUSDT"), ("limit", "0")],
            "invalid_parameter",
            "limit",
            "limit must be at least 1",
        ),
        (
            [("symbol", "BTCUSDT"), ("from", "-1")],
            "invalid_parameter",
            "from",
            "from must be at least 0",
        ),
        (
            [("symbol", "BTCUSDT"), ("symbl", "x")],
            "invalid_parameter",
            "symbl",
            "unknown parameter 'symbl'",
        ),
        (
            [("symbol", "BTCUSDT"), ("symbol", "BTCUSDT")],
            "invalid_parameter",
            "symbol",
            "symbol is given 2 times",
        ),
        (
            [("symbol", "BTC\x00USDT")],
            "invalid_parameter",
            "symbol",
            "symbol contains control characters",
        ),
        (
            [("symbol", "btcusdt")],
            "invalid_parameter",
            "symbol",
            "symbol is not in the expected format",
        ),
    ],
)
def test_mistakes_are_named(pairs: list, code: str, field: str, message: str) -> None:
    err = refused(SnapshotsQuery, *pairs)
    assert (err.code, err.field) == (code, field)
    assert err.message.startswith(message)


def test_a_choice_lists_the_allowed_values_in_declared_order() -> None:
    err = refused(KlineQuery, ("symbol", "BTCUSDT"), ("interval", "2h"))
    assert err.message == "interval must be one of 1m, 5m, 15m, 30m, 1h, 4h, 1d"
    status = refused(PaperTradesQuery, ("status", "pending"))
    assert status.message == "status must be one of open, closed"


def test_routes_without_parameters_refuse_any() -> None:
    err = refused(NoQuery, ("debug", "1"))
    assert (err.field, err.message) == ("debug", "unknown parameter 'debug' (known: none)")


def test_range_defaults_to_the_last_span_before_now() -> None:
    q = resolve_range(query(SnapshotsQuery, ("symbol", "BTCUSDT")), NOW)
    assert (q.start, q.end) == (NOW - HOUR, NOW)
    bars = resolve_range(query(KlineQuery, ("symbol", "BTCUSDT"), ("interval", "1m")), NOW)
    assert bars.end - bars.start == 500 * 60_000


def test_a_default_range_never_exceeds_the_routes_cap() -> None:
    q = resolve_range(query(TradesSummaryQuery, ("symbol", "BTCUSDT"), ("interval", "1d")), NOW)
    assert q.end - q.start == 7 * DAY


@pytest.mark.parametrize(
    ("shape", "pairs", "message"),
    [
        (SnapshotsQuery, [("from", "10"), ("to", "10")], "from (10) must be before to (10)"),
        (SnapshotsQuery, [("from", "20"), ("to", "10")], "from (20) must be before to (10)"),
        (SnapshotsQuery, [("from", "0"), ("to", str(7 * DAY + 1))], "the range spans"),
        (
            KlineQuery,
            [("interval", "1m"), ("from", "0"), ("to", str(1501 * 60_000))],
            "the range holds 1501 bars of 1m; at most 1500",
        ),
        (
            TradesSummaryQuery,
            [("interval", "1d"), ("from", "0"), ("to", str(8 * DAY))],
            "the range spans",
        ),
    ],
)
def test_inverted_and_oversized_ranges_are_refused(shape: type, pairs: list, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        resolve_range(query(shape, ("symbol", "BTCUSDT"), *pairs), NOW)
    assert (caught.value.code, caught.value.field) == ("invalid_range", "from")
    assert caught.value.message.startswith(message)


def test_the_largest_allowed_range_is_accepted() -> None:
    q = resolve_range(
        query(
            KlineQuery,
            ("symbol", "BTCUSDT"),
            ("interval", "1m"),
            ("from", "0"),
            ("to", str(1500 * 60_000)),
        ),
        NOW,
    )
    assert (q.start, q.end) == (0, 1500 * 60_000)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (b"", None, "the body must be a JSON object"),
        (b"[]", None, "the body must be a JSON object"),
        (b"3\x05q", None, "the body must be a JSON object"),
        (b'{"username": "abc"}', "password", "password is required"),
        (b'{"username": "abc", "password": ""}', "password", "password must not be empty"),
        (
            b'{"username": "ab", "password": "x"}',
            "username",
            "username is not in the expected format",
        ),
        (b'{"username": "abc", "password": 5}', "password", "password must be str, not int"),
        (
            b'{"username": "abc", "password": "x", "role": "admin"}',
            "role",
            "unknown parameter 'role'",
        ),
        (
            b'{"username": "abc\\n", "password": "x"}',
            "username",
            "username contains control characters",
        ),
        # Parsers disagree on which of two equal keys wins: neither is taken.
        (
            b'{"username": "abc", "password": "x", "username": "admin"}',
            "username",
            "username is given 2 times",
        ),
        (
            b'{"password": "x", "username": "abc", "password": "y", "password": "z"}',
            "password",
            "password is given 3 times",
        ),
    ],
)
def test_body_mistakes_are_named(body: bytes, field: str | None, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_body(body, LoginBody)
    assert (caught.value.status, caught.value.code, caught.value.field) == (
        400,
        "invalid_body",
        field,
    )
    assert caught.value.message.startswith(message)


def test_a_password_may_hold_any_character() -> None:
    body = parse_body(b'{"username": "abc", "password": "tab\\there\\u0000"}', LoginBody)
    assert body.password == "tab\there\x00"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            b'{"invite_code": "code_1234", "username": "abc", "password": "short"}',
            "password",
            "password must be at least 10 characters",
        ),
        (
            b'{"invite_code": "code_1234", "username": "abc", "password": "' + b"p" * 257 + b'"}',
            "password",
            "password must be at most 256 characters",
        ),
        (
            b'{"invite_code": "code_1234", "username": null, "password": "long enough"}',
            "username",
            "username must be str, not null",
        ),
        (
            b'{"invite_code": ["x"], "username": "abc", "password": "long enough"}',
            "invite_code",
            "invite_code must be str, not array",
        ),
    ],
)
def test_a_fields_declared_type_says_what_it_needs(body: bytes, field: str, message: str) -> None:
    """The field comes from msgspec's error path; the words from the field's declared type."""
    with pytest.raises(ApiError) as caught:
        parse_body(body, RegisterBody)
    assert (caught.value.code, caught.value.field) == ("invalid_body", field)
    assert caught.value.message == message


def test_a_missing_parameter_and_an_unknown_one_are_named_from_the_shape() -> None:
    err = refused(KlineQuery, ("interval", "1m"), ("limit", "5"))
    assert (err.field, err.message) == (
        "limit",
        "unknown parameter 'limit' (known: from, interval, series, symbol, to)",
    )
    missing = refused(KlineQuery, ("interval", "1m"))
    assert (missing.field, missing.message) == ("symbol", "symbol is required")
