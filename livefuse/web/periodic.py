"""A task on the event loop that wakes every `interval` seconds until stopped (the server's probes)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod


class Periodic(ABC):
    """Calls `tick(late_ns)` every `interval` seconds on the loop; `late_ns`: how much later than due it woke."""

    interval = 1.0

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    @abstractmethod
    def tick(self, late_ns: int) -> None:
        """One wake-up (on the loop: keep it short)."""

    def start(self) -> None:
        """Begin (call on the loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            due = time.monotonic_ns() + int(self.interval * 1e9)
            await asyncio.sleep(self.interval)
            self.tick(max(0, time.monotonic_ns() - due))

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
