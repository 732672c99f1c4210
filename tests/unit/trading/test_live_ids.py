"""Deterministic client order ids: Binance's pattern, never the exchange's own prefixes,
distinct across strategies, symbols, ticks, roles and replacements, and readable back."""

from __future__ import annotations

import re
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arbengine.domain.exchange_closes import is_exchange_close
from arbengine.trading.live_ids import (
    OrderRole,
    TradeKey,
    client_id,
    parse_client_id,
    strategy_tag,
)

ROLES: tuple[OrderRole, ...] = get_args(OrderRole)
BINANCE = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
KEY = TradeKey("v52", "BTCUSDT", 1_765_000_800_000)


def test_the_same_trade_and_role_give_the_same_id() -> None:
    assert client_id(KEY, "entry") == client_id(
        TradeKey("v52", "BTCUSDT", 1_765_000_800_000), "entry"
    )
    assert client_id(KEY, "entry") != client_id(KEY, "sl")
    assert client_id(KEY, "sl", 1) != client_id(KEY, "sl")


def test_an_id_reads_back_as_its_trade_role_and_replacement() -> None:
    value = client_id(KEY, "breakeven_sl", 2)
    parsed = parse_client_id(value)
    assert parsed is not None
    assert (parsed.role, parsed.replacement, parsed.tick_ms) == ("breakeven_sl", 2, KEY.tick_ms)
    assert parsed.symbol_tag == "BTCUSDT"
    assert parsed.strategy_tag == strategy_tag("v52")
    assert parsed.belongs_to(KEY)
    assert not parsed.belongs_to(TradeKey("v51", "BTCUSDT", KEY.tick_ms))
    assert not parsed.belongs_to(TradeKey("v52", "ETHUSDT", KEY.tick_ms))
    assert not parsed.belongs_to(TradeKey("v52", "BTCUSDT", KEY.tick_ms + 15_000))


@pytest.mark.parametrize(
    "other",
    [
        "autoclose-1700000000000",
        "adl_autoclose",
        "settlement_autoclose-BTCUSDT",
        "web_ABCdef123",
        "x-" + "a" * 30,
        "",
        client_id(KEY, "sl") + "x",
    ],
)
def test_other_ids_are_not_ours(other: str) -> None:
    assert parse_client_id(other) is None


def test_the_exchanges_own_closes_are_recognised() -> None:
    assert is_exchange_close("autoclose-1700000000000")
    assert is_exchange_close("adl_autoclose")
    assert is_exchange_close("settlement_autoclose-BTCUSDT")
    assert not is_exchange_close(client_id(KEY, "flatten"))


def test_a_long_symbol_is_hashed_to_fit() -> None:
    key = TradeKey("a-strategy-with-a-rather-long-name", "SOMEVERYLONGSYMBOLUSDT", 0)
    value = client_id(key, "tp2", 35)
    assert BINANCE.match(value)
    parsed = parse_client_id(value)
    assert parsed is not None
    assert parsed.belongs_to(key)
    assert parsed.symbol_tag.startswith(".")


def test_out_of_range_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="replacement 36"):
        client_id(KEY, "sl", 36)
    with pytest.raises(ValueError, match="tick"):
        client_id(TradeKey("v52", "BTCUSDT", 36**8), "sl")


names = st.text(min_size=1, max_size=60)
symbols = st.from_regex(r"[A-Z0-9]{1,20}", fullmatch=True)
ticks = st.integers(min_value=0, max_value=36**8 - 1)
keys = st.builds(TradeKey, names, symbols, ticks)


@settings(max_examples=500, deadline=None)
@given(key=keys, role=st.sampled_from(ROLES), replacement=st.integers(0, 35))
def test_every_id_fits_binance_reads_back_and_is_never_the_exchanges(
    key: TradeKey, role: OrderRole, replacement: int
) -> None:
    value = client_id(key, role, replacement)
    assert BINANCE.match(value)
    assert not is_exchange_close(value)
    parsed = parse_client_id(value)
    assert parsed is not None
    assert (parsed.role, parsed.replacement, parsed.tick_ms) == (role, replacement, key.tick_ms)
    assert parsed.belongs_to(key)


@settings(max_examples=500, deadline=None)
@given(
    a=keys,
    b=keys,
    roles=st.tuples(st.sampled_from(ROLES), st.sampled_from(ROLES)),
    counts=st.tuples(st.integers(0, 35), st.integers(0, 35)),
)
def test_different_orders_never_share_an_id(
    a: TradeKey, b: TradeKey, roles: tuple[OrderRole, OrderRole], counts: tuple[int, int]
) -> None:
    same_order = (a, roles[0], counts[0]) == (b, roles[1], counts[1])
    same_id = client_id(a, roles[0], counts[0]) == client_id(b, roles[1], counts[1])
    # Names are hashed (40 bits): a clash is possible in principle, never in these draws.
    assert same_id == same_order


def test_the_strategies_shipped_have_distinct_tags() -> None:
    from pathlib import Path

    names = [p.stem for p in Path("strategies").glob("*.json")]
    assert len(names) >= 2
    assert len({strategy_tag(n) for n in names}) == len(names)
