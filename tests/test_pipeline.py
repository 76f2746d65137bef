"""Pipeline: bounded latency with a slow stage, isolated outputs, reconnects, clean shutdown."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import pytest

from livefuse.chain import Chain
from livefuse.errors import SourceError
from livefuse.frame import Frame
from livefuse.pipeline import Pipeline
from livefuse.sources.base import Pacer, Source, SourceLost
from livefuse.sources.demo import DemoSource
from livefuse.stage import Stage
from livefuse.stats import PipelineStats

STAGE_S = 0.100


def run(pipeline: Pipeline, timeout: float = 60.0) -> PipelineStats:
    return asyncio.run(asyncio.wait_for(pipeline.run(), timeout))


class SlowStage(Stage):
    name = "slow"

    def process(self, frame: Frame) -> None:
        time.sleep(STAGE_S)

    def update(self, params: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class TrackedSource(Source):
    """Wraps a source and keeps weak references to every image it hands out, to count those still alive."""

    def __init__(self, inner: DemoSource) -> None:
        self.inner = inner
        self.description, self.size, self.fps = inner.description, inner.size, inner.fps
        self.live = 0
        self._lock = threading.Lock()

    def _freed(self) -> None:
        with self._lock:
            self.live -= 1

    def read(self) -> np.ndarray:
        image = self.inner.read()
        with self._lock:
            self.live += 1
        weakref.finalize(image, self._freed)
        return image

    def close(self) -> None:
        self.inner.close()


class PacedSource(Source):
    """Small frames at a camera's pace; frame i is filled with i % 256."""

    description = "paced"

    def __init__(self, fps: float = 30.0, size: tuple[int, int] = (64, 48)) -> None:
        self.fps, self.size = fps, size
        self.count = 0
        self._pacer = Pacer(fps)

    def read(self) -> np.ndarray | None:
        self._pacer.wait()
        image = np.full((self.size[1], self.size[0], 3), self.count % 256, np.uint8)
        self.count += 1
        return image

    def close(self) -> None:
        pass


@pytest.mark.slow
def test_slow_stage_keeps_latency_bounded_drops_counted_and_no_queue(memory_sink: Any) -> None:
    source = TrackedSource(DemoSource((640, 480), 30.0))
    out = memory_sink("out", keep_images=False)
    pipeline = Pipeline(source, Chain("slow", [("slow", SlowStage())]), [out], fps=30.0, duration=6.0)
    process = psutil.Process()
    samples: dict[str, list[int]] = {"live": [], "rss": []}
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.05):
            samples["live"].append(source.live)
            samples["rss"].append(process.memory_info().rss)

    watcher = threading.Thread(target=watch, daemon=True)
    gc.collect()
    watcher.start()
    try:
        stats = run(pipeline)
    finally:
        done.set()
        watcher.join()

    snap = stats.snapshot()
    latency = snap["latency_ms"]
    assert isinstance(latency, dict)
    # A frame is taken when the stage can start on it: its latency is one stage time plus its wait in
    # the slot (under one frame interval), never the two stage times of a frame queued behind another.
    assert latency["p50"] < 1.7 * STAGE_S * 1000, snap
    assert latency["p99"] < 2 * STAGE_S * 1000 + 50, snap
    # The stage runs at 10 fps on a 30 fps source: two frames in three are skipped, and counted.
    assert stats.frames_in >= 100
    assert stats.frames_in - stats.frames_processed == stats.dropped
    assert stats.dropped >= stats.frames_in // 2
    assert stats.frames_out == len(out.seqs) == stats.frames_processed - stats.outputs["out"].dropped
    # No queue anywhere: only a handful of captured images are ever alive at once (slot, in flight, outputs),
    # and memory after a warm-up does not grow with the frames skipped.
    assert max(samples["live"]) <= 8, max(samples["live"])
    warm = len(samples["rss"]) // 4
    growth_mb = (max(samples["rss"][warm:]) - samples["rss"][warm]) / 2**20
    assert growth_mb < 40, f"RSS grew {growth_mb:.1f} MiB after warm-up"


def test_a_slow_output_only_drops_its_own_frames(memory_sink: Any) -> None:
    slow = memory_sink("slow", delay=0.2, keep_images=False)
    fast = memory_sink("fast", keep_images=False)
    pipeline = Pipeline(PacedSource(30.0), Chain("none", []), [slow, fast], fps=30.0, duration=3.0)
    stats = run(pipeline)
    processed = stats.frames_processed
    assert processed >= 60
    assert stats.dropped <= processed // 20  # the pipeline itself was never held up
    assert len(fast.seqs) >= processed - 2 and stats.outputs["fast"].dropped <= 2
    assert fast.seqs == sorted(fast.seqs)
    assert len(slow.seqs) <= 3.0 / 0.2 + 3
    assert stats.outputs["slow"].dropped >= processed // 2
    # Every frame is either written or counted as dropped, for each output.
    for sink in (slow, fast):
        assert len(sink.seqs) + stats.outputs[sink.name].dropped == processed, sink.name
    fast_latency = stats.outputs["fast"].latency.summary()
    assert fast_latency["p95"] < 100, fast_latency
    assert slow.closed and fast.closed


