"""The ``live_commands`` table: emergency controls from request to result, and the
notifications that carry them between the CLI and the running daemon.

A command is taken by the daemon only while it is fresh (``take``: pending → running
within ``max_age_s`` of its request, in one statement), and the CLI that gives up
waiting marks it expired in one statement too (``expire``): whichever comes first wins,
so a command is either carried out at once or never. ``CommandListener`` is the daemon's
side: LISTEN on a connection of its own; at every (re)connect it also takes the fresh
pending rows, so a notification lost while the database was away loses no command.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import msgspec
import orjson

from arbengine.domain.control_rows import (
    CommandStatus,
    ControlAck,
    ControlCommand,
    ControlRequest,
    ControlState,
)
from arbengine.logs import get_logger
from arbengine.store.database import OUTAGE_ERRORS, Database, outage_error, write_transaction

REQUESTS_CHANNEL = "live_commands"
"""NOTIFY'd with a command's id when it is asked for."""
ACKS_CHANNEL = "live_command_acks"
"""NOTIFY'd with a command's id when its status changes past running."""
MAX_AGE_S = 5.0
"""A pending command older than this is never carried out (the CLI waits as long)."""

_COLUMNS = (
    "id, command, symbol, trade_id, who, requested_at, status, result, state, detail, "
    "acked_at, finished_at"
)


class CommandRow(msgspec.Struct, frozen=True, kw_only=True):
    id: uuid.UUID
    command: ControlCommand
    symbol: str | None
    trade_id: int | None
    who: str
    requested_at: datetime
    status: CommandStatus
    result: str | None
    state: ControlState | None
    detail: dict[str, Any]
    acked_at: datetime | None
    finished_at: datetime | None

    def request(self) -> ControlRequest:
        return ControlRequest(
            command=self.command,
            who=self.who,
            symbol=self.symbol,
            trade_id=self.trade_id,
            command_id=self.id,
            requested_at=self.requested_at,
        )


def _row(record: asyncpg.Record) -> CommandRow:
    fields = dict(record)
    state = fields["state"]
    fields["state"] = None if state is None else msgspec.json.decode(state, type=ControlState)
    fields["detail"] = orjson.loads(fields["detail"])
    return msgspec.convert(fields, CommandRow)


async def insert(conn: asyncpg.Connection, request: ControlRequest, status: CommandStatus) -> None:
    await conn.execute(
        "INSERT INTO live_commands (id, command, symbol, trade_id, who, status) "
        "VALUES ($1, $2, $3, $4, $5, $6)",
        request.command_id,
        request.command,
        request.symbol,
        request.trade_id,
        request.who,
        status,
    )
    if status == "pending":
        await conn.execute("SELECT pg_notify($1, $2)", REQUESTS_CHANNEL, str(request.command_id))


async def take(
    conn: asyncpg.Connection, command_id: uuid.UUID | None, max_age_s: float
) -> list[CommandRow]:
    """The fresh pending commands (one, or all when ``command_id`` is None), now running."""
    records = await conn.fetch(
        f"UPDATE live_commands SET status = 'running' WHERE status = 'pending' "
        f"AND requested_at > now() - make_interval(secs => $2) "
        f"AND ($1::uuid IS NULL OR id = $1) RETURNING {_COLUMNS}",
        command_id,
        max_age_s,
    )
    return sorted((_row(r) for r in records), key=lambda r: r.requested_at)


async def expire_stale(conn: asyncpg.Connection, max_age_s: float) -> int:
    """Pending commands too old to be carried out, marked so."""
    done = await conn.execute(
        "UPDATE live_commands SET status = 'expired', finished_at = now(), "
        "result = 'no daemon took it in time' WHERE status = 'pending' "
        "AND requested_at <= now() - make_interval(secs => $1)",
        max_age_s,
    )
    return int(done.split()[-1])


async def expire(conn: asyncpg.Connection, command_id: uuid.UUID) -> bool:
    """The CLI gave up waiting: True when the command was still pending (now expired)."""
    done = await conn.execute(
        "UPDATE live_commands SET status = 'expired', finished_at = now(), "
        "result = 'no daemon took it in time' WHERE id = $1 AND status = 'pending'",
        command_id,
    )
    return bool(done.endswith(" 1"))


async def record(conn: asyncpg.Connection, ack: ControlAck, *, final: bool) -> None:
    """Write a command's acknowledgement (``final``: its end as well) and tell the CLI."""
    status: CommandStatus = "requested" if ack.status == "requested" else ack.status
    await conn.execute(
        "UPDATE live_commands SET status = $2, result = $3, state = $4::jsonb, "
        "detail = $5::jsonb, acked_at = COALESCE(acked_at, now()), "
        "finished_at = CASE WHEN $6 THEN now() ELSE finished_at END, "
        "symbol = COALESCE(symbol, $7) WHERE id = $1",
        ack.command_id,
        status,
        ack.result,
        None if ack.state is None else msgspec.json.encode(ack.state).decode(),
        orjson.dumps(ack.detail, default=str).decode(),
        final,
        ack.symbol,
    )
    await conn.execute("SELECT pg_notify($1, $2)", ACKS_CHANNEL, str(ack.command_id))


async def by_id(conn: asyncpg.Connection, command_id: uuid.UUID) -> CommandRow | None:
    record_ = await conn.fetchrow(f"SELECT {_COLUMNS} FROM live_commands WHERE id = $1", command_id)
    return None if record_ is None else _row(record_)


