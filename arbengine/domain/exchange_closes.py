"""Orders the exchange places on an account by itself: liquidations, auto-deleveraging,
delivery settlement. Binance marks them by their client id's prefix; both the user data
stream's reader (exchange/) and the live client ids (trading/) ask here, so the prefixes
are stated once."""

from __future__ import annotations

EXCHANGE_CLOSE_PREFIXES = ("autoclose-", "adl_autoclose", "settlement_autoclose-")


def is_exchange_close(client_id: str) -> bool:
    """The exchange closed (part of) a position on its own: a liquidation or an ADL."""
    return client_id.startswith(EXCHANGE_CLOSE_PREFIXES)
