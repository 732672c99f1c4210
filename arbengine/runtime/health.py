"""What is wrong right now, as reported by the parts that know.

A component that is working but not fully (a stream reconnecting, a symbol
skipped, a call path blocked by the exchange, a writer stalled) says so here
with ``report`` and takes it back with ``clear``; the API's health route and
``/metrics`` read the board. The board is the one way components tell the
operator "degraded", so the API never has to reach into their internals.

Entries are keyed by ``(component, subject)``: ``subject`` separates several
troubles of one component (one per symbol, one per connection). Reporting an
entry again updates its reason but keeps ``since``: the time it began.

A component that already keeps its own state (a writer knows since when the
database has failed it) is ``watch``ed instead: its probe is read whenever
the board is, so the board never disagrees with the component.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector


@dataclass(frozen=True, slots=True)
class Degradation:
    component: str
    subject: str | None
    """What inside the component is affected (a symbol, a connection), if not all of it."""
    reason: str
    """One line, for a person."""
    since: float
    """Epoch seconds when it began."""

    def as_dict(self) -> dict[str, object]:
        return {
            "component": self.component,
            "subject": self.subject,
            "reason": self.reason,
            "since": round(self.since, 3),
        }


class HealthBoard:
    """Current degradations of the running process (one per daemon, passed to whoever reports)."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self._entries: dict[tuple[str, str | None], Degradation] = {}
        self._probes: dict[str, Callable[[], tuple[str, float] | None]] = {}
        _COLLECTOR.boards.add(self)

    def watch(self, component: str, probe: Callable[[], tuple[str, float] | None]) -> None:
        """Read ``component``'s state on demand: ``probe()`` gives ``(reason, since)`` while
        it is degraded, None while it is fine."""
        self._probes[component] = probe

    def report(
        self, component: str, reason: str, *, subject: str | None = None, since: float | None = None
    ) -> None:
        """Report ``component`` (or its ``subject``) degraded; a repeated report keeps ``since``."""
        key = (component, subject)
        current = self._entries.get(key)
        began = current.since if current is not None else (since or self._wall())
        reason = " ".join(reason.split())  # one line, whatever the error text held
        self._entries[key] = Degradation(component, subject, reason, began)

    def clear(self, component: str, *, subject: str | None = None) -> bool:
        """Take a report back; True when there was one."""
        return self._entries.pop((component, subject), None) is not None

    def get(self, component: str, *, subject: str | None = None) -> Degradation | None:
        return self._entries.get((component, subject))

    def current(self) -> list[Degradation]:
        """Every active degradation, oldest first."""
        entries = list(self._entries.values())
        for component, probe in self._probes.items():
            found = probe()
            if found is not None:
                reason, since = found
                entries.append(Degradation(component, None, " ".join(reason.split()), since))
        return sorted(entries, key=lambda d: (d.since, d.component, d.subject or ""))

    def __bool__(self) -> bool:
        return bool(self.current())


class _BoardCollector(Collector):
    """``arb_degraded{component,subject}`` is 1 for every active degradation (read at scrape)."""

    def __init__(self) -> None:
        self.boards: weakref.WeakSet[HealthBoard] = weakref.WeakSet()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        gauge = GaugeMetricFamily(
            "arb_degraded",
            "1 while a component (or one of its subjects) reports a degradation",
            labels=["component", "subject"],
        )
        for board in list(self.boards):
            for entry in board.current():
                gauge.add_metric([entry.component, entry.subject or ""], 1.0)
        yield gauge


_COLLECTOR = _BoardCollector()
REGISTRY.register(_COLLECTOR)
