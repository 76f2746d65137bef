"""Latency and throughput bookkeeping: every figure comes from measured timestamps."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

VIRTUALCAM_HINT = (
    "the virtual camera carries no sound: set the microphone's sync offset to {delay:.0f} ms in "
    "OBS (Advanced Audio Properties, Sync Offset) to match this video delay"
)


def percentiles_ms(values_ns: np.ndarray | list[int] | deque[int]) -> dict[str, float]:
    """p50/p95/p99/max in milliseconds (zeros when there is no sample)."""
    if len(values_ns) == 0:
        return {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0}
    arr = np.asarray(values_ns, dtype=np.float64) / 1e6
    p50, p95, p99 = np.percentile(arr, [50, 95, 99])
    return {
        "p50": round(float(p50), 3),
        "p95": round(float(p95), 3),
        "p99": round(float(p99), 3),
        "max": round(float(arr.max()), 3),
    }


class Recorder:
    """Keeps the last `window` samples (for percentiles) and running totals."""

    def __init__(self, window: int = 20000) -> None:
        self.samples: deque[int] = deque(maxlen=window)
        self.count = 0
        self.total_ns = 0

    def add(self, value_ns: int) -> None:
        self.samples.append(value_ns)
        self.count += 1
        self.total_ns += value_ns

    def summary(self) -> dict[str, float]:
        return percentiles_ms(self.samples)

    def copy(self) -> Recorder:
        """A copy that later `add`s leave alone."""
        other = Recorder(self.samples.maxlen or 0)
        other.samples.extend(self.samples)
        other.count, other.total_ns = self.count, self.total_ns
        return other


@dataclass
class OutputStats:
    """What one output delivered."""

    frames: int = 0
    dropped: int = 0
    errors: int = 0
    failed: str = ""  # why the output was given up, once it was; the others go on
    state: str = ""  # a push's connection: connecting, connected, retrying: why ("" for other outputs)
    latency: Recorder = field(default_factory=Recorder)


@dataclass
class PipelineStats:
    """Counters shared by the pipeline's tasks; read by the status line, the API and --stats-json.

    Capture, the chain's workers, the emitter, sound and sleep threads all write here: counters change
    through `count`, `stage_error`, `record_stage` and `record_output`, under one lock held for a few
    additions (uncontended, it costs well under a microsecond a frame); `snapshot` copies under it.
    """

    frames_in: int = 0
    frames_processed: int = 0
    frames_out: int = 0
    dropped: int = 0  # captured frames the pipeline skipped because it was busy
    frames_covered: int = 0  # frames a privacy stage covered whole because it or a stage before it failed
    frames_past_stall: int = 0  # frames sent on past a stage that hung (covered whole when privacy is guarded)
    stalled: str | None = None  # the step that has hung right now, as "label for N s"
    reconnects: int = 0
    sleep: str = "always on"  # "awake" or "sleeping" when the daemon sleeps unwatched (livefuse/sleep.py)
    sleeps: int = 0  # times it went to sleep
    provider: str = "none"
    started_ns: int = field(default_factory=time.monotonic_ns)
    first_out_ns: int = 0
    last_out_ns: int = 0
    latency: Recorder = field(default_factory=Recorder)
    stages: dict[str, Recorder] = field(default_factory=dict)
    stage_errors: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, OutputStats] = field(default_factory=dict)
    copies: dict[str, int] = field(default_factory=lambda: {"h2d": 0, "d2h": 0})
    # Frames kept on the device: the chain's boundary counts (livefuse/transfers.py); None on the host.
    transfers: dict[str, Any] | None = None
    audio: str = "none"  # where the sound comes from
    audio_filter: str = "none"  # the filter on it (--audio-filter, a preset's, or the page's)
    audio_chunks: int = 0
    audio_seconds: float = 0.0  # of sound captured and handed to the outputs
    audio_overflows: int = 0  # chunks an output had stopped draining (it is marked failed)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, **deltas: float) -> None:
        """Add to counters by name (`count(frames_in=1)`), from any thread."""
        with self.lock:
            for name, delta in deltas.items():
                setattr(self, name, getattr(self, name) + delta)

    def stage_error(self, label: str) -> None:
        """One more failure of the stage or step `label`."""
        with self.lock:
            self.stage_errors[label] = self.stage_errors.get(label, 0) + 1

    def record_output(self, latency_ns: int, now_ns: int) -> None:
        """A frame reached the primary output."""
        with self.lock:
            self.frames_out += 1
            self.latency.add(latency_ns)
            if not self.first_out_ns:
                self.first_out_ns = now_ns
            self.last_out_ns = now_ns

    def record_stage(self, name: str, elapsed_ns: int) -> None:
        with self.lock:
            self.stages.setdefault(name, Recorder()).add(elapsed_ns)

    @property
    def fps(self) -> float:
        """Output frame rate over the run so far."""
        span = self.last_out_ns - self.first_out_ns
        return (self.frames_out - 1) * 1e9 / span if self.frames_out > 1 and span > 0 else 0.0

    def virtualcam_delay_ms(self) -> float | None:
        """The video delay the virtual camera adds (median capture-to-output), measured; None without one.
        It carries no sound, so this is the offset a microphone beside it needs (OBS: Sync Offset)."""
        for name, out in self.outputs.items():
            if name.startswith("virtualcam") and out.latency.samples:
                return out.latency.summary()["p50"]
        return None

    def snapshot(self) -> dict[str, object]:
        """The figures as JSON-ready data (the --stats-json format)."""
        with self.lock:  # the recorders' windows and the dicts as of one moment; summarised outside the lock
            stages = {name: rec.copy() for name, rec in self.stages.items()}
            latency = self.latency.copy()
            stage_errors = dict(self.stage_errors)
        processed = max(self.frames_processed, 1)
        return {
            "frames_in": self.frames_in,
            "frames_processed": self.frames_processed,
            "frames_out": self.frames_out,
            "dropped": self.dropped,
            "fps": round(self.fps, 2),
            "provider": self.provider,
            "latency_ms": latency.summary(),
            "stages_ms": {name: rec.summary() for name, rec in stages.items()},
            "stage_errors": stage_errors,
            "frames_covered": self.frames_covered,
            "frames_past_stall": self.frames_past_stall,
            "stalled": self.stalled,
            "reconnects": self.reconnects,
            "sleep": {"state": self.sleep, "sleeps": self.sleeps},
            "copies_per_frame": {k: round(v / processed, 3) for k, v in self.copies.items()},
            "device_frames": self.transfers,
            "outputs": {
                name: {
                    "frames": o.frames,
                    "dropped": o.dropped,
                    "errors": o.errors,
                    "failed": o.failed or None,
                    "latency_ms": o.latency.summary(),
                    **({"state": o.state} if o.state else {}),
                }
                for name, o in self.outputs.items()
            },
            **(
                {"virtualcam_video_delay_ms": delay, "virtualcam_hint": VIRTUALCAM_HINT.format(delay=delay)}
                if (delay := self.virtualcam_delay_ms()) is not None
                else {}
            ),
            "audio": {
                "input": self.audio,
                "filter": self.audio_filter,
                "chunks": self.audio_chunks,
                "seconds": round(self.audio_seconds, 3),
                "overflows": self.audio_overflows,
            },
            "duration_s": round((time.monotonic_ns() - self.started_ns) / 1e9, 3),
        }
