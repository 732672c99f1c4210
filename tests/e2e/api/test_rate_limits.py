"""Login and registration limits against a hostile client, on a daemon with small limits.

The daemon trusts 127.0.0.1 (and 10.0.0.0/8) as reverse proxies, so each test
speaks from addresses of its own through ``X-Forwarded-For``, and tests do not
share limits.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import argon2
import pytest
import pytest_asyncio

from tests.e2e.api.harness import PASSWORD, ApiUnderTest, Reply, start_api, stop_api
from tests.support.daemon import LogLine
from tests.support.postgres import PgTestServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

PER_ADDRESS = 4
PER_ACCOUNT_ADDRESS = 2
DELAY_AFTER = 5
WINDOW_S = 600
USERS = ("alice", "bob", "carol", "dave", "eve", "frank", "grace")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def limited(
    pg_server: PgTestServer, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ApiUnderTest]:
    under_test, name = await start_api(
        pg_server,
        tmp_path_factory.mktemp("limited"),
        {
            "ARB_HTTP_TRUSTED_PROXIES": "127.0.0.1,10.0.0.0/8",
            "ARB_AUTH_LOGIN_ATTEMPTS_PER_IP": str(PER_ADDRESS),
            "ARB_AUTH_LOGIN_ATTEMPTS_PER_ACCOUNT_IP": str(PER_ACCOUNT_ADDRESS),
            "ARB_AUTH_LOGIN_DELAY_AFTER": str(DELAY_AFTER),
            "ARB_AUTH_LOGIN_DELAY_INITIAL": "100ms",
            "ARB_AUTH_LOGIN_DELAY_MAX": "400ms",
            "ARB_AUTH_REGISTER_ATTEMPTS_PER_IP": "2",
            "ARB_AUTH_LOGIN_WINDOW": f"{WINDOW_S}s",
        },
    )
    hashed = argon2.PasswordHasher().hash(PASSWORD)
    await under_test.sql_many(
        "INSERT INTO users (username, password_hash) VALUES ($1, $2)",
        [(user, hashed) for user in USERS],
    )
    yield under_test
    await stop_api(under_test, pg_server, name)


async def login(api: ApiUnderTest, username: str, password: str, address: str) -> Reply:
    reply = await api.post(
        "/api/login",
        {"username": username, "password": password},
        headers={"X-Forwarded-For": address},
    )
    if reply.status == 429:
        assert reply.error["code"] == "too_many_requests"
        assert 0 < int(reply.headers["Retry-After"]) <= WINDOW_S
    return reply


async def status(api: ApiUnderTest, username: str, password: str, address: str) -> int:
    return (await login(api, username, password, address)).status


_MARKS = itertools.count(1)


async def logged(api: ApiUnderTest, event: str, *usernames: str) -> list[LogLine]:
    """The daemon's ``event`` lines about ``usernames`` for every request answered so far.

    Its output is read a moment after the answers; it writes in order, so once the line of a
    later request (a wrong login from an address of its own) is in, so are all before it."""
    n = next(_MARKS)
    mark = f"log-mark-{n}"
    assert await status(api, mark, "-", f"198.18.{n // 250}.{n % 250 + 1}") == 401
    await api.daemon.wait_for(
        lambda e: e.get("event") == "auth.login_failed" and e["username"] == mark
    )
    return [e for e in api.daemon.events(event) if e["username"] in usernames]


async def evaluated(api: ApiUnderTest, username: str) -> int:
    """Attempts on ``username`` whose password the daemon checked and found wrong."""
    return len(await logged(api, "auth.login_failed", username))


async def test_failures_are_limited_per_account_and_address_then_per_address(
    limited: ApiUnderTest,
) -> None:
    here, elsewhere = "198.51.100.1", "198.51.100.2"
    assert await status(limited, "alice", "wrong password", here) == 401
    assert await status(limited, "alice", "wrong password", here) == 401
    # Two failures for alice from here: even the right password is refused from here …
    refused = await login(limited, "alice", PASSWORD, here)
    assert refused.status == 429
    assert refused.error["message"] == "too many failed logins to this account from this address"
    # … but alice is not locked out: from another address she logs in.
    assert await status(limited, "alice", PASSWORD, elsewhere) == 200
    # The address has two failures of four: another account still logs in from it.
    assert await status(limited, "bob", PASSWORD, here) == 200
    assert await status(limited, "bob", "wrong password", here) == 401
    assert await status(limited, "carol", "wrong password", here) == 401
    # Fourth failure from this address: every account is refused from it now.
    refused = await login(limited, "carol", PASSWORD, here)
    assert refused.status == 429
    assert refused.error["message"] == "too many failed logins from this address"


async def test_concurrent_guesses_are_counted_before_the_password_is_checked(
    limited: ApiUnderTest,
) -> None:
    attacker = "198.51.100.10"
    guesses = [login(limited, "dave", f"guess {n}", attacker) for n in range(60)]
    replies = await asyncio.gather(*guesses)
    statuses = sorted(reply.status for reply in replies)
    # Only as many guesses as the limit were checked, however many arrived at once.
    assert statuses == [401] * PER_ACCOUNT_ADDRESS + [429] * (60 - PER_ACCOUNT_ADDRESS)
    assert await evaluated(limited, "dave") == PER_ACCOUNT_ADDRESS
    # The limit is spent: the right password is not even checked.
    assert await status(limited, "dave", PASSWORD, attacker) == 429
    assert await evaluated(limited, "dave") == PER_ACCOUNT_ADDRESS


async def test_concurrent_guesses_across_accounts_stop_at_the_address_limit(
    limited: ApiUnderTest,
) -> None:
    attacker = "198.51.100.11"
    names = [f"nobody{n}" for n in range(60)]
    replies = await asyncio.gather(*(login(limited, n, "guess", attacker) for n in names))
    statuses = sorted(reply.status for reply in replies)
    assert statuses == [401] * PER_ADDRESS + [429] * (60 - PER_ADDRESS)
    assert len(await logged(limited, "auth.login_failed", *names)) == PER_ADDRESS


async def test_an_attacked_account_slows_down_but_its_owner_still_logs_in(
    limited: ApiUnderTest,
) -> None:
    # Ten addresses, two wrong guesses each: every one of them is stopped for eve …
    attackers = [f"203.0.113.{n}" for n in range(1, 11)]
    for address in attackers:
        assert await status(limited, "eve", "wrong password", address) == 401
        assert await status(limited, "eve", "wrong password", address) == 401
        assert await status(limited, "eve", "wrong password", address) == 429
    # … and beyond the fifth failure each attempt on eve waited first, doubling, capped.
    delayed = await logged(limited, "auth.login_delayed", "eve")
    assert [e["delay_s"] for e in delayed] == [0.1, 0.2, 0.4] + [0.4] * 12
    assert await evaluated(limited, "eve") == 20
    # Her owner, from her own address, gets in: after the longest wait, never a 429.
    owner = "192.0.2.7"
    assert await status(limited, "eve", PASSWORD, owner) == 200
    last = (await logged(limited, "auth.login_delayed", "eve"))[-1]
    assert (last["remote"], last["delay_s"]) == (owner, 0.4)


async def test_the_client_is_the_right_most_address_no_trusted_proxy_wrote(
    limited: ApiUnderTest,
) -> None:
    # The client forged the first entry; 10.1.2.3 is our own (trusted) proxy in front.
    chain = "192.0.2.66, 198.51.100.77, 10.1.2.3"
    assert await status(limited, "frank", "wrong password", chain) == 401
    failed = await logged(limited, "auth.login_failed", "frank")
    assert [e["remote"] for e in failed] == ["198.51.100.77"]


async def test_forwarded_for_from_an_untrusted_peer_is_ignored(api: ApiUnderTest) -> None:
    # The default daemon trusts no proxy: the header is the client's word, not believed.
    reply = await api.post(
        "/api/login",
        {"username": "grace", "password": "wrong password"},
        headers={"X-Forwarded-For": "192.0.2.99"},
    )
    assert reply.status == 401
    # (The line is read a moment after the answer: wait for it, then check it is the only one.)
    first = await api.daemon.wait_for(
        lambda e: e.get("event") == "auth.login_failed" and e["username"] == "grace"
    )
    assert first["remote"] == "127.0.0.1"
    assert len([e for e in api.daemon.events("auth.login_failed") if e["username"] == "grace"]) == 1


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
            headers={"X-Forwarded-For": "198.51.100.40"},
        )
        statuses.append(reply.status)
    assert statuses == [201, 201, 429]
    # Another address registers: the limit is per address, not for everyone behind the proxy.
    reply = await limited.post(
        "/api/register",
        {
            "invite_code": await limited.invite(),
            "username": limited.unique_name(),
            "password": PASSWORD,
        },
        headers={"X-Forwarded-For": "198.51.100.41"},
    )
    assert reply.status == 201
