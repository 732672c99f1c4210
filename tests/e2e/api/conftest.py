"""One daemon per test module (each on a fresh database), shared by that module's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.e2e.api.harness import ApiUnderTest, running_api
from tests.support.postgres import PgTestServer


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    async with running_api(pg_server, tmp_path_factory.mktemp("api")) as under_test:
        yield under_test