class FlakySource(Source):
    """Delivers `lose_after` frames, then fails; reopening fails until `outage` seconds have passed."""

    description = "flaky camera"
    size = (64, 48)
    fps = 30.0

    def __init__(self, lose_after: int = 20, outage: float = 1.0) -> None:
        self.lose_after, self.outage = lose_after, outage
        self.count = 0
        self.lost_at: float | None = None
        self.back_at: float | None = None
        self.reopen_calls = 0
        self._down = False
        self._pacer = Pacer(self.fps)

    def read(self) -> np.ndarray:
        if self._down or (self.lost_at is None and self.count == self.lose_after):
            if self.lost_at is None:
                self.lost_at = time.monotonic()
                self._down = True
            raise SourceLost("device unplugged")
        self._pacer.wait()
        self.count += 1
        return np.full((48, 64, 3), self.count % 256, np.uint8)

    def reopen(self) -> None:
        self.reopen_calls += 1
        assert self.lost_at is not None
        if time.monotonic() - self.lost_at < self.outage:
            raise SourceError("still unplugged")
        self._down = False
        self.back_at = time.monotonic()

    def close(self) -> None:
        pass


def test_lost_source_reconnects_and_viewers_keep_getting_frames(
    memory_sink: Any, caplog: pytest.LogCaptureFixture
) -> None:
    source = FlakySource(lose_after=20, outage=1.0)
    viewer = memory_sink("viewer", repeat_when_idle=True, keep_images=False)
    recorder = memory_sink("recorder", keep_images=False)
    pipeline = Pipeline(source, Chain("none", []), [recorder, viewer], fps=30.0, max_frames=50)
    with caplog.at_level(logging.INFO, logger="livefuse"):
        stats = run(pipeline)

    assert source.lost_at is not None and source.back_at is not None
    assert stats.reconnects >= 1 and source.reopen_calls >= 2
    assert stats.frames_in == 50
    down = (source.lost_at + 0.1, source.back_at)  # after the last real frame has surely been written
    assert down[1] - down[0] >= 0.8
    repeats = [t for t in viewer.write_times if down[0] < t < down[1]]
    # The viewer was sent the last frame again every two frame intervals while the source was down.
    assert len(repeats) >= 0.5 * (down[1] - down[0]) * 30.0 / 2, (len(repeats), down[1] - down[0])
    assert not [t for t in recorder.write_times if down[0] < t < down[1]]
    # Repeats are not counted as new frames; every frame is written or counted as dropped, per output.
    assert stats.outputs["viewer"].frames + stats.outputs["viewer"].dropped == stats.frames_processed
    assert len(recorder.seqs) + stats.outputs["recorder"].dropped == stats.frames_processed
    assert recorder.seqs == sorted(set(recorder.seqs)) and len(recorder.seqs) >= 40
    warnings = [r for r in caplog.records if "lost" in r.getMessage()]
    assert len(warnings) == 1


class ReopenWatcher(Stage):
    """Notes each frame's value and where, in that order, it was told that the source was reopened."""

    name = "watcher"

    def __init__(self) -> None:
        self.events: list[int | str] = []

    def process(self, frame: Frame) -> None:
        self.events.append(int(frame.image[0, 0, 0]))

    def update(self, params: dict[str, Any]) -> None:
        pass

    def on_source_reopened(self) -> None:
        self.events.append("reopened")

    def close(self) -> None:
        pass


def test_stages_hear_of_a_reopened_source_once_before_its_first_new_frame(memory_sink: Any) -> None:
    source = FlakySource(lose_after=10, outage=0.3)
    watcher = ReopenWatcher()
    pipeline = Pipeline(
        source, Chain("watch", [("watcher", watcher)]), [memory_sink("out", keep_images=False)], fps=30.0, max_frames=25
    )
    run(pipeline)

    assert watcher.events.count("reopened") == 1
    cut = watcher.events.index("reopened")
    before, after = watcher.events[:cut], watcher.events[cut + 1 :]
    assert before and after, watcher.events
    numbers = [e for e in before if isinstance(e, int)], [e for e in after if isinstance(e, int)]
    assert numbers == (before, after)
    assert max(numbers[0]) <= 10 < min(numbers[1])  # frames 1-10 came before the loss, 11 on after the reopen


