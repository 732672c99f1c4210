"""The market stream collector: aggTrade, markPrice@1s and forceOrder for every symbol.

Owns one ``TradeTape`` per symbol and keeps it complete:

- every aggTrade from the stream goes into the tape; the tape hands out only
  the next contiguous run of ids and holds anything past a gap;
- a gap still open after ``repair_grace`` (a reordered frame closes itself
  sooner) is repaired over REST (``fromId``, ≤ 1000 per call, weight 20);
- at start-up and after every reconnect the tape catches up over REST from
  its last id, so trades missed while disconnected (or while the daemon was
  down) are fetched even if the market is quiet; a catch-up reaching back
  further than ``max_backfill`` starts there instead and records the hole;
- ids that REST no longer has (older than its history) become a recorded hole.

Everything that leaves the tape, plus mark prices and liquidations, is put
on the market channel by a flusher every ``flush_interval``, the other events
of a window before its trades; when the channel is full the websocket reads
pause (backpressure), they are never dropped. The event times ``E`` of the
frames a flush delivered (and the times of the trades it delivered, some
fetched over REST) then advance the exchange clock (``RemoteClock``), on
which the engine decides when events have had time to arrive: only after the
delivery, so the clock never runs ahead of what the channel has been given
(which matters where the market runs faster than the wall clock, in the sim).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from prometheus_client import Counter, Gauge

from arbengine.collect.rest_trades import AGG_TRADES_LIMIT, fetch_agg_trades
from arbengine.collect.tape import TradeTape
from arbengine.domain.market import Liquidation, MarketEvent, MarkPrice, TapeGap
from arbengine.exchange.payloads import (
    AggTradeEvent,
    ForceOrderEvent,
    MarkPriceEvent,
    decode_combined,
)
from arbengine.exchange.rest import BinanceRest
from arbengine.exchange.streams import CombinedStream, StreamPolicy, split_streams
from arbengine.runtime.channels import Sink
from arbengine.runtime.clock import Clock, RemoteClock, SystemClock

HOUR_MS = 3_600_000

TRADES_IN = Counter("arb_tape_rest_trades", "Trades fetched over REST into a tape")
DUPLICATES = Counter("arb_tape_duplicates", "Trades dropped as already on the tape")
GAPS = Counter("arb_tape_gaps", "Gaps by outcome", ["outcome"])
HELD = Gauge("arb_tape_held", "Trades held behind a gap", ["symbol"])


@dataclass(frozen=True)
class CollectorPolicy:
    repair_grace_s: float = 0.5
    max_backfill_ms: int = 24 * HOUR_MS
    initial_backfill_ms: int = 0
    flush_interval_s: float = 0.02
    max_pending_rows: int = 50_000
    streams_per_connection: int = 200
    stream: StreamPolicy = field(default_factory=StreamPolicy)


class MarketStreamCollector:
    def __init__(
        self,
        symbols: Sequence[str],
        rest: BinanceRest,
        ws_url: str,
        out: Sink[MarketEvent],
        *,
        last_stored: Mapping[str, tuple[int, int]] | None = None,
        policy: CollectorPolicy | None = None,
        clock: Clock | None = None,
        exchange_clock: RemoteClock | None = None,
    ) -> None:
        self.symbols = [s.upper() for s in symbols]
        self._rest = rest
        self._out = out
        self.policy = policy or CollectorPolicy()
        self._clock = clock or SystemClock()
        self.exchange_clock = exchange_clock or RemoteClock(self._clock)
        self._newest_event_ms = 0
        self._log = structlog.get_logger("collector").bind(component="collector")
        self.tapes = {s: TradeTape(s) for s in self.symbols}
        self._last_stored = dict(last_stored or {})
        self._prepared: set[str] = set()
        self._wake = {s: asyncio.Event() for s in self.symbols}
        self._catch_up = {s: asyncio.Event() for s in self.symbols}
        self._events: list[MarketEvent] = []
        self._seen_liquidations: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self._may_read = asyncio.Event()
        self._may_read.set()
        self._stopping = asyncio.Event()
        self.holes_recorded = 0
        self.caught_up = asyncio.Event()
        """Set once every symbol's tape has caught up over REST after start-up."""
        self._caught_up_symbols: set[str] = set()
        names = [
            f"{s.lower()}@{kind}"
            for s in self.symbols
            for kind in ("aggTrade", "markPrice@1s", "forceOrder")
        ]
        self.streams = [
            CombinedStream(
                f"market-{i}",
                ws_url,
                group,
                self._on_frame,
                session=rest.session,
                on_connected=self._on_connected,
                policy=self.policy.stream,
                clock=self._clock,
                may_read=self._may_read,
            )
            for i, group in enumerate(split_streams(names, self.policy.streams_per_connection))
        ]

    # -- lifecycle ------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop reading, hand everything already received to the channel, return."""
        self._stopping.set()
        for stream in self.streams:
            stream.request_stop()
        for event in self._wake.values():
            event.set()

    async def run(self) -> None:
        for symbol in self.symbols:
            if symbol not in self._prepared:
                await self._prepare(symbol)
                self._prepared.add(symbol)
        async with asyncio.TaskGroup() as group:
            for stream in self.streams:
                group.create_task(stream.run(), name=stream.name)
            for symbol in self.symbols:
                group.create_task(self._repair_loop(symbol), name=f"repair:{symbol}")
            group.create_task(self._flush_loop(), name="flush")

    async def _prepare(self, symbol: str) -> None:
        """Fix where the tape starts: after the last stored id, bounded by max_backfill."""
        tape = self.tapes[symbol]
        now = self._clock.time_ms()
        stored = self._last_stored.get(symbol)
        if stored is not None:
            last_id, last_ts = stored
            tape.last_id = last_id
            if now - last_ts > self.policy.max_backfill_ms:
                start_id = await self._first_id_since(symbol, now - self.policy.max_backfill_ms)
                if start_id is not None:
                    self._record_hole(symbol, tape.skip_to(start_id), reason="max_backfill")
        elif self.policy.initial_backfill_ms > 0:
            start_id = await self._first_id_since(symbol, now - self.policy.initial_backfill_ms)
            if start_id is not None:
                tape.last_id = start_id - 1
        self._catch_up[symbol].set()
        self._wake[symbol].set()
        self._log.info("collector.tape_start", symbol=symbol, after_id=tape.last_id)

    async def _first_id_since(self, symbol: str, since_ms: int) -> int | None:
        """The first aggTrade id at or after ``since_ms`` (hour-long windows, as REST allows)."""
        start = since_ms
        while start < self._clock.time_ms():
            rows = await self._call_rest(
                symbol,
                {"symbol": symbol, "startTime": start, "endTime": start + HOUR_MS - 1, "limit": 1},
            )
            if rows:
                return int(rows[0]["a"])
            start += HOUR_MS
        return None

    # -- stream side (synchronous, per message) -------------------------------

    def _on_frame(self, frame: bytes) -> None:
        data = decode_combined(frame).data
        if self._newest_event_ms < data.E:
            self._newest_event_ms = data.E
        if type(data) is AggTradeEvent:
            tape = self.tapes.get(data.s)
            if tape is None:
                return
            duplicates = tape.counters.duplicates
            had_gap = tape.held_count > 0
            tape.add(data.a, data.T, float(data.p), float(data.q), data.f, data.l, data.m)
            if tape.counters.duplicates != duplicates:
                DUPLICATES.inc()
            if tape.held_count and not had_gap:
                self._wake[data.s].set()
            if tape.pending() >= self.policy.max_pending_rows:
                self._may_read.clear()
        elif type(data) is MarkPriceEvent:
            self._events.append(
                MarkPrice(
                    symbol=data.s,
                    ts=data.E,
                    mark_price=float(data.p),
                    index_price=float(data.i),
                    estimated_settle_price=float(data.P) if data.P else None,
                    funding_rate=float(data.r) if data.r else 0.0,
                    next_funding_time=data.T,
                )
            )
        elif type(data) is ForceOrderEvent:
            self._on_liquidation(data)

    def _on_liquidation(self, data: ForceOrderEvent) -> None:
        order = data.o
        event = Liquidation(
            symbol=order.s,
            ts=order.T,
            event_time=data.E,
            side="BUY" if order.S == "BUY" else "SELL",
            order_type=order.o,
            time_in_force=order.f,
            qty=float(order.q),
            price=float(order.p),
            avg_price=float(order.ap),
            status=order.X,
            last_qty=float(order.l),
            filled_qty=float(order.z),
        )
        key = (event.symbol, event.ts, event.side, event.avg_price, event.filled_qty)
        if key in self._seen_liquidations:  # the same push on two connections (rotation)
            return
        self._seen_liquidations[key] = None
        if len(self._seen_liquidations) > 10_000:
            self._seen_liquidations.popitem(last=False)
        self._events.append(event)

    async def _on_connected(self, connection_number: int) -> None:
        if connection_number > 1:  # a reconnect: fetch whatever passed while we were away
            for symbol in self.symbols:
                self._catch_up[symbol].set()
                self._wake[symbol].set()

    # -- flushing to the channel ----------------------------------------------

    async def _flush_loop(self) -> None:
        while True:
            stopping = self._stopping.is_set()
            await self.flush()
            if stopping:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.policy.flush_interval_s)

    async def flush(self) -> None:
        received = self._clock.time_ms()
        delivered = self._newest_event_ms
        events, self._events = self._events, []
        for event in events:
            await self._out.put(event)
        for symbol, tape in self.tapes.items():
            batch = tape.take(received)
            if batch is not None:
                await self._out.put(batch)
                delivered = max(delivered, batch.ts[-1])  # trades fetched over REST too
            HELD.labels(symbol).set(tape.held_count)
        self.exchange_clock.observe(delivered)
        self._may_read.set()

    # -- repair ---------------------------------------------------------------

    async def _repair_loop(self, symbol: str) -> None:
        tape = self.tapes[symbol]
        wake = self._wake[symbol]
        while not self._stopping.is_set():
            await wake.wait()
            wake.clear()
            if self._stopping.is_set():
                return
            if self._catch_up[symbol].is_set():
                self._catch_up[symbol].clear()
                await self._fetch_forward(symbol, until_id=None)
                self._caught_up_symbols.add(symbol)
                if self._caught_up_symbols >= set(self.symbols) and not self.caught_up.is_set():
                    self.caught_up.set()
                    self._log.info("collector.caught_up", symbols=self.symbols)
            if tape.gap() is None:
                continue
            await asyncio.sleep(self.policy.repair_grace_s)
            gap = tape.gap()
            if gap is None:
                continue
            self._record_gap(symbol, gap, "seen")
            self._log.info("collector.gap_detected", symbol=symbol, from_id=gap[0], to_id=gap[1])
            holes_before = self.holes_recorded
            await self._fetch_forward(symbol, until_id=gap[1])
            closed = tape.last_id is not None and tape.last_id >= gap[1]
            if closed and self.holes_recorded == holes_before:
                self._record_gap(symbol, gap, "repaired")
                self._log.info(
                    "collector.gap_repaired", symbol=symbol, from_id=gap[0], to_id=gap[1]
                )
            if tape.gap() is not None:
                wake.set()

    async def _fetch_forward(self, symbol: str, until_id: int | None) -> None:
        """Fetch from the tape's next id until ``until_id`` (or until REST has no more)."""
        tape = self.tapes[symbol]
        empty_answers = 0
        while not self._stopping.is_set():
            if tape.last_id is None:
                return
            start = tape.last_id + 1
            if until_id is not None and start > until_id:
                return
            rows = await self._call_rest(
                symbol, {"symbol": symbol, "fromId": start, "limit": AGG_TRADES_LIMIT}
            )
            if not rows:
                if until_id is None:
                    return
                empty_answers += 1  # REST may trail the stream by a moment
                if empty_answers > 20:
                    return
                await asyncio.sleep(min(2.0, 0.05 * 2**empty_answers))
                continue
            first = int(rows[0]["a"])
            if first > start:
                self._record_hole(symbol, tape.skip_to(first), reason="not_in_rest_history")
            for row in rows:
                tape.add(
                    int(row["a"]),
                    int(row["T"]),
                    float(row["p"]),
                    float(row["q"]),
                    int(row["f"]),
                    int(row["l"]),
                    bool(row["m"]),
                )
            TRADES_IN.inc(len(rows))
            if len(rows) < AGG_TRADES_LIMIT and until_id is None:
                return

    async def _call_rest(self, symbol: str, params: dict[str, object]) -> list[dict[str, Any]]:
        return await fetch_agg_trades(self._rest, symbol, params)

    # -- bookkeeping ----------------------------------------------------------

    def _record_gap(
        self, symbol: str, gap: tuple[int, int], outcome: Literal["seen", "repaired", "hole"]
    ) -> None:
        GAPS.labels(outcome).inc()
        self._events.append(TapeGap(symbol, gap[0], gap[1], outcome))

    def _record_hole(self, symbol: str, hole: tuple[int, int] | None, reason: str) -> None:
        if hole is None:
            return
        self.holes_recorded += 1
        self._record_gap(symbol, hole, "hole")
        self._log.warning(
            "collector.hole_recorded", symbol=symbol, from_id=hole[0], to_id=hole[1], reason=reason
        )
