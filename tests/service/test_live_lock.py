"""One executor per account: the advisory lock on a real PostgreSQL, held by a connection
of its own, refused to a second taker, released when its holder's connection ends."""

from __future__ import annotations

import asyncio
import signal
import sys

import asyncpg
import pytest

from arbengine.store.live_lock import (
    AccountInUse,
    account_lock_key,
    acquire_account_lock,
)
from tests.support.waiting import eventually

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"


def test_the_key_is_a_stable_64_bit_number_per_account_and_never_the_key() -> None:
    key = account_lock_key(API_KEY)
    assert key == account_lock_key(API_KEY)
    assert key != account_lock_key(API_KEY + "x")
    assert -(2**63) <= key < 2**63
    assert str(abs(key)) not in API_KEY


async def test_a_second_taker_is_refused_while_the_first_holds_it(database_url: str) -> None:
    first = await acquire_account_lock(database_url, API_KEY)
    try:
        assert first.held
        with pytest.raises(AccountInUse) as refused:
            await acquire_account_lock(database_url, API_KEY)
        message = str(refused.value)
        assert message.startswith("another executor trades this account: database session")
        assert f"session {first.session_pid}" in message
        assert API_KEY not in message
        # Another account is another lock.
        async with await acquire_account_lock(database_url, "another-key") as other:
            assert other.held
    finally:
        await first.release()
    assert not first.held
    async with await acquire_account_lock(database_url, API_KEY) as second:
        assert second.held


async def test_the_lock_is_lost_and_free_when_its_connection_is_cut(database_url: str) -> None:
    lock = await acquire_account_lock(database_url, API_KEY)
    admin = await asyncpg.connect(database_url)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", lock.session_pid)
    finally:
        await admin.close()
    await asyncio.wait_for(lock.wait_lost(), timeout=10)
    assert not lock.held
    async with await acquire_account_lock(database_url, API_KEY) as again:
        assert again.held
    await lock.release()  # harmless on a connection already gone


HOLDER = """
import asyncio, sys
from arbengine.store.live_lock import acquire_account_lock

async def main():
    await acquire_account_lock(sys.argv[1], sys.argv[2])
    print("held", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_killed_holder_process_frees_the_account(database_url: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLDER, database_url, API_KEY, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), timeout=30)
        assert line == b"held\n"
        with pytest.raises(AccountInUse):
            await acquire_account_lock(database_url, API_KEY)
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()

    async def taken() -> bool:
        try:
            lock = await acquire_account_lock(database_url, API_KEY)
        except AccountInUse:
            return False  # the server has not noticed the dead client yet
        await lock.release()
        return True

    await eventually(taken, timeout=30, what="the lock freed by the killed holder")
