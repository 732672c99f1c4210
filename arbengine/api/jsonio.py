"""JSON out: msgspec for the declared response shapes, orjson for ad-hoc dicts."""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from aiohttp import web

_encoder = msgspec.json.Encoder()


def encode(value: Any) -> bytes:
    """Encode a response shape (Struct, list, dict, datetime …) to JSON bytes."""
    return _encoder.encode(value)


def bytes_response(
    body: bytes, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        body=orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY),
        status=status,
        content_type="application/json",
        headers=headers,
    )
