"""Start-up backfill progress: per series, how many symbols have their history yet.

At start every collected symbol fetches history over REST: the trade tape
catches up from its last stored id (``agg_trades``), each indicator series
from its last stored value (``ls_global``, ``funding_rate`` …). For a hundred
symbols that takes a while (the exchange's limits pace it, see
``exchange/budget.py``), so each series says how far it is: a
``backfill.progress`` line with ``done``/``total`` symbols at most every
``log_every_s`` and always when the series is complete, the
``arb_backfill_symbols`` gauges, and ``/api/server`` (``backfill``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Gauge

from arbengine.logs import get_logger

BACKFILL_SYMBOLS = Gauge(
    "arb_backfill_symbols",
    "Symbols whose start-up history is fetched (state=done) and expected (state=total), by series",
    ["series", "state"],
)


@dataclass
class _Series:
    expected: set[str]
    started_at: float
    done: set[str] = field(default_factory=set)
    requests: int = 0
    finished_at: float | None = None
    logged_at: float = 0.0


class BackfillProgress:
    def __init__(
        self,
        log_every_s: float = 10.0,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.log_every_s = log_every_s
        self._wall = wall
        self._monotonic = monotonic
        self._series: dict[str, _Series] = {}
        self._log = get_logger("backfill")

    def begin(self, series: str, symbols: Iterable[str]) -> None:
        """The series' history is fetched for ``symbols`` (only the first call counts)."""
        if series in self._series:
            return
        self._series[series] = _Series(set(symbols), self._wall(), logged_at=self._monotonic())
        self._update(series, force=True)

    def request(self, series: str) -> None:
        """One more REST call made for the series' history."""
        state = self._series.get(series)
        if state is not None and state.finished_at is None:
            state.requests += 1

    def done(self, series: str, symbol: str) -> None:
        """``symbol`` has its history of ``series`` (later calls change nothing)."""
        state = self._series.get(series)
        if state is None or symbol not in state.expected or symbol in state.done:
            return
        state.done.add(symbol)
        self._update(series)

    def is_done(self, series: str, symbol: str) -> bool:
        state = self._series.get(series)
        return state is not None and symbol in state.done

    def drop(self, symbol: str) -> None:
        """``symbol`` stopped (delisted): no series waits for it any more."""
        for series, state in self._series.items():
            if symbol in state.expected and symbol not in state.done:
                state.expected.discard(symbol)
                self._update(series)

    def _update(self, series: str, force: bool = False) -> None:
        state = self._series[series]
        total, done = len(state.expected), len(state.done & state.expected)
        BACKFILL_SYMBOLS.labels(series, "done").set(done)
        BACKFILL_SYMBOLS.labels(series, "total").set(total)
        complete = done >= total and state.finished_at is None
        if complete:
            state.finished_at = self._wall()
        now = self._monotonic()
        if complete or force or now - state.logged_at >= self.log_every_s:
            state.logged_at = now
            self._log.info(
                "backfill.progress",
                series=series,
                done=done,
                total=total,
                requests=state.requests,
                elapsed_s=round((state.finished_at or self._wall()) - state.started_at, 1),
                finished=state.finished_at is not None,
            )

    def view(self) -> list[dict[str, Any]]:
        """Per series: symbols done and expected, REST calls, when it started and finished."""
        return [
            {
                "series": series,
                "done": len(state.done & state.expected),
                "total": len(state.expected),
                "requests": state.requests,
                "started_at": round(state.started_at, 3),
                "finished_at": None if state.finished_at is None else round(state.finished_at, 3),
            }
            for series, state in self._series.items()
        ]
