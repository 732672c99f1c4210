"""The API's settings ([http] limits and proxies, [auth] login throttling): one-line errors."""

from __future__ import annotations

import pytest

from arbengine.domain.errors import ConfigError
from arbengine.settings import load_settings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"ARB_HTTP_TRUSTED_PROXIES": "10.0.0.0/8,proxy.local"},
            "settings [http]: trusted_proxies: 'proxy.local' is not an IP address or CIDR network",
        ),
        (
            {"ARB_HTTP_HEADER_TIMEOUT": "0s"},
            "settings [http]: header_timeout must be longer than 0s",
        ),
        (
            {"ARB_HTTP_MAX_CONNECTIONS": "0"},
            "ARB_HTTP_MAX_CONNECTIONS (http.max_connections): expected an integer ≥ 1 (got '0')",
        ),
        (
            {"ARB_AUTH_LOGIN_DELAY_INITIAL": "1m", "ARB_AUTH_LOGIN_DELAY_MAX": "10s"},
            "settings [auth]: login_delay_initial must not exceed login_delay_max",
        ),
    ],
)
def test_mistakes_are_one_line_naming_the_key(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(None, env)
    assert str(caught.value) == message


def test_proxies_are_addresses_or_networks() -> None:
    settings = load_settings(None, {"ARB_HTTP_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8, ::1"})
    assert settings.http.trusted_proxies == ["127.0.0.1", "10.0.0.0/8", "::1"]
