"""One-slot latest-value mailboxes between pipeline stages.

A producer never waits: putting into a full slot replaces the older item and
counts it as dropped. So a slow consumer sees the newest frame and no backlog
ever builds. Producers and consumers are threads, so no frame goes through the asyncio loop.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class SlotClosed(Exception):
    """The slot was closed and holds nothing more."""


class ThreadSlot(Generic[T]):
    """Holds at most one item; any thread may put, take or close; `get` blocks its caller."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.dropped = 0
        self._item: T | None = None
        self._closed = False
        self._changed = threading.Condition()

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, item: T) -> bool:
        """Offer an item (never waits); an item not yet taken is dropped and counted. False once closed."""
        with self._changed:
            if self._closed:
                return False
            if self._item is not None:
                self.dropped += 1
            self._item = item
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

    def _take(self) -> T | None:
        item, self._item = self._item, None
        return item
