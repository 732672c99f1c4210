"""SIGTERM always ends the process: within the deadline plus a fixed margin, the embedded
PostgreSQL stopped, exit status 4 when something had to be abandoned.

The stuck components come from the test daemon ``tests/support/stuck_daemon.py`` (the
daemon with them added); the stuck REST call is a real one, held by the sim.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path

import psutil

from arbengine.app import EXIT_ABANDONED
from arbengine.runtime.hard_stop import SHUTDOWN_MARGIN_S
from tests.support import stuck_daemon
from tests.support.daemon import DaemonProcess

DEADLINE_S = 6.0


def stuck_env(daemon_env: dict[str, str], **more: str) -> dict[str, str]:
    return {**daemon_env, "ARB_RUNTIME_SHUTDOWN_DEADLINE": f"{DEADLINE_S:g}s", **more}


async def spawn_stuck(spawn_daemon, env: dict[str, str], kinds: str) -> DaemonProcess:
    """The daemon with the stuck components ``kinds`` (comma-separated) added."""
    return await spawn_daemon(env, [kinds], program=[stuck_daemon.PROGRAM])


async def sigterm_and_time_the_exit(daemon: DaemonProcess, limit_s: float) -> tuple[int, float]:
    began = time.monotonic()
    daemon.send(signal.SIGTERM)
    code = await daemon.wait_exit(timeout=limit_s + 30)  # measured, not bounded, here
    return code, time.monotonic() - began


async def assert_postgres_stopped(daemon: DaemonProcess) -> None:
    server_pid = daemon.events("database.ready")[0]["server_pid"]
    with contextlib.suppress(psutil.NoSuchProcess):
        # The postmaster's children may take a moment after it; the postmaster is gone already.
        await asyncio.to_thread(psutil.Process(server_pid).wait, 5)
    assert not psutil.pid_exists(server_pid)
    data_dir = daemon.env["ARB_DATABASE_DATA_DIR"]
    leftovers = [
        p.info["pid"]
        for p in psutil.process_iter(["pid", "cmdline"])
        if data_dir in " ".join(p.info["cmdline"] or [])
    ]
    assert leftovers == []


async def test_a_component_stuck_in_its_drain_is_cancelled_named_and_the_exit_is_4(
    spawn_daemon, daemon_env: dict[str, str]
) -> None:
    daemon: DaemonProcess = await spawn_stuck(spawn_daemon, stuck_env(daemon_env), "drain")
    await daemon.started()
    code, elapsed = await sigterm_and_time_the_exit(daemon, DEADLINE_S + SHUTDOWN_MARGIN_S)
    assert elapsed <= DEADLINE_S + SHUTDOWN_MARGIN_S
    assert code == EXIT_ABANDONED
    (abandoned,) = daemon.events("daemon.abandoned")
    assert abandoned["level"] == "error"
    assert abandoned["components"] == ["test.stuck.drain"]
    assert abandoned["still_running"] == []  # it ended once cancelled
    assert daemon.events("daemon.stopped")[-1]["exit_code"] == EXIT_ABANDONED
    assert not daemon.events("daemon.forced_exit")
    await assert_postgres_stopped(daemon)


async def test_a_component_in_restart_backoff_is_stopped_at_once_and_the_exit_is_clean(
    spawn_daemon, daemon_env: dict[str, str]
) -> None:
    env = stuck_env(daemon_env, ARB_RUNTIME_RESTART_INITIAL="1m")
    daemon: DaemonProcess = await spawn_stuck(spawn_daemon, env, "backoff")
    await daemon.started()
    await daemon.wait_for(
        lambda line: (
            line.get("event") == "supervisor.restarting" and line["task"] == "test.stuck.backoff"
        )
    )
    code, elapsed = await sigterm_and_time_the_exit(daemon, DEADLINE_S + SHUTDOWN_MARGIN_S)
    # Nothing to abandon: waiting to restart, it had nothing to finish.
    assert code == 0
    assert elapsed <= DEADLINE_S
    assert not daemon.events("daemon.abandoned")
    assert len(daemon.events("supervisor.restarting")) == 1  # and it was not restarted
    await assert_postgres_stopped(daemon)


async def test_a_component_that_swallows_cancellation_does_not_hold_the_process(
    spawn_daemon, daemon_env: dict[str, str]
) -> None:
    daemon: DaemonProcess = await spawn_stuck(spawn_daemon, stuck_env(daemon_env), "swallow")
    await daemon.started()
    code, elapsed = await sigterm_and_time_the_exit(daemon, DEADLINE_S + SHUTDOWN_MARGIN_S)
    assert elapsed <= DEADLINE_S + SHUTDOWN_MARGIN_S
    assert code == EXIT_ABANDONED
    (abandoned,) = daemon.events("daemon.abandoned")
    assert abandoned["components"] == ["test.stuck.swallow"]
    assert abandoned["still_running"] == ["test.stuck.swallow"]
    assert daemon.events("daemon.stopped")[-1]["exit_code"] == EXIT_ABANDONED
    await assert_postgres_stopped(daemon)


async def test_a_second_signal_forces_the_exit_at_once(
    spawn_daemon, daemon_env: dict[str, str]
) -> None:
    env = {**stuck_env(daemon_env), "ARB_RUNTIME_SHUTDOWN_DEADLINE": "60s"}
    daemon: DaemonProcess = await spawn_stuck(spawn_daemon, env, "swallow")
    await daemon.started()
    daemon.send(signal.SIGTERM)
    await daemon.wait_for("daemon.stopping")
    began = time.monotonic()
    daemon.send(signal.SIGINT)
    code = await daemon.wait_exit(timeout=30)
    elapsed = time.monotonic() - began
    assert code == EXIT_ABANDONED
    assert elapsed <= SHUTDOWN_MARGIN_S
    (forced,) = daemon.events("daemon.forced_exit")
    assert forced["reason"] == "a second signal (SIGINT)"
    assert forced["exit_code"] == EXIT_ABANDONED
    # Asked to stop at once (it may need a moment more than the daemon waits for it) ...
    assert daemon.events("database.stopped_at_once")
    # ... and not left running.
    await assert_postgres_stopped(daemon)
    assert not (Path(daemon.env["ARB_DATABASE_DATA_DIR"]) / "postmaster.pid").exists()


async def test_a_component_giving_up_beside_one_that_swallows_cancellation_ends_the_process(
    spawn_daemon, daemon_env: dict[str, str]
) -> None:
    # No signal at all: a component exhausts its restarts while another ignores its
    # cancellation. The process still ends (status 1, gave up) within the deadline and margin.
    env = stuck_env(
        daemon_env,
        ARB_RUNTIME_RESTART_INITIAL="10ms",
        ARB_RUNTIME_RESTART_MAX="10ms",
        ARB_RUNTIME_MAX_RESTARTS="1",
    )
    daemon: DaemonProcess = await spawn_stuck(spawn_daemon, env, "backoff,swallow")
    await daemon.started()
    gave_up = await daemon.wait_for("supervisor.gave_up")
    assert gave_up["task"] == "test.stuck.backoff"
    began = time.monotonic()
    code = await daemon.wait_exit(timeout=DEADLINE_S + SHUTDOWN_MARGIN_S + 30)
    assert time.monotonic() - began <= DEADLINE_S + SHUTDOWN_MARGIN_S
    assert code == 1
    (abandoned,) = daemon.events("daemon.abandoned")
    assert abandoned["still_running"] == ["test.stuck.swallow"]
    assert daemon.events("daemon.giving_up")[0]["task"] == "test.stuck.backoff"
    await assert_postgres_stopped(daemon)
