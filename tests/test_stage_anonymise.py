"""`anonymise` fails closed: an independent detector (OpenCV's YuNet) finds no face in any output frame.

Misses of livefuse's own detector are injected by wrapping its `detect` (the one fake here): the
frames where it sees nothing are exactly the ones that must still come out anonymised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import pytest
from privacy_check import HAS_JUDGES, independent_faces, run_chain, yunet_boxes

from livefuse.chain import Chain
from livefuse.engine import Engine
from livefuse.frame import Frame
from livefuse.sources.demo import DemoSource, astronaut_bgr
from livefuse.stage import StageContext
from livefuse.stages import anonymise
from livefuse.stages.face.cpu import FaceStage
from livefuse.stages.face.spec import SPEC as FACE_SPEC
from livefuse.vision.geometry import iou_matrix

SIZE = (1280, 720)
DETECTOR = "blazeface_full"  # as the shipped anonymise preset: finds small, distant faces too
MISSES = {3, 4, 5, 6, 7, 8, 12}  # a long gap (longer than the face stage's own hold) and a single blink

pytestmark = pytest.mark.skipif(not HAS_JUDGES, reason="needs ../shared/models (independent detector)")


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine(provider="cpu", cache_dir=tmp_path_factory.mktemp("engine"))


def params(spec: Any, **given: Any) -> dict[str, Any]:
    return {p.name: p.default for p in spec.params} | given


def build(engine: Engine, misses: set[int], **anon: Any) -> Chain:
    context = StageContext(engine=engine, size=SIZE, fps=30.0)
    finder = FaceStage(params(FACE_SPEC, detector=DETECTOR, min_score=0.5, max_faces=8, hold_frames=3), context)
    cover = anonymise.AnonymiseStage(params(anonymise.SPEC, **anon), context)
    chain = Chain("anonymise", [("face", finder), ("anonymise", cover)])  # builds the face stage's privacy scan
    assert finder.scan is not None
    real, scan = finder.detector.detect, finder.scan.find
    frames = iter(range(10_000))
    seq = [0]

    def missing(image: Any) -> list[Any]:  # the BlazeFace passes miss on the frames in `misses`
        seq[0] = next(frames)
        return [] if seq[0] in misses else scan(image)

    finder.scan.find = missing  # type: ignore[method-assign, assignment]
    finder.detector.detect = lambda image: [] if seq[0] in misses else real(image)  # type: ignore[method-assign]
    return chain


def group_photo(t: float, count: int = 3) -> np.ndarray:
    """Several astronaut faces in one frame, each drifting on its own."""
    rng = np.random.default_rng(4)
    canvas = np.full((SIZE[1], SIZE[0], 3), (120, 130, 140), np.uint8)
    for _ in range(30):  # a busy room behind them
        x, y = int(rng.integers(0, SIZE[0])), int(rng.integers(0, SIZE[1]))
        colour = tuple(int(c) for c in rng.integers(30, 230, 3))
        cv2.rectangle(canvas, (x, y), (x + int(rng.integers(20, 200)), y + int(rng.integers(20, 150))), colour, -1)
    portrait = cv2.resize(astronaut_bgr()[20:260, 110:340], (180, 190))
    for k in range(count):
        x = int(60 + k * (SIZE[0] - 300) / max(1, count - 1) + 30 * np.sin(2 * t + k))
        y = int(200 + 60 * np.cos(1.5 * t + 2 * k))
        canvas[y : y + 190, x : x + 180] = portrait
    return canvas


def check_clip(engine: Engine, images: list[np.ndarray], faces: int, **anon: Any) -> None:
    assert [independent_faces(im) for im in images] == [faces] * len(images)  # the clip really shows them
    frames = run_chain(build(engine, MISSES, **anon), images)
    found = [independent_faces(f.image) for f in frames]
    assert found == [0] * len(frames), found
    assert any(f.faces and f.faces[0].held for i, f in enumerate(frames) if i in MISSES)


ClipMaker = Callable[[float], np.ndarray]


def demo_clip(n: int = 16) -> list[np.ndarray]:
    source = DemoSource(SIZE, 30, paced=False)
    return [source.render(2.0 + i / 6) for i in range(n)]  # fast motion: 5 s of the clip in 16 frames


def test_one_moving_face_is_never_visible(engine: Engine) -> None:
    check_clip(engine, demo_clip(), faces=1)


def test_several_faces_are_never_visible(engine: Engine) -> None:
    check_clip(engine, [group_photo(i / 8) for i in range(16)], faces=3)


@pytest.mark.parametrize("style", ["pixelate", "fill"])
def test_other_styles_hide_faces_too(engine: Engine, style: str) -> None:
    check_clip(engine, demo_clip(10), faces=1, style=style)


def test_only_the_faces_are_touched(engine: Engine) -> None:
    image = demo_clip(1)[0]
    out = run_chain(build(engine, set()), [image])[0]
    changed = np.any(out.image != image, axis=2)
    assert 0.005 < changed.mean() < 0.08  # a face and its margin, not the frame
    assert out.faces and not out.faces[0].held


def test_when_the_face_stage_fails_the_whole_frame_is_covered(engine: Engine) -> None:
    chain = build(engine, set(), hold_frames=2)
    finder = chain.stages[0][1]
    images = demo_clip(8)
    frames = run_chain(chain, images[:2])

    def broken(image: np.ndarray) -> list[Any]:
        raise RuntimeError("detector crashed")

    finder.detector.detect = broken  # type: ignore[attr-defined]
    # the privacy scan runs on every frame, BlazeFace on every other
    finder.scan.detector.detect = broken  # type: ignore[attr-defined]
    frames += run_chain(chain, images[2:])
    assert chain.stats.stage_errors.get("face") == 6
    assert [independent_faces(f.image) for f in frames] == [0] * 8
    # Held boxes for hold_frames frames, then nothing is shown: every pixel is blurred.
    for f, image in zip(frames[5:], images[5:], strict=True):
        assert np.any(f.image != image, axis=2).mean() > 0.9


def test_without_any_face_stage_nothing_is_shown(engine: Engine) -> None:
    stage = anonymise.AnonymiseStage(params(anonymise.SPEC), StageContext(engine=engine, size=SIZE, fps=30.0))
    image = demo_clip(1)[0]
    frame = Frame(seq=0, capture_ns=0, image=image.copy())
    stage.process(frame)
    assert np.any(frame.image != image, axis=2).mean() > 0.9


# A visible demo face scores 0.90-0.93 in YuNet at 320x240, a well-covered head up to about 0.6: the API fuzz
# found a pixelated face at 0.73 (5 blocks across a margin-0.25 region), and a sweep found blurs at 0.75-0.82.
COVERED_SCORE = 0.7


@pytest.mark.parametrize("size", [(320, 240), (640, 360)])
@pytest.mark.parametrize("style", ["blur", "pixelate"])
def test_the_weakest_covers_the_api_allows_still_hide_a_small_face(
    engine: Engine, size: tuple[int, int], style: str
) -> None:
    """Every strength, at the narrowest and the widest margin, on a small moving face (the covers count their
    pixels across the face, not across the margin-grown region). Only what YuNet finds where the face is counts:
    at these sizes it also scores the suit's chest patch 0.71 now and then, covered face or not."""
    fps = 15.0
    source = DemoSource(size, fps, paced=False)
    context = StageContext(engine=engine, size=size, fps=fps)
    finder = FaceStage(params(FACE_SPEC, detector=DETECTOR, min_score=0.5), context)
    shown: list[tuple[Frame, np.ndarray]] = []
    for i in range(0, 150, 3):
        frame = Frame(seq=i, capture_ns=int(i / fps * 1e9), image=source.render(i / fps))
        finder.process(frame)
        seen = judged(frame.image)
        assert len(seen) and seen[0, -1] > 0.85  # the face really shows
        shown.append((frame, seen[0, :4]))
    scores = {}
    for margin in (anonymise.MIN_MARGIN, 1.0):
        for strength in (0.0, 0.25, 0.5, 0.8, 1.0):
            cover = anonymise.AnonymiseStage(
                params(anonymise.SPEC, style=style, strength=strength, margin=margin), context
            )
            worst = 0.0
            for original, where in shown:
                frame = Frame(
                    seq=original.seq,
                    capture_ns=original.capture_ns,
                    image=original.image.copy(),
                    faces=list(original.faces),
                    faces_searched=original.faces_searched,
                )
                cover.process(frame)
                at_face = [f[-1] for f in judged(frame.image) if overlap(f[:4], where) > 0.3]
                worst = max([worst, *at_face])
            scores[(margin, strength)] = round(float(worst), 2)
    assert max(scores.values()) < COVERED_SCORE, scores


