"""The browser for the dashboard's tests (one per module) and the daemon they look at."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from tests.e2e.api.harness import ApiUnderTest, running_api
from tests.e2e.dashboard.browser import CHROMIUM, CHROMIUM_ARGS
from tests.support.postgres import PgTestServer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            await launched.close()


# Seeded rows are what the pages show: the engine, with no market data, would store an
# evaluation of every pair each tick beside them.
ENGINE_OFF = {"ARB_ENGINE_ENABLED": "false"}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    """A daemon without collection or engine on a fresh database; each module seeds what it
    shows."""
    async with running_api(
        pg_server, tmp_path_factory.mktemp("dashboard"), ENGINE_OFF
    ) as under_test:
        yield under_test


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def empty_api(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    """A deployment nothing was written to yet."""
    async with running_api(pg_server, tmp_path_factory.mktemp("empty"), ENGINE_OFF) as under_test:
        yield under_test
