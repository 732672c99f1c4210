"""Alerts and how each source's event becomes one: a synchronous core.

An ``Alert`` is what every sink formats: a title, a short description, named fields
(what a person reads) and the source's own detail (what a program reads). The
translators here decide, per source, the category (each has an enable flag in
``[alerts]``) and the level; ``AlertRules`` applies the flags and the minimum score.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import msgspec
import orjson

from arbengine.domain.events import Signal
from arbengine.domain.live_rows import LiveEventRow

Category = Literal["signals", "trades", "breaker", "controls", "tape_holes", "daemon", "components"]
Level = Literal["info", "warning", "error"]
CATEGORIES: tuple[Category, ...] = (
    "signals", "trades", "breaker", "controls", "tape_holes", "daemon", "components",
)  # fmt: skip

TRADE_KINDS = frozenset({"trade.opened", "trade.closed", "risk.hold_timeout"})
BREAKER_KINDS = frozenset({"risk.state_changed", "risk.auto_resumed"})
CONTROL_PREFIX = "control."


class Alert(msgspec.Struct, frozen=True, kw_only=True):
    """One thing to tell people about."""

    kind: str
    """The source's own name: ``signal``, a ``live_events`` kind (``trade.closed``,
    ``risk.state_changed``, ``control.pause`` …), ``tape.hole``, ``daemon.started``,
    ``daemon.stopping``, ``component.given_up``."""
    category: Category
    level: Level = "info"
    at_ms: int
    title: str
    description: str = ""
    symbol: str | None = None
    strategy: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    """(name, value) pairs shown to a person, in order."""
    detail: dict[str, object] = msgspec.field(default_factory=dict)
    """The source's data as it was (the JSON webhook passes it on)."""
    score: float | None = None
    """A signal's score (``min_signal_score`` applies to it)."""


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Which alerts are sent: the enabled categories, and the lowest signal score."""

    enabled: frozenset[Category] = frozenset(CATEGORIES)
    min_signal_score: float = 0.0

    def wants(self, alert: Alert) -> bool:
        if alert.category not in self.enabled:
            return False
        return alert.score is None or alert.score >= self.min_signal_score


def _shown(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return f"{value:.6g}"
    try:
        return orjson.dumps(value, default=str).decode()
    except TypeError:
        return str(value)


def _signed(value: object, digits: int, unit: str) -> str | None:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f"{number:+.{digits}f} {unit}"


def _direction(direction: int) -> str:
    return "LONG" if direction > 0 else "SHORT"


def signal_alert(signal: Signal) -> Alert:
    """A fired signal: its score, each factor's contribution (wᵢ·sᵢ, largest first) and the
    strategy's hash, so the alert alone explains and pins down the decision."""
    contributions = sorted(signal.contributions.items(), key=lambda kv: -abs(kv[1]))
    fields = [
        ("score", f"{signal.score:.2f} (coverage {signal.coverage:.0%})"),
        ("price", f"{signal.price:.8g}"),
        ("ATR", f"{signal.atr:.6g}"),
        *((f"factor {name}", f"{value:+.4f}") for name, value in contributions),
        ("strategy hash", signal.strategy_hash),
    ]
    return Alert(
        kind="signal",
        category="signals",
        at_ms=signal.tick_ms,
        title=f"Signal {_direction(signal.direction)} {signal.symbol} · {signal.strategy}",
        description=f"{signal.strategy} fired at score {signal.score:.2f}",
        symbol=signal.symbol,
        strategy=signal.strategy,
        fields=tuple(fields),
        detail={
            "tick": signal.tick_ms,
            "direction": signal.direction,
            "score": signal.score,
            "coverage": signal.coverage,
            "price": signal.price,
            "atr": signal.atr,
            "contributions": dict(signal.contributions),
            "strategy_hash": signal.strategy_hash,
        },
        score=signal.score,
    )


def _category(kind: str) -> Category | None:
    if kind in TRADE_KINDS:
        return "trades"
    if kind in BREAKER_KINDS:
        return "breaker"
    if kind.startswith(CONTROL_PREFIX):
        return "controls"
    return None


