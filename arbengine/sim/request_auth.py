"""Request authentication exactly as Binance checks it: API key, HMAC-SHA256, recvWindow.

The signed message is the raw query string followed directly by the raw body,
each without its ``signature`` parameter, so a client that signs the encoded
string it sends (as it must) is verified byte for byte, whatever it chose to put
in the query or the body.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl

from arbengine.sim.error_reply import SimApiError, mandatory

# Binance's documented example credentials (the sim accepts these unless told otherwise).
DEFAULT_API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
DEFAULT_API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
MAX_RECV_WINDOW = 60_000


def sign(secret: str, payload: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``payload`` keyed by ``secret``."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _strip_signature(raw: str) -> tuple[str, str | None]:
    if not raw:
        return "", None
    parts = raw.split("&")
    signature = None
    kept = []
    for part in parts:
        if part.startswith("signature="):
            if signature is not None:
                raise SimApiError(-1101, "Duplicate values for a parameter detected.")
            signature = part[len("signature=") :]
        else:
            kept.append(part)
    return "&".join(kept), signature


def parse_params(query: str, body: str) -> dict[str, str]:
    """Parameters from the query string and a form body; a repeated name is -1101."""
    out: dict[str, str] = {}
    for raw in (query, body):
        for key, value in parse_qsl(raw, keep_blank_values=True):
            if key in out:
                raise SimApiError(-1101, f"Duplicate values for parameter '{key}'.")
            out[key] = value
    return out


def check_api_key(header: str | None, api_key: str) -> None:
    if not header:
        raise SimApiError(-2014, "API-key format invalid.", 401)
    if not hmac.compare_digest(header, api_key):
        raise SimApiError(-2015, "Invalid API-key, IP, or permissions for action.", 401)


def verify_signed(
    query: str, body: str, secret: str, server_time_ms: int, check_time: bool = True
) -> dict[str, str]:
    """The request's parameters, or the SimApiError Binance would answer."""
    params = parse_params(query, body)
    q_msg, q_sig = _strip_signature(query)
    b_msg, b_sig = _strip_signature(body)
    if q_sig is not None and b_sig is not None:
        raise SimApiError(-1101, "Duplicate values for a parameter detected.")
    signature = q_sig if q_sig is not None else b_sig
    if not signature:
        raise mandatory("signature")
    params.pop("signature", None)
    ts_text = params.get("timestamp")
    if not ts_text:
        raise mandatory("timestamp")
    if not ts_text.isdigit():
        raise SimApiError(
            -1100,
            "Illegal characters found in parameter 'timestamp'; legal range is '^[0-9]{1,20}$'.",
        )
    recv_text = params.get("recvWindow") or "5000"
    if not recv_text.isdigit():
        raise SimApiError(
            -1100,
            "Illegal characters found in parameter 'recvWindow'; legal range is '^[0-9]{1,20}$'.",
        )
    recv_window = int(recv_text)
    if recv_window > MAX_RECV_WINDOW:
        raise SimApiError(-1131, "recvWindow must be less than 60000")
    expected = sign(secret, q_msg + b_msg)
    if not hmac.compare_digest(expected, signature.lower()):
        raise SimApiError(-1022, "Signature for this request is not valid.")
    if check_time:
        timestamp = int(ts_text)
        if timestamp >= server_time_ms + 1000:
            raise SimApiError(
                -1021, "Timestamp for this request was 1000ms ahead of the server's time."
            )
        if server_time_ms - timestamp > recv_window:
            raise SimApiError(-1021, "Timestamp for this request is outside of the recvWindow.")
    return params
