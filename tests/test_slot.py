"""LatestSlot: the one-item mailbox that keeps the pipeline free of queues."""

from __future__ import annotations

import asyncio

import pytest

from livefuse.slot import LatestSlot, SlotClosed


def test_put_overwrites_and_counts_the_dropped_item() -> None:
    async def scenario() -> None:
        slot: LatestSlot[int] = LatestSlot("t")
        for i in range(1000):
            slot.put(i)
        assert slot.dropped == 999
        assert await slot.get(timeout=0.1) == 999
        assert slot.take_nowait() is None  # nothing queued behind the newest

    asyncio.run(scenario())


def test_get_times_out_with_none_and_wakes_on_put() -> None:
    async def scenario() -> None:
        slot: LatestSlot[str] = LatestSlot()
        assert await slot.get(timeout=0.01) is None
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, slot.put, "x")
        assert await slot.get(timeout=5.0) == "x"
        assert slot.dropped == 0

    asyncio.run(scenario())


def test_close_delivers_the_waiting_item_then_raises() -> None:
    async def scenario() -> None:
        slot: LatestSlot[int] = LatestSlot()
        slot.put(1)
        slot.close()
        slot.put(2)  # ignored once closed, and not counted as dropped
        assert slot.closed
        assert await slot.get() == 1
        with pytest.raises(SlotClosed):
            await slot.get()
        with pytest.raises(SlotClosed):
            await slot.get(timeout=0.01)
        assert slot.dropped == 0

    asyncio.run(scenario())


def test_close_wakes_a_waiting_consumer() -> None:
    async def scenario() -> None:
        slot: LatestSlot[int] = LatestSlot()
        waiter = asyncio.create_task(slot.get())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        slot.close()
        with pytest.raises(SlotClosed):
            await asyncio.wait_for(waiter, 5.0)

    asyncio.run(scenario())
