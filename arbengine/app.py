"""Composition root: builds every part, owns start-up and shutdown.

Start-up: settings are already validated; open the database (embedded server
or URL, migrations), make sure partitions exist, start the HTTP API, then
run the supervised components. Shutdown (SIGTERM/SIGINT): stop intake, let
processing drain its channels, flush writers, close the API and the pool,
stop the embedded server; all within ``runtime.shutdown_deadline``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from arbengine import __version__
from arbengine.api.app import ApiContext, build_app, serve_http
from arbengine.logs import get_logger
from arbengine.runtime.channels import Channel
from arbengine.runtime.clock import Clock, SystemClock
from arbengine.runtime.os_signals import handle_signals
from arbengine.runtime.supervisor import (
    Component,
    RestartPolicy,
    Supervisor,
    TooManyRestarts,
)
from arbengine.settings import Settings, duration_s
from arbengine.store.database import Database, open_database
from arbengine.store.partitions import maintain_partitions

EXIT_OK = 0
EXIT_FAILED = 1


def restart_policy(settings: Settings) -> RestartPolicy:
    rt = settings.runtime
    return RestartPolicy(
        initial_s=duration_s(rt.restart_initial),
        max_s=duration_s(rt.restart_max),
        healthy_after_s=duration_s(rt.healthy_after),
        max_restarts=rt.max_restarts,
        window_s=duration_s(rt.restart_window),
    )


class Daemon:
    """The running process: its resources, components and reload hooks."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.log = get_logger("daemon")
        self.supervisor = Supervisor(restart_policy(settings))
        self.channels: list[Channel[Any]] = []
        self.reload_hooks: list[Callable[[], Awaitable[None]]] = []
        self.started_monotonic = time.monotonic()
        self.started_at = time.time()

    # -- components -----------------------------------------------------------

    async def _partitions_loop(self, db: Database) -> None:
        """Keep agg_trades partitions ahead of time and apply retention, daily."""
        interval = duration_s(self.settings.database.partition_check_interval)
        log = get_logger("partitions")
        while True:
            async with db.pool.acquire() as conn:
                created, dropped = await maintain_partitions(
                    conn,
                    self.clock.time_ms(),
                    months_ahead=2,
                    retention_months=self.settings.database.trade_retention_months,
                )
            if created or dropped:
                log.info("partitions.maintained", created=created, dropped=dropped)
            await asyncio.sleep(interval)

    async def _reload_loop(self, reload: asyncio.Event) -> None:
        """SIGHUP: run every reload hook (strategies plug in here); never stops the daemon."""
        while True:
            await reload.wait()
            reload.clear()
            self.log.info("daemon.reload_requested", hooks=len(self.reload_hooks))
            for hook in self.reload_hooks:
                await hook()
            self.log.info("daemon.reloaded")

    # -- API view -------------------------------------------------------------

    def _tasks_view(self) -> list[dict[str, Any]]:
        return [s.as_dict() for s in self.supervisor.status()]

    def _channels_view(self) -> list[dict[str, Any]]:
        return [
            {
                "name": ch.name,
                "depth": len(ch),
                "capacity": ch.capacity,
                "policy": ch.policy.value,
                "put_total": ch.put_total,
                "waits_total": ch.waits_total,
                "dropped_total": ch.dropped_total,
            }
            for ch in self.channels
        ]

    # -- lifecycle ------------------------------------------------------------

    async def run(self) -> int:
        settings = self.settings
        deadline_s = duration_s(settings.runtime.shutdown_deadline)
        self.log.info("daemon.starting", version=__version__)
        with handle_signals(
            on_signal=lambda name: self.log.info("daemon.signal", signal=name)
        ) as sig:
            async with contextlib.AsyncExitStack() as stack:
                db = await stack.enter_async_context(open_database(settings.database))
                self.log.info(
                    "database.ready",
                    embedded=db.embedded is not None,
                    data_dir=str(db.embedded.data_dir) if db.embedded else None,
                    server_pid=db.embedded.pid if db.embedded else None,
                    migrations_applied=db.migrations_applied,
                )
                async with db.pool.acquire() as conn:
                    created, dropped = await maintain_partitions(
                        conn,
                        self.clock.time_ms(),
                        months_ahead=2,
                        retention_months=settings.database.trade_retention_months,
                    )
                if created or dropped:
                    self.log.info("partitions.maintained", created=created, dropped=dropped)

                self.supervisor.add(Component("partitions", lambda: self._partitions_loop(db)))
                self.supervisor.add(Component("reload", lambda: self._reload_loop(sig.reload)))

                ctx = ApiContext(
                    version=__version__,
                    started_monotonic=self.started_monotonic,
                    started_at=self.started_at,
                    db_ping=db.ping,
                    db_size=db.size_bytes,
                    tasks=self._tasks_view,
                    channels=self._channels_view,
                )
                port = await stack.enter_async_context(
                    serve_http(build_app(ctx), settings.http.host, settings.http.port)
                )
                self.log.info(
                    "daemon.started", http=f"http://{settings.http.host}:{port}", pid=_pid()
                )
                return await self._run_until_stopped(sig.stop, deadline_s)

    async def _run_until_stopped(self, stop: asyncio.Event, deadline_s: float) -> int:
        supervised = asyncio.create_task(self.supervisor.run(), name="supervisor")
        stopping = asyncio.create_task(stop.wait(), name="stop-signal")
        try:
            await asyncio.wait({supervised, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if supervised.done():
                supervised.result()  # raises TooManyRestarts when the supervisor gave up
                return EXIT_OK
            self.log.info("daemon.stopping", deadline_s=deadline_s)
            started = time.monotonic()
            # Leave a quarter of the budget for closing the API, the pool and the server.
            late = await self.supervisor.stop(deadline_s * 0.75)
            if late:
                self.log.error("daemon.drain_deadline_exceeded", components=late)
            await supervised
            self.log.info(
                "daemon.components_stopped", elapsed_s=round(time.monotonic() - started, 3)
            )
            return EXIT_OK
        finally:
            for task in (stopping, supervised):
                if not task.done():
                    task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.gather(task, return_exceptions=True)


def _pid() -> int:
    import os

    return os.getpid()


async def run_daemon(settings: Settings) -> int:
    daemon = Daemon(settings)
    try:
        code = await daemon.run()
    except TooManyRestarts as exc:
        daemon.log.error("daemon.giving_up", reason=str(exc))
        code = EXIT_FAILED
    daemon.log.info("daemon.stopped", exit_code=code)
    return code
