"""How late the event loop runs what is due: `livefuse_loop_lag_seconds`.

Signalling, every peer's RTP and every session's frame hand-offs share one asyncio loop, so any
per-frame work done on it shows up as lag for all of them. A probe task sleeps a fixed interval and
records how much later than asked it woke: on a responsive loop that is well under a millisecond.
"""

from __future__ import annotations

from collections import deque

from prometheus_client import CollectorRegistry, Histogram

from livefuse.stats import percentiles_ms
from livefuse.web.periodic import Periodic

LAG_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
PROBE_INTERVAL_S = 0.05


class LoopLagProbe(Periodic):
    """A task on the loop measuring its own wake-up delay, into a histogram and a recent window."""

    def __init__(self, registry: CollectorRegistry, interval: float = PROBE_INTERVAL_S) -> None:
        super().__init__()
        self.interval = interval
        self.histogram = Histogram(
            "livefuse_loop_lag_seconds",
            "How much later than due the event loop woke a sleeping task (a probe every 50 ms).",
            registry=registry,
            buckets=LAG_BUCKETS,
        )
        self.recent: deque[int] = deque(maxlen=1200)  # the last minute of samples, in ns

    def tick(self, late_ns: int) -> None:
        self.recent.append(late_ns)
        self.histogram.observe(late_ns / 1e9)

    def summary(self) -> dict[str, float]:
        """Recent lag percentiles in milliseconds (for /api/sessions)."""
        return percentiles_ms(self.recent)
