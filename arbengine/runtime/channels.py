"""Bounded in-memory channels between components, each with a stated overflow policy.

- ``BLOCK``: the producer waits for room (backpressure). For data that must
  never be lost: trades, indicators, signals, orders. Every wait is counted
  and timed so a slow consumer shows up in metrics, not as silent loss.
- ``DROP_OLDEST``: the oldest item is discarded to make room. For derived
  snapshots where only recent values matter (a dashboard feed).

A closed channel refuses new items but still hands out what it holds; a
consumer's ``async for`` ends once it is closed *and* empty. That is how
shutdown drains: close the inputs, let consumers finish, then flush.

Depths and counters are plain integers read at scrape time by one collector,
so the hot path pays nothing for metrics.
"""

from __future__ import annotations

import asyncio
import enum
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Generic, Protocol, TypeVar, cast

from prometheus_client import Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)

PUT_WAIT = Histogram(
    "arb_channel_put_wait_seconds",
    "Time a producer waited for room in a full BLOCK channel",
    ["channel"],
    buckets=(0.001, 0.005, 0.025, 0.1, 0.5, 2.5, 10.0),
)


class OverflowPolicy(enum.Enum):
    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"


class ChannelClosed(Exception):
    """Raised by ``put`` on a closed channel, and by ``get`` once closed and empty."""


class Channel(Generic[T]):
    def __init__(self, name: str, capacity: int, policy: OverflowPolicy) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.name = name
        self.capacity = capacity
        self.policy = policy
        self._items: deque[T] = deque()
        self._closed = False
        self._readable = asyncio.Event()
        self._writable = asyncio.Event()
        self._writable.set()
        self.put_total = 0
        self.dropped_total = 0
        self.waits_total = 0
        _COLLECTOR.channels.add(cast("Channel[object]", self))

    def __len__(self) -> int:
        return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Refuse further puts; consumers finish what is queued, then stop."""
        self._closed = True
        self._readable.set()
        self._writable.set()

    def put_nowait(self, item: T) -> bool:
        """Add without waiting. Returns False when a BLOCK channel is full."""
        if self._closed:
            raise ChannelClosed(self.name)
        if len(self._items) >= self.capacity:
            if self.policy is OverflowPolicy.BLOCK:
                return False
            self._items.popleft()
            self.dropped_total += 1
        self._append(item)
        return True

    async def put(self, item: T) -> None:
        if self.put_nowait(item):
            return
        started = time.perf_counter()
        self.waits_total += 1
        while len(self._items) >= self.capacity and not self._closed:
            self._writable.clear()
            await self._writable.wait()
        waited = time.perf_counter() - started
        PUT_WAIT.labels(self.name).observe(waited)
        if self._closed:
            raise ChannelClosed(self.name)
        self._append(item)

    def _append(self, item: T) -> None:
        self._items.append(item)
        self.put_total += 1
        self._readable.set()

    async def get(self) -> T:
        while not self._items:
            if self._closed:
                raise ChannelClosed(self.name)
            self._readable.clear()
            await self._readable.wait()
        return self._take()

    def get_nowait_many(self, limit: int) -> list[T]:
        """Everything queued, up to ``limit`` items, without waiting."""
        taken: list[T] = []
        while self._items and len(taken) < limit:
            taken.append(self._items.popleft())
        if taken:
            self._writable.set()
        return taken

    async def get_many(self, limit: int) -> list[T]:
        """Wait for at least one item, then take up to ``limit`` (batching consumers)."""
        first = await self.get()
        return [first, *self.get_nowait_many(limit - 1)]

    def _take(self) -> T:
        item = self._items.popleft()
        self._writable.set()
        return item

    async def __aiter__(self) -> AsyncIterator[T]:
        while True:
            try:
                yield await self.get()
            except ChannelClosed:
                return


class Sink(Protocol[T_contra]):
    """Anything events can be put into: a channel, or a fan-out to several."""

    async def put(self, item: T_contra) -> None: ...


class Fanout(Generic[T]):
    """One producer, several channels: each consumer gets every item (per its own policy)."""

    def __init__(self, outputs: Iterable[Channel[T]]) -> None:
        self.outputs = list(outputs)

    async def put(self, item: T) -> None:
        for channel in self.outputs:
            await channel.put(item)

    def close(self) -> None:
        for channel in self.outputs:
            channel.close()


class _ChannelCollector(Collector):
    def __init__(self) -> None:
        self.channels: weakref.WeakSet[Channel[object]] = weakref.WeakSet()

    def collect(self) -> Iterable[GaugeMetricFamily | CounterMetricFamily]:
        depth = GaugeMetricFamily("arb_channel_depth", "Items queued", labels=["channel"])
        capacity = GaugeMetricFamily("arb_channel_capacity", "Channel bound", labels=["channel"])
        put = CounterMetricFamily("arb_channel_put", "Items accepted", labels=["channel"])
        dropped = CounterMetricFamily(
            "arb_channel_dropped", "Items dropped by a DROP_OLDEST channel", labels=["channel"]
        )
        waits = CounterMetricFamily(
            "arb_channel_put_waits", "Puts that had to wait for room", labels=["channel"]
        )
        for ch in list(self.channels):
            depth.add_metric([ch.name], len(ch))
            capacity.add_metric([ch.name], ch.capacity)
            put.add_metric([ch.name], ch.put_total)
            dropped.add_metric([ch.name], ch.dropped_total)
            waits.add_metric([ch.name], ch.waits_total)
        yield from (depth, capacity, put, dropped, waits)


_COLLECTOR = _ChannelCollector()
REGISTRY.register(_COLLECTOR)
