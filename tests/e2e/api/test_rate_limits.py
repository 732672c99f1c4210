"""Login and registration limits per address and per account, on a daemon with small limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import argon2
import pytest
import pytest_asyncio

from tests.e2e.api.harness import PASSWORD, ApiUnderTest, start_api, stop_api
from tests.support.postgres import PgTestServer

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def limited(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    under_test, name = await start_api(
        pg_server,
        tmp_path_factory.mktemp("limited"),
        {
            "ARB_AUTH_LOGIN_ATTEMPTS_PER_IP": "3",
            "ARB_AUTH_LOGIN_ATTEMPTS_PER_ACCOUNT_IP": "2",
            "ARB_AUTH_REGISTER_ATTEMPTS_PER_IP": "2",
            "ARB_AUTH_LOGIN_WINDOW": "10m",
        },
    )
    hashed = argon2.PasswordHasher().hash(PASSWORD)
    await under_test.sql_many(
        "INSERT INTO users (username, password_hash) VALUES ($1, $2)",
        [("alice", hashed), ("bob", hashed)],
    )
    yield under_test
    await stop_api(under_test, pg_server, name)


async def login(api: ApiUnderTest, username: str, password: str) -> int:
    reply = await api.post("/api/login", {"username": username, "password": password})
    if reply.status == 429:
        assert reply.error["code"] == "too_many_requests"
        assert 0 < int(reply.headers["Retry-After"]) <= 600
    return reply.status


async def test_failed_logins_are_limited_per_account_then_per_address(
    limited: ApiUnderTest,
) -> None:
    assert await login(limited, "alice", "wrong password") == 401
    assert await login(limited, "alice", "wrong password") == 401
    # Two failures for alice: even the right password is refused for a while.
    assert await login(limited, "alice", PASSWORD) == 429
    # The address has two failures of three: another account still logs in.
    assert await login(limited, "bob", PASSWORD) == 200
    assert await login(limited, "bob", "wrong password") == 401
    # Third failure from this address: every account is refused from it now.
    assert await login(limited, "bob", PASSWORD) == 429


async def test_registrations_are_limited_per_address(limited: ApiUnderTest) -> None:
    statuses = []
    for _ in range(3):
        reply = await limited.post(
            "/api/register",
            {
                "invite_code": await limited.invite(),
                "username": limited.unique_name(),
                "password": PASSWORD,
            },
        )
        statuses.append(reply.status)
    assert statuses == [201, 201, 429]