class ControlCommands:
    """The daemon's writes of commands (the API's and the risk guard's are stored as they
    are carried out: ``running`` at once), each on its own pooled connection."""

    def __init__(self, db: Database, write_timeout_s: float = 10.0) -> None:
        self._db = db
        self._write_timeout_s = write_timeout_s

    async def started(self, request: ControlRequest) -> None:
        try:
            async with write_transaction(self._db.pool, self._write_timeout_s) as conn:
                await insert(conn, request, "running")
        except OUTAGE_ERRORS as exc:
            raise outage_error(exc, "live commands") from exc

    async def record(self, ack: ControlAck, *, final: bool) -> None:
        try:
            async with write_transaction(self._db.pool, self._write_timeout_s) as conn:
                await record(conn, ack, final=final)
        except OUTAGE_ERRORS as exc:
            raise outage_error(exc, "live commands") from exc

    async def command(self, command_id: uuid.UUID) -> CommandRow | None:
        async with self._db.acquire() as conn:
            return await by_id(conn, command_id)


class CommandListener:
    """The daemon's ear for the CLI: LISTEN ``live_commands`` on a connection of its own,
    take each fresh command and hand it to ``handle`` (one at a time, in order). A
    connection lost is ``DatabaseUnavailable``: the supervisor starts it again, and the
    fresh pending rows are taken at once (notifications sent meanwhile were lost)."""

    def __init__(
        self,
        url: str,
        handle: Callable[[CommandRow], Awaitable[None]],
        *,
        max_age_s: float = MAX_AGE_S,
    ) -> None:
        self._url = url
        self._handle = handle
        self._max_age_s = max_age_s
        self._log = get_logger("control")

    async def run(self) -> None:
        try:
            conn = await asyncpg.connect(
                self._url, server_settings={"application_name": "arbengine-controls"}
            )
        except OUTAGE_ERRORS as exc:
            raise outage_error(exc, "controls listener") from exc
        arrived: asyncio.Queue[uuid.UUID | None] = asyncio.Queue()
        lost = asyncio.Event()

        def notified(_c: object, _pid: int, _channel: str, payload: str) -> None:
            try:
                arrived.put_nowait(uuid.UUID(payload))
            except ValueError:
                self._log.warning("control.bad_notification", payload=payload[:80])

        def terminated(_c: object) -> None:
            lost.set()
            arrived.put_nowait(None)

        conn.add_termination_listener(terminated)
        try:
            await conn.add_listener(REQUESTS_CHANNEL, notified)
            # Listening first: a command asked for from here on is notified; one asked for
            # before (while this process was away, or the connection) is taken here.
            expired = await expire_stale(conn, self._max_age_s)
            if expired:
                self._log.warning("control.expired", commands=expired)
            for row in await take(conn, None, self._max_age_s):
                await self._handle(row)
            self._log.info("control.listening", channel=REQUESTS_CHANNEL)
            while True:
                command_id = await arrived.get()
                if lost.is_set() or command_id is None:
                    raise outage_error(ConnectionError("connection lost"), "controls listener")
                rows = await take(conn, command_id, self._max_age_s)
                if not rows:
                    self._log.warning("control.not_taken", command_id=str(command_id),
                                      why="expired, or taken already")  # fmt: skip
                for row in rows:
                    await self._handle(row)
        except OUTAGE_ERRORS as exc:
            raise outage_error(exc, "controls listener") from exc
        finally:
            conn.terminate()


class NotAcknowledged(Exception):
    """No daemon took the command in time; it is marked expired and never carried out."""


async def ask_daemon(
    url: str,
    request: ControlRequest,
    *,
    ack_timeout_s: float = MAX_AGE_S,
    final_timeout_s: float = 0.0,
) -> CommandRow:
    """The CLI's side: store ``request`` as pending, tell the daemon (NOTIFY), wait for its
    acknowledgement (and, ``final_timeout_s`` > 0, for the command's end: a flatten's
    verification). Raises ``NotAcknowledged`` with the row expired when no daemon took it
    within ``ack_timeout_s``; the row as it stands otherwise."""
    try:
        return await _ask(url, request, ack_timeout_s, final_timeout_s)
    except OUTAGE_ERRORS as exc:
        raise outage_error(exc, "live commands") from exc


async def _ask(
    url: str, request: ControlRequest, ack_timeout_s: float, final_timeout_s: float
) -> CommandRow:
    conn = await asyncpg.connect(url, server_settings={"application_name": "arbengine-cli"})
    changed = asyncio.Event()

    def heard(_c: object, _pid: int, _channel: str, payload: str) -> None:
        if payload == str(request.command_id):
            changed.set()

    try:
        await conn.add_listener(ACKS_CHANNEL, heard)
        await insert(conn, request, "pending")
        loop = asyncio.get_running_loop()
        acked_by = loop.time() + ack_timeout_s
        give_up_by = acked_by + 2 * ack_timeout_s + final_timeout_s
        final_by: float | None = None
        while True:
            changed.clear()
            row = await by_id(conn, request.command_id)
            assert row is not None, "the command was stored above"
            if row.status in ("done", "failed", "expired") or loop.time() >= give_up_by:
                return row
            if row.status == "requested":
                if final_by is None:
                    final_by = loop.time() + final_timeout_s
                if loop.time() >= final_by:
                    return row
                deadline = final_by
            elif row.status == "pending" and loop.time() >= acked_by:
                if await expire(conn, request.command_id):
                    raise NotAcknowledged(
                        f"no daemon acknowledged the command within {ack_timeout_s:g}s: is "
                        "`arbengine run` with live trading running on this database? The "
                        "command is marked expired and will never be carried out"
                    )
                deadline = loop.time() + ack_timeout_s  # taken just now: its answer comes
            else:
                deadline = acked_by if row.status == "pending" else loop.time() + ack_timeout_s
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), max(0.01, deadline - loop.time()))
    finally:
        await conn.close()