def judged(image: np.ndarray) -> np.ndarray:
    """YuNet's faces over 0.3 (the face stage here runs BlazeFace alone: no privacy stage follows it in a chain),
    best first: rows of x1, y1, x2, y2, score."""
    faces = yunet_boxes(image, 0.3)
    return faces[np.argsort(-faces[:, 4])]


def overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two x1, y1, x2, y2 boxes."""
    return float(iou_matrix(a[None, :4], b[None, :4])[0, 0])


def test_a_face_outrunning_heavy_smoothing_is_still_covered(engine: Engine) -> None:
    """The steadiest smoothing the face stage allows lags a fast face by much of its width; anonymise covers
    where the face was found on the frame as well as the smoothed box."""
    context = StageContext(engine=engine, size=SIZE, fps=30.0)
    finder = FaceStage(params(FACE_SPEC, detector=DETECTOR, min_score=0.5, min_cutoff=0.01, beta=0.0), context)
    cover = anonymise.AnonymiseStage(params(anonymise.SPEC), context)
    source = DemoSource(SIZE, 30, paced=False)
    images = [source.render(2.0 + i / 3) for i in range(16)]  # very fast: 5 s of the clip in 16 frames
    frames = run_chain(Chain("anonymise", [("face", finder), ("anonymise", cover)]), images)
    lag = [
        float(np.abs(f.faces[0].box - f.faces[0].found_box).max() / (f.faces[0].box[2] - f.faces[0].box[0]))
        for f in frames
        if f.faces and f.faces[0].found_box is not None
    ]
    assert max(lag) > 0.5, lag  # the smoothed box really falls behind, by half a face
    found = [independent_faces(f.image) for f in frames]
    assert found == [0] * len(frames), found
