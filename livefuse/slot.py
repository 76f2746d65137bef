"""One-slot latest-value mailbox between pipeline stages.

A producer never waits: putting into a full slot replaces the older item and
counts it as dropped. So a slow consumer sees the newest frame and no backlog
ever builds. Used only from the asyncio loop's thread (producers in worker
threads hand over with `loop.call_soon_threadsafe(slot.put, item)`).
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class SlotClosed(Exception):
    """The slot was closed and holds nothing more."""


class LatestSlot(Generic[T]):
    """Holds at most one item; `put` overwrites, `get` waits for the next one."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.dropped = 0
        self._item: T | None = None
        self._has_item = asyncio.Event()
        self._closed = False

    def put(self, item: T) -> None:
        """Offer an item; an item not yet taken is dropped and counted."""
        if self._closed:
            return
        if self._item is not None:
            self.dropped += 1
        self._item = item
        self._has_item.set()

    def take_nowait(self) -> T | None:
        """The pending item, if any, without waiting."""
        item, self._item = self._item, None
        self._has_item.clear()
        return item

    async def get(self, timeout: float | None = None) -> T | None:
        """The next item; None when `timeout` seconds pass first. Raises SlotClosed once closed and empty."""
        while self._item is None:
            if self._closed:
                raise SlotClosed(self.name)
            try:
                await asyncio.wait_for(self._has_item.wait(), timeout)
            except TimeoutError:
                return None
        return self.take_nowait()

    def close(self) -> None:
        """Wake the consumer; it still receives an item already waiting, then SlotClosed."""
        self._closed = True
        self._has_item.set()

    @property
    def closed(self) -> bool:
        return self._closed
