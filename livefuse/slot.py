"""One-slot latest-value mailboxes between pipeline stages.

A producer never waits: putting into a full slot replaces the older item and
counts it as dropped. So a slow consumer sees the newest frame and no backlog
ever builds. `ThreadSlot` is the one the pipeline uses: producers and consumers are
threads, so no frame goes through the asyncio loop. `LatestSlot` is the same mailbox for
code that lives on the loop (used from the loop's thread only).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class SlotClosed(Exception):
    """The slot was closed and holds nothing more."""


class _Mailbox(Generic[T]):
    """The drop-and-count core both slots share; each adds its own way of waking the consumer."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dropped = 0
        self._item: T | None = None
        self._closed = False

    def _offer(self, item: T) -> bool:
        """Hold `item`, dropping (and counting) one not yet taken; False once closed (nothing held)."""
        if self._closed:
            return False
        if self._item is not None:
            self.dropped += 1
        self._item = item
        return True

    def _take(self) -> T | None:
        item, self._item = self._item, None
        return item

    @property
    def closed(self) -> bool:
        return self._closed


class LatestSlot(_Mailbox[T]):
    """Holds at most one item; `put` overwrites, `get` waits (on the loop) for the next one."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._has_item = asyncio.Event()

    def put(self, item: T) -> bool:
        """Offer an item; an item not yet taken is dropped and counted. False once closed (ignored)."""
        if not self._offer(item):
            return False
        self._has_item.set()
        return True

    def take_nowait(self) -> T | None:
        """The pending item, if any, without waiting."""
        self._has_item.clear()
        return self._take()

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


class ThreadSlot(_Mailbox[T]):
    """LatestSlot's behaviour between threads: any thread may put, take or close; `get` blocks its caller."""

    def __init__(self, name: str = "") -> None:
        super().__init__(name)
        self._changed = threading.Condition()

    def put(self, item: T) -> bool:
        """Offer an item (never waits); an item not yet taken is dropped and counted. False once closed."""
        with self._changed:
            if not self._offer(item):
                return False
            self._changed.notify()
            return True

    def take_nowait(self) -> T | None:
        """The pending item, if any, without waiting."""
        with self._changed:
            return self._take()

    def get(self, timeout: float | None = None) -> T | None:
        """The next item; None when `timeout` seconds pass first. Raises SlotClosed once closed and empty."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._item is not None or self._closed, timeout):
                return None
            if self._item is None:
                raise SlotClosed(self.name)
            return self._take()

    def close(self) -> None:
        """Wake the consumer; it still receives an item already waiting, then SlotClosed."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()
