"""Per-session figures in /metrics, labelled `session="<id>"`, read from each pipeline when scraped; and the
cross-stream batches formed per model (sizes, queue delay) when batching is on."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from livefuse.engine.shared import SessionPool
from livefuse.web.sessions import Sessions


class SessionCollector(Collector):
    """Frames, drops, fps, latency percentiles and budget of every session; costs nothing per frame."""

    def __init__(self, sessions: Sessions, pool: SessionPool) -> None:
        self._sessions = sessions
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        sessions = list(self._sessions)
        yield GaugeMetricFamily(
            "livefuse_sessions", "Sessions (WHIP ingests and camera peers) running.", value=len(sessions)
        )
        frames_in = CounterMetricFamily(
            "livefuse_session_frames_in", "Frames a session received.", labels=["session", "preset"]
        )
        frames_out = CounterMetricFamily(
            "livefuse_session_frames_out", "Filtered frames a session sent back.", labels=["session", "preset"]
        )
        dropped = CounterMetricFamily(
            "livefuse_session_frames_dropped", "Frames a session skipped (busy).", labels=["session", "preset"]
        )
        fps = GaugeMetricFamily(
            "livefuse_session_fps", "A session's output frame rate so far.", labels=["session", "preset"]
        )
        latency = GaugeMetricFamily(
            "livefuse_session_latency_seconds",
            "Capture to output in the daemon, over a session's recent frames.",
            labels=["session", "preset", "quantile"],
        )
        budget = GaugeMetricFamily(
            "livefuse_session_budget_seconds",
            "A session's glass-to-glass latency budget.",
            labels=["session", "preset"],
        )
        for peer in sessions:
            assert peer.runtime is not None
            stats = peer.runtime.pipeline.stats
            labels = [peer.id, peer.runtime.preset.name]
            frames_in.add_metric(labels, stats.frames_in)
            frames_out.add_metric(labels, stats.frames_out)
            dropped.add_metric(labels, stats.dropped)
            fps.add_metric(labels, stats.fps)
            budget.add_metric(labels, self._sessions.budget(peer) / 1e3)
            recent = self._sessions.recent_latency(peer)
            if recent is not None:
                for quantile, key in (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99")):
                    latency.add_metric([*labels, quantile], recent[key] / 1e3)
        yield from (frames_in, frames_out, dropped, fps, latency, budget)
        yield from self._batches()

    def _batches(self) -> Iterator[Metric]:
        batches = CounterMetricFamily(
            "livefuse_batches", "Cross-stream batches run, by model and items in them.", labels=["model", "size"]
        )
        delay = GaugeMetricFamily(
            "livefuse_batch_queue_delay_seconds",
            "How long requests waited for their batch.",
            labels=["model", "quantile"],
        )
        for batcher in self._pool.batchers():
            for size, count in batcher.sizes().items():
                batches.add_metric([batcher.name, str(size)], count)
            summary = batcher.delay()
            for quantile, key in (("0.5", "p50"), ("0.99", "p99")):
                delay.add_metric([batcher.name, quantile], summary[key] / 1e3)
        yield from (batches, delay)
