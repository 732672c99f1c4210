"""Each event kind's alert, and Discord messages that never break Discord's limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from arbengine.domain.events import Signal
from arbengine.domain.live_rows import LiveEventRow
from arbengine.notify.alerts import (
    Alert,
    AlertRules,
    daemon_alert,
    given_up_alert,
    live_event_alert,
    signal_alert,
    tape_hole_alert,
)
from arbengine.notify.discord import (
    MAX_DESCRIPTION,
    MAX_EMBEDS,
    MAX_FIELD_NAME,
    MAX_FIELD_VALUE,
    MAX_FIELDS,
    MAX_TITLE,
    MAX_TOTAL,
    alert_embed,
    discord_messages,
    embed_size,
)
from arbengine.notify.json_webhook import json_body

AT = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def signal(score: float = 61.5) -> Signal:
    return Signal(
        tick_ms=1_765_000_000_000, symbol="BTCUSDT", strategy="v52", strategy_hash="ab12cd34",
        direction=1, score=score, coverage=1.0, price=97_000.5, atr=120.0,
        features={"flow_fast": 0.4}, contributions={"flow_fast": 0.45, "funding_rate": -0.05},
    )  # fmt: skip


def row(kind: str, detail: dict[str, object], level: str = "info") -> LiveEventRow:
    return LiveEventRow(
        at=AT, level=level, kind=kind, symbol="BTCUSDT", strategy="v52", detail=detail,  # type: ignore[arg-type]
        who="executor",
    )  # fmt: skip


def assert_valid_message(message: dict) -> None:
    embeds = message["embeds"]
    assert 1 <= len(embeds) <= MAX_EMBEDS
    assert sum(embed_size(e) for e in embeds) <= MAX_TOTAL
    assert message["allowed_mentions"] == {"parse": []}
    for embed in embeds:
        assert 0 < len(embed["title"]) <= MAX_TITLE
        assert len(embed.get("description", "")) <= MAX_DESCRIPTION
        assert len(embed.get("fields", [])) <= MAX_FIELDS
        for field in embed.get("fields", []):
            assert 0 < len(field["name"]) <= MAX_FIELD_NAME
            assert 0 < len(field["value"]) <= MAX_FIELD_VALUE


def test_signal_alert_explains_the_score() -> None:
    alert = signal_alert(signal())
    assert alert.category == "signals"
    assert alert.title == "Signal LONG BTCUSDT · v52"
    fields = dict(alert.fields)
    assert fields["score"].startswith("61.50")
    # each factor's contribution, largest first, and the strategy hash
    names = [n for n, _ in alert.fields if n.startswith("factor ")]
    assert names == ["factor flow_fast", "factor funding_rate"]
    assert fields["factor funding_rate"] == "-0.0500"
    assert fields["strategy hash"] == "ab12cd34"
    [message] = discord_messages([alert])
    assert_valid_message(message)
    assert message["embeds"][0]["fields"][-1] == {
        "name": "strategy hash", "value": "ab12cd34", "inline": True,
    }  # fmt: skip


def test_live_event_kinds() -> None:
    opened = live_event_alert(
        row("trade.opened", {"trade_id": 7, "quantity": "0.01", "price": "97000"})
    )
    assert opened is not None
    assert (opened.category, opened.title) == ("trades", "Trade opened BTCUSDT · v52")
    assert opened.description == "filled 0.01 at 97000"

    closed = live_event_alert(
        row(
            "trade.closed",
            {"trade_id": 7, "reason": "tp2", "realised_r": 1.25, "realised_usd": 12.5},
        )
    )
    assert closed is not None
    assert closed.title == "Trade closed BTCUSDT · v52: +1.25 R / +12.50 USD"
    assert closed.description == "exit: tp2"

    halted = live_event_alert(
        row("risk.state_changed", {"from": "ACTIVE", "to": "HALTED", "reason": "daily loss",
                                   "rule": "daily_loss_r", "values": {"loss_r": 3.1}})
    )  # fmt: skip
    assert halted is not None
    assert (halted.category, halted.level) == ("breaker", "error")
    assert halted.title == "Trading ACTIVE → HALTED"
    assert dict(halted.fields)["values"] == '{"loss_r":3.1}'

    command = live_event_alert(
        row("control.flatten", {"who": "admin:ann", "command_id": "c1", "symbol": "ETHUSDT",
                                "result": "flattened", "state": "ACTIVE"})
    )  # fmt: skip
    assert command is not None
    assert command.category == "controls"
    assert command.title == "Command flatten ETHUSDT by admin:ann"
    assert command.description == "result flattened, state ACTIVE"

    resumed = live_event_alert(row("risk.auto_resumed", {"reason": "cooldown over"}))
    assert resumed is not None
    assert resumed.category == "breaker"
    # order updates, reconciliation and skipped signals are in the API, not alerted
    for kind in ("order.placed", "reconcile.orphan", "signal.skipped", "risk.entry_refused"):
        assert live_event_alert(row(kind, {})) is None
    for alert in (opened, closed, halted, command, resumed):
        [message] = discord_messages([alert])
        assert_valid_message(message)


def test_hole_daemon_and_given_up_alerts() -> None:
    hole = tape_hole_alert("ETHUSDT", 100, 149, "older than max_backfill", 1)
    assert (hole.category, hole.description) == (
        "tape_holes",
        "50 trade ids missing (older than max_backfill)",
    )
    started = daemon_alert("daemon.started", 1, version="0.1.0", strategies=["v52"])
    assert dict(started.fields) == {"version": "0.1.0", "strategies": '["v52"]'}
    stopping = daemon_alert("daemon.stopping", 2)
    assert stopping.title == "Daemon stopping"
    gone = given_up_alert("market-stream", "ValueError: boom", 3)
    assert (gone.category, gone.level, gone.description) == (
        "components",
        "error",
        "ValueError: boom",
    )
    messages = discord_messages([hole, started, stopping, gone])
    assert len(messages) == 1
    assert_valid_message(messages[0])
    assert [e["footer"]["text"] for e in messages[0]["embeds"]] == [
        "tape.hole", "daemon.started", "daemon.stopping", "component.given_up",
    ]  # fmt: skip


def oversized(n: int = 0) -> Alert:
    return Alert(
        kind="component.given_up", category="components", level="error", at_ms=n,
        title="T" * 1000, description="D" * 10_000,
        fields=tuple((f"name{i}-" + "n" * 400, "v" * 5000) for i in range(40)),
    )  # fmt: skip


def test_an_oversized_alert_is_cut_to_the_limits_with_a_visible_mark() -> None:
    embed = alert_embed(oversized())
    assert len(embed["title"]) == MAX_TITLE
    assert embed["title"].endswith("…")
    assert embed_size(embed) <= MAX_TOTAL
    fields = embed["fields"]
    assert len(fields) <= MAX_FIELDS
    assert all(f["value"].endswith("…") for f in fields[:-1])
    assert all(len(f["value"]) == MAX_FIELD_VALUE for f in fields[:-1])
    assert fields[-1]["name"] == "more fields"
    assert fields[-1]["value"] == f"{40 - (len(fields) - 1)} left out"
    [message] = discord_messages([oversized()])
    assert_valid_message(message)


def test_many_small_fields_stop_at_25() -> None:
    alert = Alert(kind="x", category="daemon", at_ms=0, title="t",
                  fields=tuple((f"f{i}", str(i)) for i in range(30)))  # fmt: skip
    fields = alert_embed(alert)["fields"]
    assert len(fields) == MAX_FIELDS
    assert fields[-1] == {"name": "more fields", "value": "6 left out", "inline": True}
    assert [f["name"] for f in fields[:3]] == ["f0", "f1", "f2"]


def test_a_burst_is_packed_into_valid_messages_in_order() -> None:
    burst = [signal_alert(signal(50 + i)) for i in range(23)] + [oversized(i) for i in range(3)]
    messages = discord_messages(burst)
    for message in messages:
        assert_valid_message(message)
    assert [len(m["embeds"]) for m in messages][:3] == [10, 10, 3]
    titles = [e["title"] for m in messages for e in m["embeds"]]
    assert len(titles) == len(burst)  # every alert, once
    # an oversized embed fills most of a message: the three go out one each
    assert len(messages) == 6


def test_json_body_shape() -> None:
    alert = live_event_alert(row("trade.closed", {"trade_id": 7, "realised_r": -1.0}))
    assert alert is not None
    body = json_body([alert], 1_765_022_400_000)
    assert body["source"] == "arbengine"
    assert body["sent_at"] == "2025-12-06T12:00:00Z"
    [item] = body["alerts"]
    assert item["kind"] == "trade.closed"
    assert item["category"] == "trades"
    assert item["at"] == "2026-12-06T12:00:00Z"
    assert item["detail"]["realised_r"] == -1.0
    assert item["detail"]["who"] == "executor"
    assert item["fields"]["realised_r"] == "-1"
    assert (item["symbol"], item["strategy"]) == ("BTCUSDT", "v52")


@pytest.mark.parametrize(
    ("rules", "wanted"),
    [
        (AlertRules(), [True, True, True]),
        (AlertRules(min_signal_score=60.0), [False, True, True]),
        (AlertRules(frozenset({"daemon"})), [False, False, True]),
    ],
)
def test_rules_flags_and_minimum_score(rules: AlertRules, wanted: list[bool]) -> None:
    alerts = [
        signal_alert(signal(55.0)),
        signal_alert(signal(60.0)),
        daemon_alert("daemon.stopping", 0),
    ]
    assert [rules.wants(a) for a in alerts] == wanted
