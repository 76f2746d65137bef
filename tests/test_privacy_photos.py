"""anonymise on real photos: every face in ../shared/privacy covered, as stills, as pans and under resampling.

The shipped anonymise preset runs as `livefuse run` builds it. RetinaFace (tests/privacy_check.py), a detector
family the chain does not use, judges every output frame on the whole frame and on full-resolution tiles; a
face counts as shown when it finds one at 0.6 or more on a true face (tests/data/privacy_faces.json: dlib's own
annotations of these photos, and faces two detector families agree on).
"""

from __future__ import annotations

import itertools
from typing import Any

import cv2
import numpy as np
import pytest
from privacy_check import HAS_JUDGES, HAS_PHOTOS, Photo, RetinaJudge, astronaut, photos, run_chain, shown

from livefuse.engine import Engine
from livefuse.frame import Frame
from livefuse.presets import load_preset
from livefuse.stage import StageContext
from livefuse.stages import anonymise
from livefuse.vision.geometry import box_overlaps
from livefuse.wiring import Assembly, assemble

pytestmark = pytest.mark.skipif(not (HAS_JUDGES and HAS_PHOTOS), reason="needs ../shared/models and ../shared/privacy")
SIZE = (1280, 720)
FPS = 30.0
PAN_STRIDE = 3  # the chain sees every frame of a pan; the judge looks at every third
SMALLEST = 30.0  # px: the default privacy scan's smallest face


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine(provider="cpu", cache_dir=tmp_path_factory.mktemp("engine"))


@pytest.fixture(scope="module")
def judge() -> RetinaJudge:
    return RetinaJudge(0.5)


def chain_for(engine: Engine, size: tuple[int, int] = SIZE) -> Assembly:
    return assemble(load_preset("anonymise"), engine, size, FPS)


def all_photos() -> list[Photo]:
    return [astronaut(), *photos()] if HAS_PHOTOS else []


def shown_in(judge: RetinaJudge, frames: list[Frame], truths: list[np.ndarray]) -> list[int]:
    return [len(shown(truth, judge(frame.image))) for frame, truth in zip(frames, truths, strict=True)]


def test_the_collage_of_25_faces_is_covered_in_every_frame(engine: Engine, judge: RetinaJudge) -> None:
    """A crowd beyond any small cap: the old preset stopped at max_faces = 8 and showed 16 of these faces."""
    collage = next(p for p in photos() if p.name == "dlib_bald_guys")
    image, truth = collage.still(SIZE)
    assert len(shown(truth, judge(image))) >= 20  # the judge really sees the crowd
    frames = run_chain(chain_for(engine).chain, [image] * 6, fps=FPS)
    assert shown_in(judge, frames, [truth] * 6) == [0] * 6


@pytest.mark.parametrize("photo", all_photos(), ids=lambda p: p.name)
def test_every_face_of_a_still_is_covered(engine: Engine, judge: RetinaJudge, photo: Photo) -> None:
    image, truth = photo.still(SIZE)
    frames = run_chain(chain_for(engine).chain, [image] * 4, fps=FPS)
    assert shown_in(judge, frames, [truth] * 4) == [0] * 4


@pytest.mark.slow
@pytest.mark.parametrize("photo", all_photos(), ids=lambda p: p.name)
def test_every_face_of_a_pan_with_zoom_is_covered(engine: Engine, judge: RetinaJudge, photo: Photo) -> None:
    """6 s at 30 fps: across the photo, past its top and bottom edges, zooming to 2.4x and back."""
    clip = list(photo.pan(SIZE))
    frames = run_chain(chain_for(engine).chain, [image for image, _ in clip], fps=FPS)
    looked = list(range(0, len(clip), PAN_STRIDE))
    found = shown_in(judge, [frames[i] for i in looked], [clip[i][1] for i in looked])
    assert found == [0] * len(looked), [(i, n) for i, n in zip(looked, found, strict=True) if n]


