"""A webhook receiver on loopback (an aiohttp server) that records every call and answers
as a test scripts it: Discord's 204, a 429 with ``retry_after``, a 5xx, silence."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from aiohttp import web

TOKEN = "s3cr3t-T0KEN-do-not-log"
PATH = f"/api/webhooks/1234/{TOKEN}"


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    hang: bool = False
    """Never answer (the client's timeout ends the call)."""


@dataclass(frozen=True)
class Call:
    at: float
    """time.monotonic() when the call arrived."""
    path: str
    body: Any


class Receiver:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.replies: deque[Reply] = deque()
        """Answers to the next calls, in order; then 204."""
        self._changed = asyncio.Condition()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_post("/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            self._closing.set()  # a hung handler ends
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        async with self._changed:
            self.calls.append(Call(time.monotonic(), request.path, body))
            self._changed.notify_all()
        reply = self.replies.popleft() if self.replies else Reply()
        if reply.hang:
            await self._closing.wait()
        payload = None if reply.body is None else orjson.dumps(reply.body)
        return web.Response(
            status=reply.status, headers=reply.headers, body=payload,
            content_type="application/json" if payload else None,
        )  # fmt: skip

    async def wait_calls(self, count: int, timeout: float = 10.0) -> list[Call]:
        async def enough() -> list[Call]:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.calls) >= count)
                return list(self.calls)

        return await asyncio.wait_for(enough(), timeout)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    yield r
    await r.stop()
