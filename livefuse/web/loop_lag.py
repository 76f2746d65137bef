"""How late the event loop runs what is due: `livefuse_loop_lag_seconds`.

Signalling, every peer's RTP and every session's frame hand-offs share one asyncio loop, so any
per-frame work done on it shows up as lag for all of them. A probe task sleeps a fixed interval and
records how much later than asked it woke: on a responsive loop that is well under a millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque

from prometheus_client import CollectorRegistry, Histogram

from livefuse.stats import percentiles_ms

LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
PROBE_INTERVAL_S = 0.05


class LoopLagProbe:
    """A task on the loop measuring its own wake-up delay, into a histogram and a recent window."""

    def __init__(self, registry: CollectorRegistry, interval: float = PROBE_INTERVAL_S) -> None:
        self.interval = interval
        self.histogram = Histogram("livefuse_loop_lag_seconds", "How much later than due the event loop woke a "
                                   "sleeping task (a probe every 50 ms).", registry=registry, buckets=LAG_BUCKETS)
        self.recent: deque[int] = deque(maxlen=1200)  # the last minute of samples, in ns
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin probing (call on the loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._probe())

    async def _probe(self) -> None:
        while True:
            due = time.monotonic_ns() + int(self.interval * 1e9)
            await asyncio.sleep(self.interval)
            lag_ns = max(0, time.monotonic_ns() - due)
            self.recent.append(lag_ns)
            self.histogram.observe(lag_ns / 1e9)

    def summary(self) -> dict[str, float]:
        """Recent lag percentiles in milliseconds (for /api/status)."""
        return percentiles_ms(self.recent)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
