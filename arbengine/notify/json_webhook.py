"""Alerts as a generic JSON webhook's body: one POST per batch, a documented shape.

::

    {"source": "arbengine", "sent_at": "2026-…Z",
     "alerts": [{"kind": "trade.closed", "category": "trades", "level": "info",
                 "at": "2026-…Z", "title": "…", "description": "…",
                 "symbol": "BTCUSDT", "strategy": "v52",
                 "fields": {"realised_r": "1.2", …}, "detail": {…}}]}

``detail`` is the source's own data (a ``live_events`` row's detail, a signal's
contributions …); ``fields`` is what a person reads, as strings.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from arbengine.notify.alerts import Alert

SOURCE = "arbengine"


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def json_body(alerts: Sequence[Alert], sent_at_ms: int) -> dict[str, Any]:
    return {
        "source": SOURCE,
        "sent_at": _iso(sent_at_ms),
        "alerts": [
            {
                "kind": a.kind,
                "category": a.category,
                "level": a.level,
                "at": _iso(a.at_ms),
                "title": a.title,
                "description": a.description,
                "symbol": a.symbol,
                "strategy": a.strategy,
                "fields": dict(a.fields),
                "detail": a.detail,
            }
            for a in alerts
        ],
    }
