"""ThreadSlot: the one-item mailbox that keeps the pipeline free of queues."""

from __future__ import annotations

import threading
import time

import pytest

from livefuse.slot import SlotClosed, ThreadSlot

# Between threads (the pipeline's), with a blocking `get`.


def test_thread_slot_put_overwrites_and_counts_the_dropped_item() -> None:
    slot: ThreadSlot[int] = ThreadSlot("t")
    for i in range(1000):
        assert slot.put(i)
    assert slot.dropped == 999
    assert slot.get(timeout=0.1) == 999
    assert slot.take_nowait() is None  # nothing queued behind the newest


def test_thread_slot_get_times_out_with_none_and_wakes_on_put_from_another_thread() -> None:
    slot: ThreadSlot[str] = ThreadSlot()
    started = time.monotonic()
    assert slot.get(timeout=0.05) is None
    assert time.monotonic() - started >= 0.05
    timer = threading.Timer(0.05, slot.put, ("x",))
    timer.start()
    assert slot.get(timeout=5.0) == "x"
    timer.join()
    assert slot.dropped == 0


def test_thread_slot_close_delivers_the_waiting_item_then_raises() -> None:
    slot: ThreadSlot[int] = ThreadSlot()
    slot.put(1)
    slot.close()
    assert not slot.put(2)  # ignored once closed, and not counted as dropped
    assert slot.closed
    assert slot.get() == 1
    with pytest.raises(SlotClosed):
        slot.get()
    with pytest.raises(SlotClosed):
        slot.get(timeout=0.01)
    assert slot.dropped == 0


def test_thread_slot_close_wakes_a_waiting_consumer() -> None:
    slot: ThreadSlot[int] = ThreadSlot()
    raised: list[BaseException] = []

    def consume() -> None:
        try:
            slot.get()
        except SlotClosed as exc:
            raised.append(exc)

    consumer = threading.Thread(target=consume)
    consumer.start()
    time.sleep(0.02)
    assert consumer.is_alive()
    slot.close()
    consumer.join(5.0)
    assert not consumer.is_alive() and len(raised) == 1


def test_thread_slot_loses_no_count_with_producers_and_a_consumer_racing() -> None:
    slot: ThreadSlot[int] = ThreadSlot()
    taken: list[int] = []

    def consume() -> None:
        while True:
            try:
                item = slot.get(timeout=1.0)
            except SlotClosed:
                return
            if item is not None:
                taken.append(item)

    consumer = threading.Thread(target=consume)
    consumer.start()
    producers = [
        threading.Thread(target=lambda base=base: [slot.put(base + i) for i in range(5000)])
        for base in (0, 10_000, 20_000)
    ]
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join()
    slot.close()
    consumer.join(5.0)
    assert len(taken) + slot.dropped == 15_000  # every item was either taken or counted as dropped
    assert len(set(taken)) == len(taken)
