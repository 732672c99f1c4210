"""Deterministic client order ids for live trades, and reading them back.

An id is a function of the trade (strategy, symbol, signal tick), the order's role and
a replacement counter, so a retry after an unknown outcome sends the *same* id and a
restart can recompute every id of an open trade; and reconciliation tells our orders
(and which trade and role each belongs to) from anything else on the account.

Layout, 36 characters at most (Binance: ``^[.A-Z:/a-z0-9_-]{1,36}$``)::

    ae  <strategy tag: 8>  <tick ms, base 36: 8>  <role: 1>  <replacement, base 36: 1>  -  <symbol>

- ``ae`` marks the engine's ids; it can never begin the exchange's own
  (``autoclose-``, ``adl_autoclose``, ``settlement_autoclose-``).
- The strategy tag is 40 bits of the SHA-256 of the strategy name in lowercase base 32:
  fixed width whatever the name, and distinct across strategies (a collision between two
  configured strategies is a configuration error the executor checks at start, with
  :func:`strategy_tag`).
- The symbol is kept as it is when it fits (15 characters: every USD-M perpetual listed
  today); a longer one is replaced by ``.`` and 8 characters of its hash.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Literal

OrderRole = Literal["entry", "sl", "tp1", "tp2", "breakeven_sl", "time_exit", "flatten"]

_ROLE_CODES: dict[OrderRole, str] = {
    "entry": "e",
    "sl": "s",
    "tp1": "1",
    "tp2": "2",
    "breakeven_sl": "b",
    "time_exit": "t",
    "flatten": "f",
}
_CODE_ROLES = {code: role for role, code in _ROLE_CODES.items()}
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
PREFIX = "ae"
MAX_LENGTH = 36
MAX_REPLACEMENTS = 35
_SYMBOL_ROOM = MAX_LENGTH - len(PREFIX) - 8 - 8 - 1 - 1 - 1
BINANCE_CLIENT_ID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")
_OURS = re.compile(
    r"^ae([a-z2-7]{8})([0-9a-z]{8})([a-z0-9])([0-9a-z])-([A-Z0-9_]{1,15}|\.[a-z2-7]{8})$"
)


@dataclass(frozen=True, slots=True)
class TradeKey:
    """One live trade: a strategy's signal on a symbol at a tick (never two entries each)."""

    strategy: str
    symbol: str
    tick_ms: int


@dataclass(frozen=True, slots=True)
class ParsedClientId:
    """What an id of ours says. The strategy and a long symbol are hashed: compare them with
    :meth:`belongs_to` rather than reading them."""

    strategy_tag: str
    symbol_tag: str
    tick_ms: int
    role: OrderRole
    replacement: int

    def belongs_to(self, key: TradeKey) -> bool:
        return (
            self.strategy_tag == strategy_tag(key.strategy)
            and self.symbol_tag == _symbol_tag(key.symbol)
            and self.tick_ms == key.tick_ms
        )


def strategy_tag(strategy: str) -> str:
    digest = hashlib.sha256(strategy.encode()).digest()[:5]
    return base64.b32encode(digest).decode().lower()


def client_id(key: TradeKey, role: OrderRole, replacement: int = 0) -> str:
    """The id of the order playing ``role`` in the trade ``key`` (``replacement`` counts
    the orders that replaced an earlier one of the same role, 0 for the first)."""
    if not 0 <= replacement <= MAX_REPLACEMENTS:
        raise ValueError(f"replacement {replacement} outside 0..{MAX_REPLACEMENTS}")
    if not 0 <= key.tick_ms < 36**8:
        raise ValueError(f"tick {key.tick_ms} ms outside the id's range")
    return (
        f"{PREFIX}{strategy_tag(key.strategy)}{_base36(key.tick_ms, 8)}"
        f"{_ROLE_CODES[role]}{_B36[replacement]}-{_symbol_tag(key.symbol)}"
    )


def parse_client_id(value: str) -> ParsedClientId | None:
    """The parts of one of our ids; None for anything else (an orphan's, the exchange's)."""
    match = _OURS.match(value)
    if match is None or match.group(3) not in _CODE_ROLES:
        return None
    tag, tick, role, replacement, symbol = match.groups()
    return ParsedClientId(tag, symbol, int(tick, 36), _CODE_ROLES[role], int(replacement, 36))


def _symbol_tag(symbol: str) -> str:
    if len(symbol) <= _SYMBOL_ROOM and re.fullmatch(r"[A-Z0-9_]+", symbol):
        return symbol
    digest = base64.b32encode(hashlib.sha256(symbol.encode()).digest()[:5]).decode().lower()
    return f".{digest}"


def _base36(value: int, width: int) -> str:
    digits = []
    while value:
        value, digit = divmod(value, 36)
        digits.append(_B36[digit])
    return "".join(reversed(digits)).rjust(width, "0")
