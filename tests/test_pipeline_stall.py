"""A stage that hangs (its call never returns for a while) does not freeze the stream or show a face.

The hang is real: a stage blocks on an event inside its call, as a wedged driver or a lost remote call
would. The outputs must keep getting frames within the stall limit, in capture order; behind a privacy
stage every one of them is covered whole (checked with the independent detector); after the stage
returns, filtering goes on.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from typing import Any

import numpy as np
import pytest
from privacy_check import HAS_JUDGES, independent_faces

from livefuse.chain import Chain
from livefuse.engine import Engine
from livefuse.frame import Frame
from livefuse.pipeline import Pipeline
from livefuse.sources.demo import DemoSource
from livefuse.stage import Stage, StageContext
from livefuse.stages import anonymise
from livefuse.stages.face.cpu import FaceStage
from livefuse.stages.face.spec import SPEC as FACE_SPEC

SIZE, FPS = (320, 240), 15.0
STALL_AFTER = 0.5
COVERED_SCORE = 0.7  # RetinaFace scores a visible face 1.00, a covered head or the suit 0.50-0.60 now and then
HANG_FROM, HANG_FOR = 1.0, 2.5  # seconds into the run


class Hanging(Stage):
    """Wraps a stage; from `hang()` on, its next call blocks until `release()`."""

    def __init__(self, inner: Stage) -> None:
        self.inner = inner
        self.name = inner.name
        self._hang = threading.Event()
        self._released = threading.Event()
        self.calls_while_hung = 0

    def hang(self) -> None:
        self._hang.set()

    def release(self) -> None:
        self._released.set()

    def process(self, frame: Frame) -> None:
        if self._hang.is_set() and not self._released.is_set():
            self.calls_while_hung += 1
            self._released.wait(30)
        self.inner.process(frame)

    def update(self, params: dict[str, Any]) -> None:
        self.inner.update(params)

    def close(self) -> None:
        self.inner.close()


class Brighten(Stage):
    """A visible, non-privacy filter."""

    name = "brighten"

    def process(self, frame: Frame) -> None:
        frame.image = np.clip(frame.image.astype(np.int16) + 60, 0, 255).astype(np.uint8)

    def update(self, params: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def params(spec: Any, **given: Any) -> dict[str, Any]:
    return {p.name: p.default for p in spec.params} | given


def run_with_hang(chain: Chain, hanging: Hanging, sink: Any) -> Pipeline:
    pipeline = Pipeline(
        DemoSource(SIZE, FPS), chain, [sink], fps=FPS, duration=HANG_FROM + HANG_FOR + 2.0, stall_after=STALL_AFTER
    )
    seen: dict[str, Any] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(HANG_FROM, hanging.hang)

        def during() -> None:
            seen["stalled"] = pipeline.stats.stalled

        loop.call_later(HANG_FROM + HANG_FOR - 0.2, during)
        loop.call_later(HANG_FROM + HANG_FOR, hanging.release)
        await pipeline.run()

    asyncio.run(asyncio.wait_for(main(), 60))
    pipeline.seen_during = seen  # type: ignore[attr-defined]
    return pipeline


def largest_gap(times: list[float]) -> float:
    return max(b - a for a, b in itertools.pairwise(times))


@pytest.mark.skipif(not HAS_JUDGES, reason="needs the independent detector in ../shared/models")
def test_a_hung_face_stage_before_anonymise_covers_frames_and_the_stream_goes_on(memory_sink: Any) -> None:
    engine = Engine(provider="cpu")
    context = StageContext(engine=engine, size=SIZE, fps=FPS)
    finder = Hanging(FaceStage(params(FACE_SPEC, detector="blazeface_full", min_score=0.5), context))
    cover = anonymise.AnonymiseStage(params(anonymise.SPEC), context)
    sink = memory_sink("out")
    pipeline = run_with_hang(Chain("anonymise", [("face", finder), ("anonymise", cover)]), finder, sink)
    stats = pipeline.stats
    assert finder.calls_while_hung == 1  # it really hung, once
    assert pipeline.seen_during["stalled"].startswith("face for ")  # type: ignore[attr-defined]
    assert stats.stalled is None  # and came back
    assert stats.frames_past_stall >= (HANG_FOR - STALL_AFTER) * FPS * 0.5
    assert sink.seqs == sorted(set(sink.seqs))  # in capture order, none twice
    assert largest_gap(sink.write_times) < STALL_AFTER + 0.4
    found = [independent_faces(image, COVERED_SCORE) for image in sink.images]
    assert sum(found) == 0, [i for i, f in enumerate(found) if f]
    after = sink.seqs.index(max(sink.seqs))  # filtering resumed: the last frames are anonymised, not covered
    last = sink.images[after]
    assert np.abs(np.diff(last.astype(np.int16), axis=1)).mean() > 2.0  # a covered frame is nearly flat


def test_a_hung_stage_without_privacy_lets_frames_through_unfiltered(memory_sink: Any) -> None:
    brighten = Hanging(Brighten())
    sink = memory_sink("out")
    pipeline = run_with_hang(Chain("bright", [("brighten", brighten)]), brighten, sink)
    stats = pipeline.stats
    assert brighten.calls_while_hung == 1
    assert stats.frames_past_stall > 0 and stats.frames_covered == 0
    assert sink.seqs == sorted(set(sink.seqs))
    assert largest_gap(sink.write_times) < STALL_AFTER + 0.4
    assert stats.stalled is None