def _event_title(row: LiveEventRow) -> tuple[str, str, Level]:
    """Title, description and level of a ``live_events`` row worth an alert."""
    d: Mapping[str, object] = row.detail
    where = " ".join(p for p in (row.symbol, f"· {row.strategy}" if row.strategy else None) if p)
    level: Level = (
        "error" if row.level == "error" else "warning" if row.level == "warning" else "info"
    )
    if row.kind == "trade.opened":
        return f"Trade opened {where}", f"filled {d.get('quantity')} at {d.get('price')}", level
    if row.kind == "trade.closed":
        result = [
            r
            for r in (
                _signed(d.get("realised_r"), 2, "R"),
                _signed(d.get("realised_usd"), 2, "USD"),
            )
            if r
        ]
        reason = d.get("reason") or "closed"
        return f"Trade closed {where}: {' / '.join(result) or '?'}", f"exit: {reason}", level
    if row.kind == "risk.hold_timeout":
        return f"Hold timeout {where}", f"held {d.get('held_s')} s: closing at market", "warning"
    if row.kind == "risk.state_changed":
        to = str(d.get("to", "?"))
        level = "error" if to == "HALTED" else "warning" if to == "REDUCING" else "info"
        return f"Trading {d.get('from', '?')} → {to}", str(d.get("reason") or ""), level
    if row.kind == "risk.auto_resumed":
        return "Trading resumed automatically", str(d.get("reason") or ""), "info"
    command = row.kind.removeprefix(CONTROL_PREFIX)
    target = f" {d['symbol']}" if d.get("symbol") else ""
    outcome = [f"{k} {d[k]}" for k in ("result", "state") if d.get(k) is not None]
    who = d.get("who") or row.who
    return f"Command {command}{target} by {who}", ", ".join(outcome), "warning"


def live_event_alert(row: LiveEventRow) -> Alert | None:
    """A ``live_events`` row people are told about (fills, exits, breaker, commands), or None
    for the others (order updates, reconciliation, skipped signals: the API shows them)."""
    category = _category(row.kind)
    if category is None:
        return None
    title, description, level = _event_title(row)
    return Alert(
        kind=row.kind,
        category=category,
        level=level,
        at_ms=_ms(row.at),
        title=title,
        description=description,
        symbol=row.symbol,
        strategy=row.strategy,
        fields=(*((k, _shown(v)) for k, v in row.detail.items()), ("by", row.who)),
        detail={**row.detail, "event_id": str(row.event_id), "who": row.who},
    )


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def tape_hole_alert(symbol: str, from_id: int, to_id: int, reason: str, at_ms: int) -> Alert:
    """Trades the exchange no longer serves: the symbol's features miss them."""
    missing = to_id - from_id + 1
    return Alert(
        kind="tape.hole",
        category="tape_holes",
        level="warning",
        at_ms=at_ms,
        title=f"Tape hole {symbol}",
        description=f"{missing} trade ids missing ({reason})",
        symbol=symbol,
        fields=(("from id", str(from_id)), ("to id", str(to_id)), ("reason", reason)),
        detail={"from_id": from_id, "to_id": to_id, "reason": reason},
    )


def daemon_alert(
    kind: Literal["daemon.started", "daemon.stopping"], at_ms: int, **detail: object
) -> Alert:
    """The daemon started (with what it runs) or is stopping."""
    title = "Daemon started" if kind == "daemon.started" else "Daemon stopping"
    return Alert(
        kind=kind,
        category="daemon",
        level="info" if kind == "daemon.started" else "warning",
        at_ms=at_ms,
        title=title,
        fields=tuple((k, _shown(v)) for k, v in detail.items()),
        detail=dict(detail),
    )


def given_up_alert(component: str, error: str, at_ms: int) -> Alert:
    """A component failed too often: the daemon stops (exit 1)."""
    return Alert(
        kind="component.given_up",
        category="components",
        level="error",
        at_ms=at_ms,
        title=f"Component given up: {component}",
        description=error,
        fields=(("component", component),),
        detail={"component": component, "error": error},
    )
