"""The daemon's ear for emergency commands against the real PostgreSQL: a command asked
for while no listener ran (or while its connection was cut: the notification is lost)
is taken at the next connect; one too old is expired, never carried out; a cut
connection is the retryable outage the supervisor restarts it after; the CLI's side
marks an unanswered command expired so that it can never be taken later."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from arbengine.domain.control_rows import ControlCommand, ControlRequest
from arbengine.settings import DatabaseSettings
from arbengine.store import control_commands
from arbengine.store.control_commands import CommandListener, CommandRow, NotAcknowledged
from arbengine.store.database import DatabaseUnavailable, open_database


@pytest.fixture
async def url(database_url: str) -> AsyncIterator[str]:
    async with open_database(DatabaseSettings(url=database_url), owner=False):
        yield database_url  # migrated


async def ask(
    url: str, command: ControlCommand = "pause", requested_ago_s: float = 0.0
) -> uuid.UUID:
    """A pending command as the CLI stores it, ``requested_ago_s`` in the past."""
    request = ControlRequest(command=command, who="cli:tester")
    conn = await asyncpg.connect(url)
    try:
        await control_commands.insert(conn, request, "pending")
        await conn.execute(
            "UPDATE live_commands SET requested_at = now() - make_interval(secs => $2) "
            "WHERE id = $1", request.command_id, requested_ago_s,
        )  # fmt: skip
    finally:
        await conn.close()
    return request.command_id


async def status(url: str, command_id: uuid.UUID) -> str:
    conn = await asyncpg.connect(url)
    try:
        return str(
            await conn.fetchval("SELECT status FROM live_commands WHERE id = $1", command_id)
        )
    finally:
        await conn.close()


class Taken:
    """The listener's handler: records what it was given, and wakes the test."""

    def __init__(self) -> None:
        self.ids: list[uuid.UUID] = []
        self.arrived = asyncio.Event()

    async def __call__(self, row: CommandRow) -> None:
        self.ids.append(row.id)
        self.arrived.set()

    async def next(self) -> uuid.UUID:
        await asyncio.wait_for(self.arrived.wait(), 10)
        self.arrived.clear()
        return self.ids[-1]


async def test_commands_missed_while_away_are_taken_at_connect_and_stale_ones_expire(
    url: str,
) -> None:
    stale = await ask(url, requested_ago_s=30)
    missed = await ask(url, "resume")
    taken = Taken()
    listener = asyncio.create_task(CommandListener(url, taken).run())
    try:
        assert await taken.next() == missed
        assert await status(url, missed) == "running"
        assert await status(url, stale) == "expired"
        # Notified while listening: taken at once.
        fresh = await ask(url, "flatten")
        assert await taken.next() == fresh

        # The connection cut: the retryable outage (the supervisor starts it again) ...
        admin = await asyncpg.connect(url)
        try:
            cut = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'arbengine-controls'"
            )
        finally:
            await admin.close()
        assert cut == 1
        with pytest.raises(DatabaseUnavailable):
            await asyncio.wait_for(listener, 10)
        # ... a command asked for meanwhile is not lost: the next connect takes it.
        meanwhile = await ask(url, "cancel_all")
        listener = asyncio.create_task(CommandListener(url, taken).run())
        assert await taken.next() == meanwhile
        assert taken.ids == [missed, fresh, meanwhile]
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)


async def test_an_unanswered_command_is_expired_by_the_cli_and_never_taken_later(
    url: str,
) -> None:
    request = ControlRequest(command="pause", who="cli:tester")
    with pytest.raises(NotAcknowledged, match=r"no daemon acknowledged the command within 0\.3s"):
        await control_commands.ask_daemon(url, request, ack_timeout_s=0.3)
    assert await status(url, request.command_id) == "expired"

    taken = Taken()
    listener = asyncio.create_task(CommandListener(url, taken, max_age_s=60).run())
    try:
        fresh = await ask(url, "resume")
        assert await taken.next() == fresh  # listening: the expired one was never taken
        assert taken.ids == [fresh]
        assert await status(url, request.command_id) == "expired"
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
