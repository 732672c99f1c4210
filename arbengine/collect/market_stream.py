"""The market stream collector: aggTrade, markPrice@1s and forceOrder for every symbol.

Owns one ``TapeSequencer`` per symbol and keeps it complete:

- every aggTrade from the stream goes into the tape; the tape hands out only
  the next contiguous run of ids and holds anything past a gap;
- a gap still open after ``repair_grace`` (a reordered frame closes itself
  sooner) is repaired over REST (``fromId``, ≤ 1000 per call, weight 20, at
  the client's REPAIR priority: after live polls, before history);
- at start-up and after every reconnect the tape catches up over REST from
  its last id, so trades missed while disconnected (or while the daemon was
  down) are fetched even if the market is quiet; a catch-up reaching back
  further than ``max_backfill`` starts there instead and records the hole
  (progress: the ``agg_trades`` series of ``BackfillProgress``);
- ids that REST no longer has (older than its history) become a recorded hole;
- ids going backwards (an exchange reset, a tape from another venue) are
  dropped, never stored over the tape we have: logged as the error
  ``collector.trade_ids_backwards`` and reported on the health board for as
  long as it lasts.

Only the symbols the exchange lists are followed (``SymbolListing``): one
that turns out unlisted (``-1121``) stops alone, its streams left out from
the next connection on, and the other symbols carry on.

Everything that leaves the tape, plus mark prices and liquidations, is put
on the market channel by a flusher every ``flush_interval``, the other events
of a window before its trades; when the channel is full the websocket reads
pause (backpressure), they are never dropped. The event times ``E`` of the
frames a flush delivered (and the times of the trades it delivered, some
fetched over REST) then advance the exchange clock (``RemoteClock``), on
which the engine decides when events have had time to arrive: only after the
delivery, and never past the last trade delivered of a tape with a gap open
(the missing trades are no older), so this part of the clock never runs ahead
of what the channel has been given (which matters where the market runs faster
than the wall clock, in the sim). Likewise a symbol's catch-up after start is
announced (``caught_up`` once all have; per symbol as the ``tape`` input on the
``Readiness`` board, which the engine waits for) by the flush that delivers the
trades the catch-up fetched.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client import Counter, Gauge

from arbengine.collect.listing import SymbolListing
from arbengine.collect.progress import BackfillProgress
from arbengine.collect.rest_trades import AGG_TRADES_LIMIT, fetch_agg_trades
from arbengine.collect.tape_sequencer import TapeSequencer
from arbengine.domain.market import TAPE_INPUT, Liquidation, MarketEvent, MarkPrice, TapeGap
from arbengine.exchange.budget import Priority
from arbengine.exchange.exchange_errors import InvalidSymbol
from arbengine.exchange.payloads import (
    AggTradeWire,
    ForceOrderEvent,
    MarkPriceEvent,
    decode_combined,
    number_or_none,
)
from arbengine.exchange.rest import BinanceRest
from arbengine.exchange.streams import CombinedStream, StreamPolicy, split_streams
from arbengine.logs import get_logger
from arbengine.runtime.backoff import EXCHANGE_REST_CATCH_UP, Stopped
from arbengine.runtime.channels import Sink
from arbengine.runtime.clock import Clock, RemoteClock, SystemClock
from arbengine.runtime.delivered_inputs import Readiness
from arbengine.runtime.health import HealthBoard

HOUR_MS = 3_600_000

TRADES_IN = Counter("arb_tape_rest_trades", "Trades fetched over REST into a tape")
DUPLICATES = Counter("arb_tape_duplicates", "Trades dropped as already on the tape")
GAPS = Counter("arb_tape_gaps", "Gaps by outcome", ["outcome"])
HELD = Gauge("arb_tape_held", "Trades held behind a gap", ["symbol"])
BACKWARDS = Counter(
    "arb_tape_backwards", "Trades dropped because their ids went backwards", ["symbol"]
)
STREAM_KINDS = ("aggTrade", "markPrice@1s", "forceOrder")


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
        listing: SymbolListing | None = None,
        health: HealthBoard | None = None,
        progress: BackfillProgress | None = None,
        readiness: Readiness | None = None,
        on_hole: Callable[[str, int, int, str], None] | None = None,
    ) -> None:
        """``on_hole``: told of every hole recorded (symbol, first and last missing id,
        reason); it must not wait (the daemon's notifier queues an alert)."""
        self.symbols = [s.upper() for s in symbols]
        self._on_hole = on_hole
        self.progress = progress or BackfillProgress()
        self._readiness = readiness
        self._rest = rest
        self._out = out
        self._listing = listing
        self._health = health
        self.policy = policy or CollectorPolicy()
        self._clock = clock or SystemClock()
        self.exchange_clock = exchange_clock or RemoteClock(self._clock)
        self._newest_event_ms = 0
        self._log = get_logger("collector")
        self.tapes = {s: TapeSequencer(s) for s in self.symbols}
        self._receiving = dict(self.tapes)
        """Tapes of the symbols followed: frames of any other symbol are ignored."""
        self._backwards: set[str] = set()
        self._last_stored = dict(last_stored or {})
        self._prepared: set[str] = set()
        self._wake = {s: asyncio.Event() for s in self.symbols}
        self._catch_up = {s: asyncio.Event() for s in self.symbols}
        self._events: list[MarketEvent] = []
        self._seen_liquidations: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self._may_read = asyncio.Event()
        self._may_read.set()
        self._stopping = asyncio.Event()
        self._holes_by_symbol: dict[str, int] = dict.fromkeys(self.symbols, 0)
        self.caught_up = asyncio.Event()
        """Set once every symbol's tape has caught up over REST after start-up."""
        self._caught_up_symbols: set[str] = set()
        self._caught_up_taken: set[str] = set()
        """Caught up over REST, announced by the next flush (which delivers the trades)."""
        names = [f"{s.lower()}@{kind}" for s in self.symbols for kind in STREAM_KINDS]
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
                health=health,
            )
            for i, group in enumerate(split_streams(names, self.policy.streams_per_connection))
        ]
        if listing is not None:
            listing.on_stop(self.drop_symbol)

    def drop_symbol(self, symbol: str) -> None:
        """Stop following ``symbol``: what it already delivered is still flushed."""
        if self._receiving.pop(symbol, None) is None:
            return
        self.progress.drop(symbol)
        names = [f"{symbol.lower()}@{kind}" for kind in STREAM_KINDS]
        for stream in self.streams:
            stream.remove(names)
        self._wake[symbol].set()  # its repair loop sees it is no longer followed and returns
        self._check_caught_up()
        if not self._receiving:
            self._log.error("collector.no_symbol_left", symbols=self.symbols)

    # -- lifecycle ------------------------------------------------------------

    def request_stop(self) -> None:
        """Stop reading, hand everything already received to the channel, return."""
        self._stopping.set()
        for stream in self.streams:
            stream.request_stop()
        for event in self._wake.values():
            event.set()

    async def run(self) -> None:
        if self._listing is not None:
            if not await self._listing.wait_checked(self._stopping):
                return
            for symbol in self.symbols:  # before any connection asks for its streams
                if not self._listing.is_active(symbol):
                    self.drop_symbol(symbol)
        self.progress.begin("agg_trades", self._receiving)
        for symbol in list(self._receiving):
            if symbol not in self._prepared:
                try:
                    await self._prepare(symbol)
                except InvalidSymbol as exc:
                    self._symbol_lost(symbol, exc)
                    continue
                self._prepared.add(symbol)
        async with asyncio.TaskGroup() as group:
            for stream in self.streams:
                group.create_task(stream.run(), name=stream.name)
            for symbol in list(self._receiving):
                group.create_task(self._repair_loop(symbol), name=f"repair:{symbol}")
            group.create_task(self._flush_loop(), name="flush")

    def _symbol_lost(self, symbol: str, exc: InvalidSymbol) -> None:
        """The exchange does not know ``symbol`` (any more): it stops, the others go on."""
        reason = f"the exchange answered {exc}"
        if self._listing is not None:
            self._listing.stop(symbol, reason)  # tells every collector, this one included
        else:
            self._log.warning("collect.symbol_stopped", symbol=symbol, reason=reason)
        self.drop_symbol(symbol)

    async def _prepare(self, symbol: str) -> None:
        """Fix where the tape starts: after the last stored id, bounded by max_backfill."""
        tape = self.tapes[symbol]
        now = self._clock.time_ms()
        stored = self._last_stored.get(symbol)
        if stored is not None:
            last_id, last_ts = stored
            tape.last_id = last_id
            tape.last_ts = last_ts
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
                return rows[0].a
            start += HOUR_MS
        return None

    # -- stream side (synchronous, per message) -------------------------------

    def _on_frame(self, frame: bytes) -> None:
        data = decode_combined(frame).data
        if self._newest_event_ms < data.E:
            self._newest_event_ms = data.E
        if type(data) is AggTradeWire:
            tape = self._receiving.get(data.s)
            if tape is None:
                return
            duplicates = tape.counters.duplicates
            backwards = tape.counters.backwards
            had_gap = tape.held_count > 0
            tape.add(data.a, data.T, data.p, data.q, data.f, data.l, data.m)
            if tape.counters.duplicates != duplicates:
                DUPLICATES.inc()
            elif tape.counters.backwards != backwards:
                self._on_backwards(tape)
            if tape.held_count and not had_gap:
                self._wake[data.s].set()
            if tape.pending() >= self.policy.max_pending_rows:
                self._may_read.clear()
        elif type(data) is MarkPriceEvent:
            if data.s not in self._receiving:
                return
            funding_rate = number_or_none(data.r)
            self._events.append(
                MarkPrice(
                    symbol=data.s,
                    ts=data.E,
                    mark_price=data.p,
                    index_price=data.i,
                    estimated_settle_price=number_or_none(data.P),
                    funding_rate=0.0 if funding_rate is None else funding_rate,
                    next_funding_time=data.T,
                )
            )
        elif type(data) is ForceOrderEvent:
            self._on_liquidation(data)

    def _on_backwards(self, tape: TapeSequencer) -> None:
        BACKWARDS.labels(tape.symbol).inc()
        seen = tape.backwards_seen
        if tape.symbol in self._backwards or seen is None:
            return
        self._backwards.add(tape.symbol)
        self._log.error(
            "collector.trade_ids_backwards",
            symbol=tape.symbol,
            received_id=seen.agg_id,
            received_ts=seen.ts,
            last_id=seen.last_id,
            last_ts=seen.last_ts,
            action="dropped: the stored tape is never overwritten",
            hint="the exchange reset its ids, or the database holds another venue's tape",
        )
        self._report_backwards(tape)

    def _report_backwards(self, tape: TapeSequencer) -> None:
        seen = tape.backwards_seen
        if self._health is None or seen is None:
            return
        self._health.report(
            "collector",
            f"trade ids went backwards: received id {seen.agg_id} (time {seen.ts}) after "
            f"id {seen.last_id} (time {seen.last_ts}); {tape.counters.backwards} trades "
            "dropped so far",
            subject=tape.symbol,
        )

    def _check_backwards(self) -> None:
        """Once per flush: refresh the count on the board, or end the episode."""
        for symbol in list(self._backwards):
            tape = self.tapes[symbol]
            if tape.backwards_seen is not None and symbol in self._receiving:
                self._report_backwards(tape)
                continue
            self._backwards.discard(symbol)
            if self._health is not None:
                self._health.clear("collector", subject=symbol)
            self._log.info("collector.trade_ids_forward_again", symbol=symbol, last_id=tape.last_id)

    def _on_liquidation(self, data: ForceOrderEvent) -> None:
        order = data.o
        event = Liquidation(
            symbol=order.s,
            ts=order.T,
            event_time=data.E,
            side="BUY" if order.S == "BUY" else "SELL",
            order_type=order.o,
            time_in_force=order.f,
            qty=order.q,
            price=order.p,
            avg_price=order.ap,
            status=order.X,
            last_qty=order.l,
            filled_qty=order.z,
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
            for symbol in self._receiving:
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
        caught_up, self._caught_up_taken = self._caught_up_taken, set()
        for symbol, tape in self.tapes.items():
            batch = tape.take(received)
            if batch is not None:
                await self._out.put(batch)
                delivered = max(delivered, int(batch.ts[-1]))  # trades fetched over REST too
            HELD.labels(symbol).set(tape.held_count)
            complete = tape.complete_until() if symbol in self._receiving else None
            if complete is not None:  # never past trades still missing behind a gap
                delivered = min(delivered, complete)
        self.exchange_clock.observe(delivered)
        if caught_up:  # only now that its caught-up trades are on the channel
            self._caught_up_symbols |= caught_up
            if self._readiness is not None:
                self._readiness.done_all(sorted(caught_up), TAPE_INPUT)
            self._check_caught_up()
        self._may_read.set()
        if self._backwards:
            self._check_backwards()

    # -- repair ---------------------------------------------------------------

    def _check_caught_up(self) -> None:
        if self._caught_up_symbols >= set(self._receiving) and not self.caught_up.is_set():
            self.caught_up.set()
            self._log.info("collector.caught_up", symbols=list(self._receiving))

    async def _repair_loop(self, symbol: str) -> None:
        try:
            await self._repairing(symbol)
        except InvalidSymbol as exc:
            self._symbol_lost(symbol, exc)

    async def _repairing(self, symbol: str) -> None:
        tape = self.tapes[symbol]
        wake = self._wake[symbol]
        while not self._stopping.is_set():
            await wake.wait()
            wake.clear()
            if self._stopping.is_set() or symbol not in self._receiving:
                return
            if self._catch_up[symbol].is_set():
                self._catch_up[symbol].clear()
                await self._fetch_forward(symbol, until_id=None)
                self._caught_up_taken.add(symbol)
                self.progress.done("agg_trades", symbol)
            if tape.gap() is None:
                continue
            await asyncio.sleep(self.policy.repair_grace_s)
            gap = tape.gap()
            if gap is None:
                continue
            self._record_gap(symbol, gap, "seen")
            self._log.info("collector.gap_detected", symbol=symbol, from_id=gap[0], to_id=gap[1])
            holes_before = self._holes_by_symbol[symbol]
            await self._fetch_forward(symbol, until_id=gap[1])
            closed = tape.last_id is not None and tape.last_id >= gap[1]
            if closed and self._holes_by_symbol[symbol] == holes_before:
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
                delay = EXCHANGE_REST_CATCH_UP.delay(empty_answers)
                if not await self._clock.sleep(delay, self._stopping):
                    return
                continue
            first = rows[0].a
            if first > start:
                self._record_hole(symbol, tape.skip_to(first), reason="not_in_rest_history")
            for row in rows:
                tape.add(row.a, row.T, row.p, row.q, row.f, row.l, row.m)
            TRADES_IN.inc(len(rows))
            if len(rows) < AGG_TRADES_LIMIT and until_id is None:
                return

    async def _call_rest(self, symbol: str, params: dict[str, object]) -> list[AggTradeWire]:
        if not self.progress.is_done("agg_trades", symbol):
            self.progress.request("agg_trades")
        try:
            return await fetch_agg_trades(
                self._rest, symbol, params, Priority.REPAIR, self._stopping, clock=self._clock
            )
        except Stopped:
            return []  # the repair loops see the stop and end; what was received is flushed

    # -- bookkeeping ----------------------------------------------------------

    def _record_gap(
        self, symbol: str, gap: tuple[int, int], outcome: Literal["seen", "repaired", "hole"]
    ) -> None:
        GAPS.labels(outcome).inc()
        self._events.append(TapeGap(symbol, gap[0], gap[1], outcome))

    def _record_hole(self, symbol: str, hole: tuple[int, int] | None, reason: str) -> None:
        if hole is None:
            return
        self._holes_by_symbol[symbol] += 1
        self._record_gap(symbol, hole, "hole")
        self._log.warning(
            "collector.hole_recorded", symbol=symbol, from_id=hole[0], to_id=hole[1], reason=reason
        )
        if self._on_hole is not None:
            self._on_hole(symbol, hole[0], hole[1], reason)
