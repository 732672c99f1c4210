"""Binance request signing: HMAC-SHA256 over the query string followed by the body."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import urlencode


def sign(secret: str, payload: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``payload`` keyed by the API secret."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def encode_params(params: Mapping[str, object]) -> str:
    """Query string in the given order, booleans as Binance spells them."""
    return urlencode(
        [(k, ("true" if v else "false") if isinstance(v, bool) else v) for k, v in params.items()]
    )


def signed_query(
    params: Mapping[str, object], secret: str, timestamp_ms: int, recv_window_ms: int
) -> str:
    """``params&recvWindow=…&timestamp=…&signature=…`` with the signature last."""
    query = encode_params({**params, "recvWindow": recv_window_ms, "timestamp": timestamp_ms})
    return f"{query}&signature={sign(secret, query)}"
