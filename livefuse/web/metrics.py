"""Prometheus metrics for one server, in its own registry.

Counters and gauges are read from `PipelineStats` when scraped, so they cost
nothing per frame. Latency histograms are fed from each emitted frame (a
`pipeline.frame_listeners` callback): one `observe` per stage plus one for the
frame, on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from livefuse.frame import Frame
from livefuse.stats import PipelineStats

if TYPE_CHECKING:
    from livefuse.engine import Engine

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STAGE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.033, 0.05, 0.1, 0.25, 1.0)
FRAME_BUCKETS = (0.005, 0.01, 0.02, 0.033, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)


class _StatsCollector(Collector):
    """Reads the pipeline's counters at scrape time."""

    def __init__(
        self,
        stats: Callable[[], PipelineStats],
        engine: Callable[[], Engine | None],
        peers: Callable[[], int],
        health: Callable[[], list[dict[str, Any]]],
    ) -> None:
        self._stats = stats
        self._engine = engine
        self._peers = peers
        self._health = health

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        yield CounterMetricFamily("livefuse_frames_in", "Frames captured from the source.", value=stats.frames_in)
        yield CounterMetricFamily(
            "livefuse_frames_processed", "Frames run through the filter chain.", value=stats.frames_processed
        )
        yield CounterMetricFamily(
            "livefuse_frames_out", "Frames written by the primary output.", value=stats.frames_out
        )
        yield CounterMetricFamily(
            "livefuse_frames_dropped", "Captured frames skipped because the chain was busy.", value=stats.dropped
        )
        errors = CounterMetricFamily(
            "livefuse_stage_errors",
            "Frames a stage failed on (passed through, or covered for a privacy stage).",
            labels=["stage"],
        )
        for stage, count in stats.stage_errors.items():
            errors.add_metric([stage], count)
        yield errors
        disabled = GaugeMetricFamily(
            "livefuse_stage_disabled",
            "1 while a stage is switched off after failures (retried with backoff), else 0.",
            labels=["stage"],
        )
        for health in self._health():
            disabled.add_metric([health["label"]], 1.0 if health["disabled"] else 0.0)
        yield disabled
        yield CounterMetricFamily(
            "livefuse_frames_covered",
            "Frames a privacy stage covered whole because it, or a stage before it, failed or was switched off.",
            value=stats.frames_covered,
        )
        yield CounterMetricFamily(
            "livefuse_frames_past_stall",
            "Frames sent on past a stage that hung (covered whole when the chain guards privacy).",
            value=stats.frames_past_stall,
        )
        yield GaugeMetricFamily(
            "livefuse_stage_stalled",
            "1 while a stage call has hung past the stall limit.",
            value=1.0 if stats.stalled else 0.0,
        )
        outputs = CounterMetricFamily("livefuse_output_frames", "Frames each output wrote.", labels=["output"])
        out_dropped = CounterMetricFamily(
            "livefuse_output_dropped", "Frames an output skipped (too slow).", labels=["output"]
        )
        out_errors = CounterMetricFamily("livefuse_output_errors", "Write errors per output.", labels=["output"])
        for name, out in stats.outputs.items():
            outputs.add_metric([name], out.frames)
            out_dropped.add_metric([name], out.dropped)
            out_errors.add_metric([name], out.errors)
        yield from (outputs, out_dropped, out_errors)
        yield GaugeMetricFamily("livefuse_fps", "Output frame rate so far.", value=stats.fps)
        yield GaugeMetricFamily(
            "livefuse_sleeping",
            "1 while asleep because no output is watched (no inference, camera released), else 0.",
            value=1.0 if stats.sleep == "sleeping" else 0.0,
        )
        yield CounterMetricFamily("livefuse_sleeps", "Times it went to sleep unwatched.", value=stats.sleeps)
        yield InfoMetricFamily(
            "livefuse_audio_filter",
            "The filter on the sound (none when there is no sound).",
            value={"filter": stats.audio_filter},
        )
        engine = self._engine()
        provider = engine.provider if engine is not None else stats.provider
        yield InfoMetricFamily("livefuse_provider", "The active execution provider.", value={"provider": provider})
        totals = dict(engine.copies()) if engine is not None else dict(stats.copies)
        per_frame = GaugeMetricFamily(
            "livefuse_copies_per_frame", "Host/device copies per processed frame.", labels=["direction"]
        )
        for direction, total in totals.items():
            per_frame.add_metric([direction], total / max(stats.frames_processed, 1))
        yield per_frame
        yield GaugeMetricFamily("livefuse_webrtc_peers", "Connected WebRTC peers.", value=self._peers())
        executor = engine.executor if engine is not None else None
        if executor is not None:
            yield from remote_metrics(executor.metric_rows())


def remote_metrics(rows: Iterator[tuple[str, dict[str, str], float]]) -> Iterator[Metric]:
    """The remote executor's rows as metric families (calls, errors, fallbacks, call time, versions)."""
    families: dict[str, Metric] = {}
    for name, labels, value in rows:
        family = families.get(name)
        if family is None:
            kind = CounterMetricFamily if name.endswith("_total") else GaugeMetricFamily
            family = families[name] = kind(name.removesuffix("_total"), REMOTE_HELP[name], labels=list(labels))
        family.add_metric(list(labels.values()), value)  # type: ignore[attr-defined]
    yield from families.values()


REMOTE_HELP = {
    "livefuse_remote_up": "1 while the remote executor (Triton) answers.",
    "livefuse_remote_calls_total": "Model calls answered by the remote executor.",
    "livefuse_remote_errors_total": "Remote model calls that failed or timed out (each ran locally instead).",
    "livefuse_remote_local_fallbacks_total": "Model calls run locally because the remote executor was away.",
    "livefuse_remote_call_ms": "Remote model call time, milliseconds (recent p50 and p99).",
    "livefuse_model_version": "The remote model version a session last used (0: the local copy).",
}


class Metrics:
    """A server's registry: pipeline counters plus per-frame latency histograms."""

    def __init__(
        self,
        stats: Callable[[], PipelineStats],
        engine: Callable[[], Engine | None],
        peers: Callable[[], int] = lambda: 0,
        health: Callable[[], list[dict[str, Any]]] = lambda: [],
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_StatsCollector(stats, engine, peers, health))
        self._stage = Histogram(
            "livefuse_stage_seconds",
            "Time each stage took per frame.",
            ["stage"],
            registry=self.registry,
            buckets=STAGE_BUCKETS,
        )
        self._frame = Histogram(
            "livefuse_frame_latency_seconds",
            "Capture to processed (emitted), per frame.",
            registry=self.registry,
            buckets=FRAME_BUCKETS,
        )
        self._stage_children: dict[str, Any] = {}

    def on_frame(self, frame: Frame) -> None:
        """A `pipeline.frame_listeners` callback."""
        self._frame.observe((time.monotonic_ns() - frame.capture_ns) / 1e9)
        for label, elapsed_ns in frame.stage_ns.items():
            child = self._stage_children.get(label)
            if child is None:
                child = self._stage_children[label] = self._stage.labels(label)
            child.observe(elapsed_ns / 1e9)

    def render(self) -> bytes:
        return generate_latest(self.registry)
