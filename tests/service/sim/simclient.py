"""Client-side helpers for the sim's service tests: signing, reading streams with bounded waits."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson

from arbengine.sim import SimServer

WAIT = 10.0
"""Upper bound on any wait for something the sim must do (never reached when it works)."""


def signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


async def signed(
    http: aiohttp.ClientSession,
    sim: SimServer,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    in_body: bool = False,
    timestamp: int | None = None,
    secret: str | None = None,
    api_key: str | None = None,
    timeout: float = WAIT,
) -> tuple[int, Any, Any]:
    """A signed call as Binance clients make it; ``(status, json body, headers)``."""
    values = {
        k: ("true" if v is True else "false" if v is False else v)
        for k, v in (params or {}).items()
    }
    values["recvWindow"] = 5000
    values["timestamp"] = timestamp if timestamp is not None else sim.server_time_ms()
    payload = urlencode(values)
    sig = signature(secret or sim.config.api_secret, payload)
    headers = {"X-MBX-APIKEY": api_key if api_key is not None else sim.config.api_key}
    url = f"{sim.rest_url}{path}"
    kwargs: dict[str, Any] = {"headers": headers, "timeout": aiohttp.ClientTimeout(total=timeout)}
    if in_body:
        kwargs["data"] = f"{payload}&signature={sig}"
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    else:
        url = f"{url}?{payload}&signature={sig}"
    async with http.request(method, url, **kwargs) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def get(
    http: aiohttp.ClientSession, url: str, params: dict[str, Any] | None = None, **kw: Any
) -> tuple[int, Any, Any]:
    async with http.get(url, params=params, **kw) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers


async def control(http: aiohttp.ClientSession, sim: SimServer, path: str, body: Any) -> Any:
    async with http.post(f"{sim.control_url}/{path}", json=body) as resp:
        data = await resp.json()
        assert resp.status == 200, data
        return data


async def history(http: aiohttp.ClientSession, sim: SimServer, symbol: str) -> list[dict[str, Any]]:
    """Every released aggTrade of ``symbol`` through REST ``fromId`` paging."""
    first = sim.tape(symbol).first_id
    rows: list[dict[str, Any]] = []
    if first is None:
        return rows
    next_id = first
    while True:
        status, page, _ = await get(
            http,
            f"{sim.rest_url}/fapi/v1/aggTrades",
            {"symbol": symbol, "fromId": next_id, "limit": 1000},
        )
        assert status == 200, page
        if not page:
            return rows
        rows += page
        next_id = page[-1]["a"] + 1


class AiohttpReader:
    """Reads an aiohttp websocket as parsed JSON with bounded waits."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.raw: list[str] = []

    async def next(self, timeout: float = WAIT) -> Any:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"websocket ended: {msg.type.name} {msg.data!r}")
        self.raw.append(msg.data)
        return orjson.loads(msg.data)

    async def until(self, done: Callable[[list[Any]], bool], timeout: float = WAIT) -> list[Any]:
        """Messages until ``done(messages)`` holds; TimeoutError when it never does."""
        out: list[Any] = []
        deadline = time.monotonic() + timeout
        while not done(out):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"condition not met after {len(out)} messages")
            out.append(await self.next(left))
        return out


def payload(msg: Any) -> Any:
    return msg["data"] if isinstance(msg, dict) and "stream" in msg and "data" in msg else msg


def last_id_reached(symbol: str, last_id: int) -> Callable[[list[Any]], bool]:
    def done(msgs: list[Any]) -> bool:
        if not msgs:
            return False
        d = payload(msgs[-1])
        return (
            isinstance(d, dict)
            and d.get("e") == "aggTrade"
            and d["s"] == symbol
            and (d["a"] >= last_id)
        )

    return done


async def wait_for(condition: Callable[[], bool], timeout: float = WAIT) -> None:
    """Poll a condition on the sim (bounded); the sim's own tasks make it true."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.01)


def strip_stream_fields(d: dict[str, Any]) -> dict[str, Any]:
    """An aggTrade stream payload as a REST row."""
    return {k: v for k, v in d.items() if k not in ("e", "E", "s")}


def last_id(sim: SimServer, symbol: str) -> int:
    """The newest aggTrade id the sim has published for ``symbol`` (there must be one)."""
    value = sim.tape(symbol).last_id
    assert value is not None, f"{symbol} has published no trade yet"
    return value


def first_id(sim: SimServer, symbol: str) -> int:
    value = sim.tape(symbol).first_id
    assert value is not None, f"{symbol} has published no trade yet"
    return value
