"""Channels: backpressure, drop-oldest, drain on close, metrics at scrape time."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY, generate_latest

from arbengine.runtime.channels import Channel, ChannelClosed, OverflowPolicy


async def test_block_policy_makes_the_producer_wait_for_room() -> None:
    channel: Channel[int] = Channel("block-test", 2, OverflowPolicy.BLOCK)
    await channel.put(1)
    await channel.put(2)
    assert channel.put_nowait(3) is False
    blocked = asyncio.create_task(channel.put(3))
    await asyncio.sleep(0)
    assert not blocked.done()
    assert await channel.get() == 1
    await asyncio.wait_for(blocked, 1)
    assert channel.get_nowait_many(10) == [2, 3]
    assert channel.waits_total == 1
    assert channel.dropped_total == 0


async def test_drop_oldest_policy_keeps_the_newest() -> None:
    channel: Channel[int] = Channel("drop-test", 3, OverflowPolicy.DROP_OLDEST)
    for i in range(5):
        await channel.put(i)
    assert channel.get_nowait_many(10) == [2, 3, 4]
    assert channel.dropped_total == 2


async def test_closed_channel_hands_out_what_it_holds_then_ends() -> None:
    channel: Channel[str] = Channel("close-test", 10, OverflowPolicy.BLOCK)
    await channel.put("a")
    await channel.put("b")
    channel.close()
    with pytest.raises(ChannelClosed):
        await channel.put("c")
    assert [item async for item in channel] == ["a", "b"]
    with pytest.raises(ChannelClosed):
        await channel.get()


async def test_close_wakes_a_waiting_consumer() -> None:
    channel: Channel[int] = Channel("wake-test", 10, OverflowPolicy.BLOCK)
    consumer = asyncio.create_task(channel.get())
    await asyncio.sleep(0)
    channel.close()
    with pytest.raises(ChannelClosed):
        await asyncio.wait_for(consumer, 1)


async def test_get_many_batches_what_is_queued() -> None:
    channel: Channel[int] = Channel("batch-test", 100, OverflowPolicy.BLOCK)
    for i in range(7):
        channel.put_nowait(i)
    assert await channel.get_many(5) == [0, 1, 2, 3, 4]
    assert await channel.get_many(5) == [5, 6]


async def test_metrics_report_depth_and_waits() -> None:
    channel: Channel[int] = Channel("metrics-test", 5, OverflowPolicy.BLOCK)
    for i in range(3):
        channel.put_nowait(i)
    text = generate_latest(REGISTRY).decode()
    assert 'arb_channel_depth{channel="metrics-test"} 3.0' in text
    assert 'arb_channel_capacity{channel="metrics-test"} 5.0' in text
    assert 'arb_channel_put_total{channel="metrics-test"} 3.0' in text