def variants(image: np.ndarray, truth: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The same still flipped, padded by 160 px and resampled to 640 and 1920 wide, with its faces there."""
    h, w = image.shape[:2]
    flipped = truth.copy()
    flipped[:, [0, 2]] = w - truth[:, [2, 0]]
    out = {
        "flip": (cv2.flip(image, 1), flipped),
        "pad160": (cv2.copyMakeBorder(image, 160, 160, 160, 160, cv2.BORDER_CONSTANT, value=(40, 40, 40)), truth + 160),
    }
    for width in (640, 1920):
        k = width / w
        interpolation = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
        out[f"w{width}"] = (cv2.resize(image, (width, round(h * k)), interpolation=interpolation), truth * k)
    return out


def covered(engine: Engine, image: np.ndarray, truth: np.ndarray, smallest: float) -> list[bool]:
    """Whether each true face at least `smallest` px tall is among the frame's privacy boxes (the boxes anonymise
    covers), found on the first frame of a fresh chain."""
    size = (image.shape[1], image.shape[0])
    frame = run_chain(chain_for(engine, size).chain, [image], fps=FPS)[0]
    return [box_overlaps(box, frame.privacy_boxes, 0.3) for box in truth if box[3] - box[1] >= smallest]


@pytest.mark.slow
def test_found_faces_stay_found_across_flips_padding_and_resampling(engine: Engine) -> None:
    """Margins, not luck: every face found on a still is found again in the same photo flipped, padded and
    resampled, wherever it is still as large as the scan's smallest face (30 px at the default)."""
    lost: list[tuple[str, str, int]] = []
    for photo in all_photos():
        image, truth = photo.still(SIZE)
        found = covered(engine, image, truth, 0)
        assert all(found), (photo.name, found)
        for name, (variant, moved) in variants(image, truth).items():
            lost += [(photo.name, name, i) for i, ok in enumerate(covered(engine, variant, moved, SMALLEST)) if not ok]
    assert lost == []


def held_stage(engine: Engine, **given: Any) -> anonymise.AnonymiseStage:
    values = {p.name: p.default for p in anonymise.SPEC.params} | given
    return anonymise.AnonymiseStage(values, StageContext(engine=engine, size=SIZE, fps=FPS))


def frame_with(seq: int, boxes: list[list[float]]) -> Frame:
    frame = Frame(seq=seq, capture_ns=0, image=np.zeros((SIZE[1], SIZE[0], 3), np.uint8), faces_searched=True)
    frame.privacy_boxes = [np.array(b, np.float32) for b in boxes]
    return frame


def test_a_lost_face_is_covered_where_its_motion_carries_it_until_it_leaves(engine: Engine) -> None:
    """A face moving right at 60 px a frame is lost near the edge: its cover moves on with it, past hold_frames,
    until it has left the picture; a still face lost in the middle is held for hold_frames only."""
    stage = held_stage(engine, hold_frames=3)
    for seq in range(4):
        stage.boxes(frame_with(seq, [[900 + 60 * seq, 300, 1000 + 60 * seq, 420], [300, 300, 400, 420]]))
    last = 900 + 60 * 3
    lefts: list[float] = []
    for seq in range(4, 12):
        boxes = stage.boxes(frame_with(seq, []))
        moving = [b for b in boxes if b[2] > 700]
        if not moving:
            break
        lefts.append(float(moving[0][0]))
        assert moving[0][2] >= last + 100 + 60 * (seq - 3) - 1  # ahead of where the face now is
    assert lefts and all(b > a for a, b in itertools.pairwise(lefts))  # carried along
    assert len(lefts) > 3  # held past hold_frames while leaving
    assert lefts[-1] + 60 >= SIZE[0] - 200  # dropped only once (nearly) out of the picture
    still = [b for b in held_stage(engine, hold_frames=3).boxes(frame_with(0, [[300, 300, 400, 420]]))]
    assert len(still) == 1


def test_the_cover_reaches_as_far_as_the_face_moved(engine: Engine) -> None:
    stage = held_stage(engine, margin=0.25)
    stage.boxes(frame_with(0, [[100, 100, 200, 220]]))
    cover = stage.boxes(frame_with(1, [[180, 100, 280, 220]]))[0]
    still = held_stage(engine, margin=0.25).boxes(frame_with(0, [[180, 100, 280, 220]]))[0]
    assert cover[2] - cover[0] > still[2] - still[0] + 30  # stretched along the motion (80 px, halved)


def test_faces_over_max_faces_are_covered_and_effects_keep_their_cap(engine: Engine) -> None:
    """max_faces limits the tracks effects use; the covers have no cap."""
    collage = next(p for p in photos() if p.name == "dlib_bald_guys")
    image, truth = collage.still(SIZE)
    assembly = chain_for(engine)
    frame = run_chain(assembly.chain, [image], fps=FPS)[0]
    tracked = [f for f in frame.faces if not f.held and f.track_id >= 0]
    assert len(tracked) <= 8
    assert sum(box_overlaps(box, frame.privacy_boxes, 0.3) for box in truth) == len(truth)


def test_status_states_the_smallest_face_covered(engine: Engine) -> None:
    face_stage = chain_for(engine).chain.stages[0][1]
    assert face_stage.describe() == {"privacy_scan": "fast", "smallest_face_px": 30}
    face_stage.update({"privacy_scan": "thorough"})
    assert face_stage.describe()["smallest_face_px"] == 20
