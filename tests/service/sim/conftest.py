"""A simulated exchange on a free port per test, manual clock unless a test says otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest

from arbengine.sim import SimConfig, SimServer

START = 1_700_000_000_000  # 2023-11-14T22:13:20Z

BASE = SimConfig(
    port=0,
    manual=True,
    start_ms=START,
    symbols=("BTCUSDT", "ETHUSDT"),
    trade_rate=20.0,
    history_days=2,
)

MakeSim = Callable[..., Awaitable[SimServer]]


@pytest.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    """``await make_sim(speed=5, manual=False, …)``: a started sim, stopped after the test."""
    started: list[SimServer] = []

    async def make(wall_clock: Callable[[], float] | None = None, **overrides: Any) -> SimServer:
        config = replace(BASE, **overrides)
        sim = SimServer(config) if wall_clock is None else SimServer(config, wall_clock=wall_clock)
        await sim.start()
        started.append(sim)
        return sim

    yield make
    for sim in started:
        await sim.stop()


@pytest.fixture
async def sim(make_sim: MakeSim) -> SimServer:
    return await make_sim()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session