class BrokenSource(Source):
    description = "broken"
    size = (64, 48)
    fps = 30.0

    def __init__(self) -> None:
        self.count = 0
        self._pacer = Pacer(self.fps)

    def read(self) -> np.ndarray:
        self._pacer.wait()
        self.count += 1
        if self.count > 5:
            raise SourceError("cannot decode file broken.mp4")
        return np.zeros((48, 64, 3), np.uint8)

    def close(self) -> None:
        pass


def test_a_source_error_stops_cleanly_and_is_raised(memory_sink: Any) -> None:
    out = memory_sink("out", keep_images=False)
    pipeline = Pipeline(BrokenSource(), Chain("none", []), [out], fps=30.0)
    with pytest.raises(SourceError, match=r"broken\.mp4"):
        run(pipeline)
    assert out.seqs == [0, 1, 2, 3, 4] and out.closed


def test_source_end_drains_every_frame_and_stop_is_prompt(memory_sink: Any) -> None:
    class Finite(PacedSource):
        def read(self) -> np.ndarray | None:
            return None if self.count >= 10 else super().read()

    out = memory_sink("out", keep_images=False)
    stats = run(Pipeline(Finite(60.0), Chain("none", []), [out], fps=60.0))
    assert out.seqs == list(range(10)) and stats.frames_out == 10 and out.closed

    async def stop_soon() -> tuple[PipelineStats, float]:
        endless = memory_sink("endless", keep_images=False)
        pipeline = Pipeline(PacedSource(60.0), Chain("none", []), [endless], fps=60.0)
        asyncio.get_running_loop().call_later(0.5, pipeline.stop)
        start = time.monotonic()
        result = await pipeline.run()
        return result, time.monotonic() - start

    stats, took = asyncio.run(stop_soon())
    assert took < 2.0 and stats.frames_out >= 10
    assert stats.frames_in - stats.frames_processed == stats.dropped


def test_frames_never_pass_through_the_asyncio_loop(memory_sink: Any) -> None:
    """Capture, dispatch, chain, ordering and writing all run in threads: the loop only starts, ticks the stall
    watchdog (every 0.1 s) and stops, so the callbacks it runs do not grow with the number of frames."""
    frames = 240

    class Finite(PacedSource):
        def read(self) -> np.ndarray | None:
            return None if self.count >= frames else super().read()

    async def scenario() -> tuple[PipelineStats, int]:
        loop = asyncio.get_running_loop()
        scheduled = 0
        call_soon, call_soon_threadsafe = loop.call_soon, loop.call_soon_threadsafe

        def counted(schedule: Any) -> Any:
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                nonlocal scheduled
                scheduled += 1
                return schedule(*args, **kwargs)

            return wrapper

        loop.call_soon = counted(call_soon)  # type: ignore[method-assign]
        loop.call_soon_threadsafe = counted(call_soon_threadsafe)  # type: ignore[method-assign]
        sinks = [memory_sink("out", keep_images=False), memory_sink("second", keep_images=False)]
        stats = await Pipeline(Finite(240.0), Chain("none", []), sinks, fps=240.0).run()
        return stats, scheduled

    stats, scheduled = asyncio.run(scenario())
    assert stats.frames_in == frames and stats.frames_processed == frames - stats.dropped
    # at 240 fps on a loaded machine the first output's writer may miss a frame: its slot counts it dropped
    assert stats.frames_out + stats.outputs["out"].dropped == stats.frames_processed
    assert stats.frames_out > frames // 2
    assert scheduled < frames // 2, f"{scheduled} loop callbacks for {frames} frames"


@pytest.mark.slow
def test_cli_run_writes_the_stats_json(cli: Any, tmp_path: Path) -> None:
    """The acceptance run: 300 demo frames at 1280x720@30 through passthrough into a null output."""
    proc = cli(
        "run",
        "--source",
        "demo",
        "--output",
        "null",
        "--frames",
        "300",
        "--size",
        "1280x720",
        "--fps",
        "30",
        "--stats-json",
        "s.json",
        "--preset",
        "passthrough",
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["frames_in"] == 300
    assert stats["frames_in"] - stats["frames_processed"] == stats["dropped"]
    assert stats["frames_processed"] >= 270
    assert stats["frames_out"] + stats["outputs"]["null"]["dropped"] == stats["frames_processed"]
    assert 20 <= stats["fps"] <= 35, stats["fps"]  # paced like a 30 fps camera
    assert stats["provider"].endswith("ExecutionProvider"), stats["provider"]  # the one really in use
    latency = stats["latency_ms"]
    assert set(latency) == {"p50", "p95", "p99", "max"}
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"] < 2000
    assert stats["outputs"]["null"]["frames"] == stats["frames_out"]
