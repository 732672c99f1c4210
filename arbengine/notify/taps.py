"""Where the daemon's sources meet the notifier, without those sources knowing of it.

The composition root puts these at the seams it already owns: the engine's fired-signal
sink, the ``live_events`` writer. Each publishes (never waits) and passes the item on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from arbengine.domain.live_rows import LiveEventRow
from arbengine.notify.alerts import Alert, live_event_alert
from arbengine.notify.notifier import Notifier
from arbengine.runtime.channels import Sink

T = TypeVar("T")


class AlertingSink(Generic[T]):
    """A sink whose every item is also published as an alert (``then``: where items go
    next, if anywhere: the live executor's signal channel)."""

    def __init__(
        self, notifier: Notifier, alert: Callable[[T], Alert], then: Sink[T] | None = None
    ) -> None:
        self._notifier = notifier
        self._alert = alert
        self._then = then

    async def put(self, item: T) -> None:
        self._notifier.publish(self._alert(item))
        if self._then is not None:
            await self._then.put(item)


def publish_live_event(notifier: Notifier, row: LiveEventRow) -> None:
    """A ``live_events`` row just written: an alert when its kind is one people are told of."""
    alert = live_event_alert(row)
    if alert is not None:
        notifier.publish(alert)
