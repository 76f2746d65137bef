"""Faults inside the chain: privacy stages fail closed, a failing stage is switched off and comes back.

The privacy checks run the real face and anonymise stages on a moving clip of the astronaut's face
and count faces in the output with the independent detector (OpenCV's YuNet from ../shared/models).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from privacy_check import HAS_JUDGES, independent_faces, run_chain

from livefuse.chain import Chain
from livefuse.engine import Engine
from livefuse.frame import Frame
from livefuse.sources.demo import DemoSource
from livefuse.stage import Stage, StageContext
from livefuse.stages import anonymise
from livefuse.stages.face.cpu import FaceStage
from livefuse.stages.face.spec import SPEC as FACE_SPEC
from livefuse.status import status_line

SIZE = (640, 360)


class Raises(Stage):
    """A stage that fails on every frame while `broken` (a filter whose model or input went bad)."""

    name = "raises"

    def __init__(self) -> None:
        self.broken = True
        self.calls = 0
        self.updates: list[dict[str, Any]] = []

    def process(self, frame: Frame) -> None:
        self.calls += 1
        if self.broken:
            raise RuntimeError("cannot convert float NaN to integer")
        frame.meta["raises"] = True

    def update(self, params: dict[str, Any]) -> None:
        self.updates.append(params)

    def close(self) -> None:
        pass


class Clock:
    """A clock the test moves by hand, so backoff delays take no real time."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def defaults(spec: Any, **given: Any) -> dict[str, Any]:
    return {p.name: p.default for p in spec.params} | given


def clip(n: int) -> list[np.ndarray]:
    source = DemoSource(SIZE, 30, paced=False)
    return [source.render(1.0 + i / 5) for i in range(n)]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine(provider="cpu", cache_dir=tmp_path_factory.mktemp("engine"))


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    if not HAS_JUDGES:
        pytest.skip("needs the independent detector in ../shared/models")
    frames = clip(12)
    assert [independent_faces(im) for im in frames] == [1] * len(frames)  # the clip really shows the face
    return frames


def privacy_chain(engine: Engine, broken_before: bool, **anon: Any) -> tuple[Chain, Raises]:
    context = StageContext(engine=engine, size=SIZE, fps=30.0)
    finder = FaceStage(defaults(FACE_SPEC, detector="blazeface_full", min_score=0.5), context)
    cover = anonymise.AnonymiseStage(defaults(anonymise.SPEC, **anon), context)
    raises = Raises()
    raises.broken = broken_before
    chain = Chain("anonymise", [("face", finder), ("raises", raises), ("anonymise", cover)], disable_after=5)
    return chain, raises


def test_a_stage_failing_before_anonymise_covers_every_frame(engine: Engine, images: list[np.ndarray]) -> None:
    chain, raises = privacy_chain(engine, broken_before=True)
    frames = run_chain(chain, images)
    found = [independent_faces(f.image) for f in frames]
    assert found == [0] * len(images), found
    assert chain.stats.frames_covered == len(images)
    # switched off after 5 failures, and its frames are still covered, not passed through
    assert raises.calls == 5 and chain.health_report()[1]["disabled"]
    for frame, image in zip(frames, images, strict=True):
        assert np.any(frame.image != image, axis=2).mean() > 0.9  # the whole frame, not the face alone


def test_anonymise_itself_failing_covers_every_frame(engine: Engine, images: list[np.ndarray]) -> None:
    chain, _ = privacy_chain(engine, broken_before=False)
    cover = chain.stages[2][1]
    cover.params["strength"] = float("nan")  # type: ignore[attr-defined]  # the value the API used to let through: _cover raises on it
    frames = run_chain(chain, images)
    assert chain.stats.stage_errors["anonymise"] == 5  # then it is switched off
    assert [independent_faces(f.image) for f in frames] == [0] * len(images)
    report = chain.health_report()[2]
    assert report["disabled"] and report["guards_privacy"] and "NaN" in report["last_error"]
    assert chain.stats.frames_covered == len(images)


