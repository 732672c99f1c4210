"""The exchange keys of live trading never show: not in ``config show``, not in a
configuration error, not in the daemon's log lines or ``/metrics``."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import orjson

from arbengine.sim.server import SimConfig, SimServer
from tests.e2e.test_daemon import run_cli
from tests.support.daemon import DaemonProcess

API_KEY = "vmPUZE6mv9SD5VNHk4HlWFsOr6aKE2zvsw0MuIgwCIPy6utIco14y7Ju91duEh8A"
API_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"


def key_files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "key").write_text(API_KEY + "\n")
    (tmp_path / "secret").write_text(API_SECRET + "\n")
    return {
        "ARB_EXCHANGE_API_KEY_FILE": str(tmp_path / "key"),
        "ARB_EXCHANGE_API_SECRET_FILE": str(tmp_path / "secret"),
    }


def assert_secret_free(text: str) -> None:
    assert API_KEY not in text
    assert API_SECRET not in text


def test_config_show_prints_the_live_section_and_hides_the_keys(tmp_path: Path) -> None:
    env = {**key_files(tmp_path), "ARB_LIVE_ENABLED": "true", "ARB_LIVE_STRATEGIES": "v52"}
    result = run_cli("config", "show", env=env)
    assert result.returncode == 0, result.stderr
    assert_secret_free(result.stdout + result.stderr)
    shown = orjson.loads(result.stdout)
    assert (shown["exchange"]["api_key"], shown["exchange"]["api_secret"]) == ("***", "***")
    assert shown["live"]["enabled"] is True
    assert shown["live"]["environment"] == "testnet"
    assert shown["live"]["strategies"] == ["v52"]


def test_a_live_configuration_error_is_one_line_without_the_keys(tmp_path: Path) -> None:
    env = {**key_files(tmp_path), "ARB_LIVE_ENABLED": "true"}
    result = run_cli("run", env=env)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "arbengine: config error: settings: live.enabled requires at least one strategy "
        "in live.strategies"
    ]
    assert_secret_free(result.stdout + result.stderr)


async def test_the_daemon_with_live_keys_never_logs_or_exports_them(
    spawn_daemon, daemon_env: dict[str, str], tmp_path: Path
) -> None:
    # The live executor signs with the keys and opens the user stream: on a sim that
    # knows them (never the real testnet).
    sim = SimServer(SimConfig(port=0, manual=True, api_key=API_KEY, api_secret=API_SECRET))
    await sim.start()
    env = {
        **daemon_env,
        **key_files(tmp_path),
        "ARB_LIVE_ENABLED": "true",
        "ARB_LIVE_STRATEGIES": "v52",
        "ARB_LIVE_REST_URL": sim.rest_url,
        "ARB_LIVE_PRIVATE_WS_URL": sim.private_ws_url,
        "ARB_LOG_LEVEL": "debug",
    }
    try:
        daemon: DaemonProcess = await spawn_daemon(env)
        base = await daemon.started()
        await daemon.wait_for("user_stream.resync")
        await _check_outputs(daemon, base)
    finally:
        await sim.stop()


async def _check_outputs(daemon: DaemonProcess, base: str) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/metrics") as response:
            assert response.status == 200
            metrics = await response.text()
        async with session.get(f"{base}/api/health") as response:
            health = await response.text()
    assert "arb_component_state" in metrics  # the real exposition, not an error page
    daemon.send(signal.SIGTERM)
    assert await daemon.wait_exit(timeout=30) == 0
    assert daemon.events("daemon.stopped"), "the whole life of the daemon is in its log"
    assert_secret_free(metrics)
    assert_secret_free(health)
    assert_secret_free("\n".join(daemon.raw))
