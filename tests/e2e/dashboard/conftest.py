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


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    """A daemon without collection on a fresh database; each module seeds what it shows."""
    async with running_api(pg_server, tmp_path_factory.mktemp("dashboard")) as under_test:
        yield under_test
