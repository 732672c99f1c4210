"""``[alerts]``: URLs are secrets (``_FILE``, redacted), checked without being shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from arbengine.domain.errors import ConfigError
from arbengine.notify.notifier import notifier_from_settings
from arbengine.settings import load_settings

URL = "https://discord.com/api/webhooks/1/s3cr3t"


def test_urls_from_files_are_redacted(tmp_path: Path) -> None:
    secret = tmp_path / "discord"
    secret.write_text(URL + "\n")
    settings = load_settings(None, {"ARB_ALERTS_DISCORD_WEBHOOK_URL_FILE": str(secret)})
    assert settings.alerts.discord_webhook_url == URL
    assert settings.alerts.enabled
    assert "s3cr3t" not in repr(settings)
    assert settings.redacted()["alerts"]["discord_webhook_url"] == "***"
    assert settings.redacted()["alerts"]["webhook_url"] == ""
    [sender] = notifier_from_settings(settings.alerts).senders
    assert sender.webhook.name == "discord"
    assert "s3cr3t" not in repr(sender.webhook)


def test_a_bad_url_is_named_without_its_value() -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(None, {"ARB_ALERTS_WEBHOOK_URL": "ftp://host/s3cr3t"})
    assert str(refused.value) == "settings [alerts]: webhook_url: not an http(s) URL"


def test_flags_and_minimum_score_become_the_rules() -> None:
    settings = load_settings(
        None,
        {"ARB_ALERTS_WEBHOOK_URL": URL, "ARB_ALERTS_SIGNALS": "false",
         "ARB_ALERTS_TAPE_HOLES": "false", "ARB_ALERTS_MIN_SIGNAL_SCORE": "70"},
    )  # fmt: skip
    rules = notifier_from_settings(settings.alerts).rules
    assert rules.enabled == {"trades", "breaker", "controls", "daemon", "components"}
    assert rules.min_signal_score == 70.0
    assert not load_settings(None, {}).alerts.enabled