def test_the_face_stage_failing_covers_every_frame_at_once(engine: Engine, images: list[np.ndarray]) -> None:
    chain, raises = privacy_chain(engine, broken_before=False)
    raises.broken = False
    finder = chain.stages[0][1]

    def crashed(image: np.ndarray) -> list[Any]:
        raise RuntimeError("detector model failed")

    finder.detector.detect = crashed  # type: ignore[attr-defined]
    finder.scan.detector.detect = crashed  # type: ignore[attr-defined]  # the scan runs on every frame
    frames = run_chain(chain, images[:4])
    assert [independent_faces(f.image) for f in frames] == [0] * 4
    assert all(np.any(f.image != im, axis=2).mean() > 0.9 for f, im in zip(frames, images, strict=False))


def test_a_working_chain_covers_only_the_face(engine: Engine, images: list[np.ndarray]) -> None:
    chain, _ = privacy_chain(engine, broken_before=False)
    frames = run_chain(chain, images[:3])
    assert [independent_faces(f.image) for f in frames] == [0] * 3
    assert chain.stats.frames_covered == 0
    changed = np.any(frames[-1].image != images[2], axis=2).mean()
    assert 0.005 < changed < 0.2, changed  # the face and its margin, not the whole frame


def small_frame(seq: int) -> Frame:
    return Frame(seq=seq, capture_ns=0, image=np.full((24, 32, 3), 7, np.uint8))


def test_a_switched_off_stage_is_retried_with_backoff_and_comes_back() -> None:
    clock = Clock()
    stage = Raises()
    chain = Chain("t", [("raises", stage)], disable_after=3, backoff=(1.0, 2.0, 4.0), clock=clock)
    seq = iter(range(10_000))

    def frames(n: int) -> None:
        for _ in range(n):
            chain.run(small_frame(next(seq)), chain.admit())

    frames(10)
    assert stage.calls == 3
    report = chain.health_report()[0]
    assert report["disabled"] and report["retry_in_s"] == 1.0 and "NaN" in report["last_error"]
    clock.now += 0.9
    frames(5)
    assert stage.calls == 3  # not yet
    clock.now += 0.1
    frames(5)
    assert stage.calls == 4  # one retry, which failed: the next one waits 2 s
    assert chain.health_report()[0]["retry_in_s"] == 2.0
    clock.now += 2.0
    frames(3)
    assert stage.calls == 5 and chain.health_report()[0]["retry_in_s"] == 4.0
    stage.broken = False  # the fault clears: the next retry finds it working and it stays on
    clock.now += 4.0
    frames(4)
    assert stage.calls == 9 and not chain.health_report()[0]["disabled"]
    assert chain.stats.stage_errors["raises"] == 5


def test_a_parameter_change_switches_a_stage_back_on_at_once() -> None:
    clock = Clock()
    stage = Raises()
    chain = Chain("t", [("raises", stage)], disable_after=2, backoff=(30.0,), clock=clock)
    for i in range(4):
        chain.run(small_frame(i), chain.admit())
    assert chain.health_report()[0]["disabled"] and stage.calls == 2
    stage.broken = False
    chain.update("raises", {"gain": 2})
    assert not chain.health_report()[0]["disabled"]
    frame = small_frame(9)
    chain.run(frame, chain.admit())
    assert stage.calls == 3 and frame.meta.get("raises") is True
    assert stage.updates == [{"gain": 2}]


def test_the_terminal_status_line_names_a_switched_off_stage() -> None:
    chain = Chain("t", [("raises", Raises())], disable_after=2, clock=Clock())
    for i in range(3):
        chain.run(small_frame(i), chain.admit())
    off = [h["label"] for h in chain.health_report() if h["disabled"]]
    assert "OFF after errors: raises" in status_line(chain.stats, off)
    assert "OFF" not in status_line(chain.stats)
