"""Alerts as Discord webhook messages, always within Discord's limits: a sync core.

Discord refuses a whole message that breaks any limit (HTTP 400), so nothing here may
exceed one: at most 10 embeds a message, 25 fields an embed, a title of 256 characters,
a description of 4,096, a field name of 256 and a value of 1,024, and 6,000 characters
in all the embeds of a message together. What does not fit is cut with a visible
``…`` (or, for fields, a last field saying how many were left out); a burst of alerts
becomes as few messages as these limits allow. Mentions are never parsed: an alert's
text (a strategy name, an error) cannot ping anybody.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from arbengine.notify.alerts import Alert, Level

MAX_EMBEDS = 10
MAX_FIELDS = 25
MAX_TITLE = 256
MAX_DESCRIPTION = 4096
MAX_FIELD_NAME = 256
MAX_FIELD_VALUE = 1024
MAX_FOOTER = 2048
MAX_TOTAL = 6000
"""Characters in the title, description, field names and values and footer of all the
embeds of one message."""
CUT = "…"
COLOURS: dict[Level, int] = {"info": 0x2E86DE, "warning": 0xF39C12, "error": 0xE74C3C}

Embed = dict[str, Any]


def cut(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` characters, its end replaced by ``…`` when cut."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(CUT))] + CUT if limit > 0 else ""


def embed_size(embed: Embed) -> int:
    """The characters Discord counts toward ``MAX_TOTAL``."""
    size = len(embed.get("title", "")) + len(embed.get("description", ""))
    size += len(embed.get("footer", {}).get("text", ""))
    size += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", ()))
    return size


def _field(name: str, value: str) -> dict[str, Any]:
    # Discord refuses an empty name or value.
    return {
        "name": cut(name, MAX_FIELD_NAME) or "-",
        "value": cut(value, MAX_FIELD_VALUE) or "-",
        "inline": len(value) <= 40,
    }


def alert_embed(alert: Alert) -> Embed:
    """One embed for one alert, within every per-embed limit and ``MAX_TOTAL`` alone."""
    title = cut(alert.title, MAX_TITLE) or alert.kind
    footer = cut(alert.kind, MAX_FOOTER)
    budget = MAX_TOTAL - len(title) - len(footer)
    fields = [_field(n, v) for n, v in alert.fields]
    more = len(fields) > MAX_FIELDS
    kept = fields[: MAX_FIELDS - 1] if more else fields
    # Fields first (they carry the figures); then as much description as is left. A
    # field that does not fit ends the list with a mark of how many were left out.
    reserve = len("more fields") + len(f"{len(fields)} left out") + 1
    shown: list[dict[str, Any]] = []
    for field in kept:
        size = len(field["name"]) + len(field["value"])
        if size > budget - reserve:
            break
        shown.append(field)
        budget -= size
    left_out = len(fields) - len(shown)
    if left_out:
        mark = _field("more fields", f"{left_out} left out")
        shown.append(mark)
        budget -= len(mark["name"]) + len(mark["value"])
    embed: Embed = {
        "title": title,
        "color": COLOURS[alert.level],
        "timestamp": datetime.fromtimestamp(alert.at_ms / 1000, UTC).isoformat(),
        "footer": {"text": footer},
    }
    description = cut(alert.description, min(MAX_DESCRIPTION, max(0, budget)))
    if description:
        embed["description"] = description
    if shown:
        embed["fields"] = shown
    return embed


def discord_messages(alerts: Sequence[Alert]) -> list[dict[str, Any]]:
    """The webhook messages for a batch: as few as the limits allow, in order."""
    messages: list[dict[str, Any]] = []
    embeds: list[Embed] = []
    total = 0
    for alert in alerts:
        embed = alert_embed(alert)
        size = embed_size(embed)
        if embeds and (len(embeds) == MAX_EMBEDS or total + size > MAX_TOTAL):
            messages.append(_message(embeds))
            embeds, total = [], 0
        embeds.append(embed)
        total += size
    if embeds:
        messages.append(_message(embeds))
    return messages


def _message(embeds: list[Embed]) -> dict[str, Any]:
    return {"embeds": embeds, "allowed_mentions": {"parse": []}}
