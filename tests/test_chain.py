"""Chain: stages take turns in capture order, two frames overlap, a failing stage is bypassed."""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from typing import Any

import numpy as np
import pytest

from livefuse.chain import Chain
from livefuse.faults import DISABLE_AFTER_CONSECUTIVE_ERRORS
from livefuse.frame import Frame
from livefuse.pipeline import Pipeline
from livefuse.sources.base import Source
from livefuse.stage import Stage


def make_frame(seq: int, size: tuple[int, int] = (32, 24)) -> Frame:
    image = np.full((size[1], size[0], 3), seq % 256, np.uint8)
    return Frame(seq=seq, capture_ns=time.monotonic_ns(), image=image)


class Recorder(Stage):
    """A stateful stage: remembers the order it saw frames in and when it worked on each."""

    def __init__(self, name: str, delay: tuple[float, float] = (0.0, 0.0), seed: int = 0) -> None:
        self.name = name
        self.delay = delay
        self.seen: list[int] = []
        self.spans: dict[int, tuple[float, float]] = {}
        self.busy = 0
        self.max_busy = 0
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def process(self, frame: Frame) -> None:
        with self._lock:
            self.busy += 1
            self.max_busy = max(self.max_busy, self.busy)
        start = time.monotonic()
        self.seen.append(frame.seq)
        time.sleep(self._rng.uniform(*self.delay))
        self.spans[frame.seq] = (start, time.monotonic())
        with self._lock:
            self.busy -= 1

    def update(self, params: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class FailsOn(Stage):
    """Raises for the frames whose seq is in `bad`; otherwise marks the image."""

    name = "flaky"

    def __init__(self, bad: set[int] | None = None, always: bool = False) -> None:
        self.bad = bad or set()
        self.always = always

    def process(self, frame: Frame) -> None:
        if self.always or frame.seq in self.bad:
            raise RuntimeError(f"cannot handle frame {frame.seq}")
        frame.meta["flaky"] = True

    def update(self, params: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


class CountingSource(Source):
    """Small frames as fast as a 200 fps camera; frame i is filled with i % 256."""

    description = "counting"
    size = (32, 24)
    fps = 200.0

    def __init__(self) -> None:
        self.count = 0

    def read(self) -> np.ndarray:
        time.sleep(1 / self.fps)
        image = np.full((24, 32, 3), self.count % 256, np.uint8)
        self.count += 1
        return image

    def close(self) -> None:
        pass


def test_each_stage_serves_tickets_in_order_whatever_thread_comes_first() -> None:
    first, second = Recorder("a", (0.0, 0.002)), Recorder("b", (0.0, 0.002), seed=1)
    chain = Chain("t", [("a", first), ("b", second)])
    frames = [make_frame(i) for i in range(12)]
    tickets = [chain.admit() for _ in frames]
    # Start the threads newest first: each must still wait for its turn at every stage.
    threads = [threading.Thread(target=chain.run, args=(f, t)) for f, t in zip(frames, tickets, strict=True)]
    for thread in reversed(threads):
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
        assert not thread.is_alive()
    assert first.seen == list(range(12))
    assert second.seen == list(range(12))
    assert first.max_busy == 1 and second.max_busy == 1  # never two frames in one stage at once
    assert set(chain.stats.stages) == {"a", "b"} and chain.stats.stages["a"].count == 12


def test_two_frames_in_flight_keep_capture_order_through_stages_and_outputs(memory_sink: Any) -> None:
    pre = Recorder("pre", (0.002, 0.012), seed=2)
    stateful = Recorder("stateful", (0.002, 0.012), seed=3)
    chain = Chain("t", [("pre", pre), ("stateful", stateful)])
    out = memory_sink("out", keep_images=False)
    pipeline = Pipeline(CountingSource(), chain, [out], fps=200.0, max_frames=150, max_in_flight=2)
    stats = asyncio.run(asyncio.wait_for(pipeline.run(), 60))

    assert stats.frames_processed >= 20
    for seqs in (pre.seen, stateful.seen, out.seqs):
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    assert stateful.seen == pre.seen  # every admitted frame went through every stage
    # ... and reached the output in the same order (a frame the output was too busy for is counted as dropped)
    assert set(out.seqs) <= set(stateful.seen)
    assert len(out.seqs) + stats.outputs["out"].dropped == stats.frames_processed == len(stateful.seen)
    # Double buffering really happened: some frame was in the first stage while the one before it was
    # still in the second.
    overlaps = [
        s
        for s in stateful.seen[:-1]
        if s in stateful.spans
        and (n := pre.seen[pre.seen.index(s) + 1]) in pre.spans
        and pre.spans[n][0] < stateful.spans[s][1]
    ]
    assert overlaps, "no two frames were ever in flight together"
    assert stats.frames_in - stats.frames_processed == stats.dropped


def test_a_failing_stage_is_bypassed_logged_once_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    after = Recorder("after")
    chain = Chain("t", [("flaky", FailsOn(bad={1, 3, 4})), ("after", after)])
    frames = [make_frame(i) for i in range(6)]
    with caplog.at_level(logging.WARNING, logger="livefuse"):
        for frame in frames:
            chain.run(frame, chain.admit())
    assert after.seen == list(range(6))  # later stages still ran on the failed frames
    assert [("flaky" in f.meta) for f in frames] == [True, False, True, False, False, True]
    assert all(int(f.image[0, 0, 0]) == f.seq for f in frames)  # the failed frames passed through unchanged
    assert chain.stats.stage_errors == {"flaky": 3}
    warnings = [r for r in caplog.records if "flaky" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "RuntimeError" in warnings[0].getMessage()


def test_a_stage_failing_every_frame_is_switched_off(caplog: pytest.LogCaptureFixture) -> None:
    flaky = FailsOn(always=True)
    chain = Chain("t", [("flaky", flaky)])
    n = DISABLE_AFTER_CONSECUTIVE_ERRORS + 10
    with caplog.at_level(logging.WARNING, logger="livefuse"):
        for i in range(n):
            chain.run(make_frame(i), chain.admit())
    assert chain.stats.stage_errors["flaky"] == DISABLE_AFTER_CONSECUTIVE_ERRORS  # not called once disabled
    levels = [r.levelno for r in caplog.records if "flaky" in r.getMessage()]
    assert levels == [logging.WARNING, logging.ERROR]


def test_a_failing_stage_in_a_pipeline_still_delivers_every_frame(
    memory_sink: Any, caplog: pytest.LogCaptureFixture
) -> None:
    after = Recorder("after")
    chain = Chain("t", [("flaky", FailsOn(bad=set(range(0, 1000, 7)))), ("after", after)])
    out = memory_sink("out", keep_images=False)
    pipeline = Pipeline(CountingSource(), chain, [out], fps=200.0, max_frames=60)
    with caplog.at_level(logging.WARNING, logger="livefuse"):
        stats = asyncio.run(asyncio.wait_for(pipeline.run(), 60))
    failed = sum(1 for s in after.seen if s % 7 == 0)
    assert failed >= 1
    assert stats.stage_errors == {"flaky": failed}
    assert stats.frames_out == len(out.seqs) == stats.frames_processed - stats.outputs["out"].dropped
    assert len([r for r in caplog.records if "flaky" in r.getMessage()]) == 1


class Tunable(Stage):
    """A stage that must not see its parameters change half-way through a frame."""

    name = "tunable"

    def __init__(self) -> None:
        self.gain = 1
        self.seen: list[tuple[int, int]] = []
        self.processing = threading.Event()

    def process(self, frame: Frame) -> None:
        before = self.gain
        self.processing.set()
        time.sleep(0.2)
        self.seen.append((before, self.gain))

    def update(self, params: dict[str, Any]) -> None:
        self.gain = params["gain"]

    def close(self) -> None:
        pass


def test_live_parameter_updates_apply_between_frames() -> None:
    stage = Tunable()
    chain = Chain("t", [("tunable", stage)])
    worker = threading.Thread(target=chain.run, args=(make_frame(0), chain.admit()))
    worker.start()
    assert stage.processing.wait(5)
    chain.update("tunable", {"gain": 5})  # arrives mid-frame: applied once that frame is done
    worker.join(5)
    chain.run(make_frame(1), chain.admit())
    assert stage.seen == [(1, 1), (5, 5)]
    with pytest.raises(KeyError):
        chain.update("missing", {"gain": 2})
