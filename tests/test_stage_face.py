"""The `face` stage on real frames with the real detectors: found, tracked with stable ids, steady, held."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from livefuse.engine import Engine
from livefuse.errors import ModelError
from livefuse.frame import Face, Frame
from livefuse.sources.demo import DemoSource, astronaut_bgr
from livefuse.stage import StageContext
from livefuse.stages.face.cpu import FaceStage
from livefuse.stages.face.spec import SPEC
from livefuse.vision.geometry import iou_matrix
from livefuse.vision.smoothing import OneEuro
from livefuse.vision.tiled_detector import TiledDetector
from livefuse.vision.tracking import FaceTracker

SHARED = Path("/work/shared/models")
YUNET = SHARED / "face_detection_yunet.onnx"
RETINA = SHARED / "retinaface_mobilenet0.25_640.onnx"
SIZE = (1280, 720)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine(provider="cpu", cache_dir=tmp_path_factory.mktemp("engine"))


def make_stage(engine: Engine, size: tuple[int, int] = SIZE, **params: Any) -> FaceStage:
    full = {p.name: p.default for p in SPEC.params} | params
    return FaceStage(full, StageContext(engine=engine, size=size, fps=30.0))


def run(stage: FaceStage, images: list[np.ndarray]) -> list[list[Face]]:
    out = []
    for i, image in enumerate(images):
        frame = Frame(seq=i, capture_ns=0, image=image)
        stage.process(frame)
        out.append(frame.faces)
    return out


def independent_boxes(image: np.ndarray) -> np.ndarray:
    """Face boxes from OpenCV's own YuNet runner: ground truth independent of livefuse's code."""
    h, w = image.shape[:2]
    det = cv2.FaceDetectorYN.create(str(YUNET), "", (w, h), 0.6)
    _, found = det.detect(image)
    if found is None:
        return np.zeros((0, 4), np.float32)
    return np.column_stack([found[:, 0], found[:, 1], found[:, 0] + found[:, 2], found[:, 1] + found[:, 3]])


def group_photo(t: float, width: int = 1280, height: int = 720, count: int = 3) -> np.ndarray:
    """Several astronaut faces side by side, drifting in opposite directions."""
    canvas = np.full((height, width, 3), 90, np.uint8)
    face = cv2.resize(astronaut_bgr()[40:200, 150:300], (150, 160))
    for k in range(count):
        x = int(80 + k * (width - 300) / max(1, count - 1) + 25 * np.sin(t + k))
        y = int(height / 2 - 80 + 20 * np.cos(t * 1.3 + k))
        canvas[y : y + 160, x : x + 150] = face
    return canvas


def test_tiles_cover_a_wide_frame_with_overlap() -> None:
    tiles = TiledDetector.tiles(1280, 720)
    assert tiles[0][0] == 0 and tiles[-1][0] + tiles[-1][2] == 1280
    steps = np.diff([x for x, _, _ in tiles])
    assert (steps <= 720 / 2).all()
    assert TiledDetector.tiles(720, 720) == ((0, 0, 720),)


@pytest.mark.parametrize("detector", ["blazeface", "yunet", "retinaface"])
def test_follows_the_demo_face_with_one_id(engine: Engine, detector: str) -> None:
    if detector != "blazeface" and not SHARED.is_dir():
        pytest.skip("needs /work/shared/models")
    model = {"yunet": str(YUNET), "retinaface": str(RETINA)}.get(detector, "")
    stage = make_stage(engine, detector=detector, model=model)
    source = DemoSource(SIZE, 30, paced=False)
    images = [source.render(i / 10) for i in range(24)]
    faces = run(stage, images)
    assert all(len(f) == 1 for f in faces), [len(f) for f in faces]
    assert len({f[0].track_id for f in faces}) == 1
    for image, found in zip(images[::6], faces[::6], strict=True):
        truth = independent_boxes(image)
        assert len(truth) == 1
        assert iou_matrix(found[0].box[None], truth)[0, 0] > 0.4
        x1, y1, x2, y2 = found[0].box
        eyes = found[0].landmarks5[:2]
        assert ((eyes[:, 0] > x1) & (eyes[:, 0] < x2) & (eyes[:, 1] > y1) & (eyes[:, 1] < y2)).all()


def test_several_faces_keep_their_own_ids(engine: Engine) -> None:
    stage = make_stage(engine, detector="yunet", model=str(YUNET)) if SHARED.is_dir() else make_stage(engine)
    faces = run(stage, [group_photo(i / 5) for i in range(15)])
    assert all(len(f) == 3 for f in faces), [len(f) for f in faces]
    first = sorted(faces[0], key=lambda f: f.box[0])
    last = sorted(faces[-1], key=lambda f: f.box[0])
    assert [f.track_id for f in first] == [f.track_id for f in last]
    assert len({f.track_id for f in first}) == 3


def test_max_faces_limits_the_count(engine: Engine) -> None:
    stage = make_stage(engine, max_faces=2)
    faces = run(stage, [group_photo(0.0)] * 3)
    assert all(len(f) <= 2 for f in faces) and len(faces[-1]) == 2


def test_landmarks_give_a_mesh_inside_the_face(engine: Engine) -> None:
    stage = make_stage(engine, landmarks=True, detect_every=3)
    source = DemoSource(SIZE, 30, paced=False)
    faces = run(stage, [source.render(i / 15) for i in range(9)])
    assert all(len(f) == 1 for f in faces)
    assert len({f[0].track_id for f in faces}) == 1
    for found in faces:
        face = found[0]
        assert face.mesh is not None and face.mesh.shape == (468, 3)
        x1, y1, x2, y2 = face.box
        w = x2 - x1
        centre = face.mesh[:, :2].mean(0)
        assert x1 - 0.2 * w < centre[0] < x2 + 0.2 * w and y1 - 0.2 * w < centre[1] < y2 + 0.2 * w


def test_detect_every_tracks_between_detections(engine: Engine) -> None:
    calls = []
    stage = make_stage(engine, detect_every=4, scan_every_frame=False)
    real = stage.detector.detect
    stage.detector.detect = lambda image: calls.append(1) or real(image)  # type: ignore[method-assign, func-returns-value]
    source = DemoSource(SIZE, 30, paced=False)
    faces = run(stage, [source.render(i / 30) for i in range(12)])
    assert len(calls) == 3
    assert all(len(f) == 1 and not f[0].held for f in faces)


def test_between_detections_one_whole_frame_pass_finds_the_face(engine: Engine) -> None:
    stage = make_stage(engine, detector="blazeface_full")
    runs: list[int] = []
    # the tiles' model (full range, square) and the whole-frame pass's (full range, wide input on 16:9)
    for detector in (stage.detector.detector, stage.detector.wide):
        assert detector is not None
        real = detector.detect
        detector.detect = lambda image, real=real: runs.append(1) or real(image)  # type: ignore[method-assign,misc,func-returns-value]
    image = DemoSource(SIZE, 30, paced=False).render(0.5)
    stage.detector.tiles_now = []
    assert len(stage.detector.detect(image)) == 1 and len(runs) == 1  # no tiles: one model run
    stage.detector.tiles_now = None
    assert len(stage.detector.detect(image)) == 1 and len(runs) == 1 + 1 + stage.detector.tile_count(*SIZE)
    stage.detector.tiles_now = [1]  # the whole-frame pass and one tile
    assert len(stage.detector.detect(image)) == 1 and len(runs) == 1 + 1 + stage.detector.tile_count(*SIZE) + 2


def test_a_face_half_out_of_the_frame_is_found(engine: Engine) -> None:
    stage = make_stage(engine, detector="blazeface_full")
    stage.detector.tiles_now = []
    canvas = np.full((720, 1280, 3), 120, np.uint8)
    portrait = cv2.resize(astronaut_bgr()[20:280, 100:340], (260, 286))
    canvas[200:486, :130] = portrait[:, 130:]  # the left half of the portrait is out of the frame
    assert len(independent_boxes(canvas)) == 1  # YuNet sees a face there
    found = stage.detector.detect(canvas)
    assert len(found) == 1 and found[0].box[0] < 20, [f.box for f in found]


def test_a_missed_frame_holds_the_face(engine: Engine) -> None:
    stage = make_stage(engine, hold_frames=2, detect_every=1, scan_every_frame=False)
    source = DemoSource(SIZE, 30, paced=False)
    real = stage.detector.detect
    misses = {3, 4, 6, 7, 8}
    seq = iter(range(100))
    stage.detector.detect = lambda image: [] if next(seq) in misses else real(image)  # type: ignore[method-assign]
    faces = run(stage, [source.render(i / 30) for i in range(10)])
    assert [len(f) for f in faces] == [1, 1, 1, 1, 1, 1, 1, 1, 0, 1]
    assert [f[0].held for f in faces if f] == [False, False, False, True, True, False, True, True, False]
    assert faces[4][0].box[2] - faces[4][0].box[0] > faces[2][0].box[2] - faces[2][0].box[0]  # grown
    assert len({f[0].track_id for f in faces[:8]}) == 1


def test_one_euro_steadies_jitter_and_follows_motion() -> None:
    rng = np.random.default_rng(1)
    f = OneEuro(min_cutoff=1.0, beta=5.0)
    still = [f(np.array([100.0]) + rng.normal(0, 2.0, 1), i / 30, scale=100.0)[0] for i in range(60)]
    assert np.std(np.diff(still[20:])) < 0.25 * np.std(np.diff(100 + rng.normal(0, 2.0, 60)))
    f = OneEuro(min_cutoff=1.0, beta=5.0)
    moving = [f(np.array([10.0 * i]), i / 30, scale=100.0)[0] for i in range(60)]
    assert abs(moving[-1] - 590.0) < 10.0  # follows a fast move (300 px/s) within 10 px


def test_tracker_smooths_detector_jitter() -> None:
    rng = np.random.default_rng(2)
    tracker = FaceTracker(min_cutoff=1.0, beta=5.0)
    box = np.array([500, 200, 600, 320], np.float32)
    boxes = []
    for i in range(60):
        noisy = box + rng.normal(0, 2.0, 4).astype(np.float32)
        out = tracker.update([Face(box=noisy, score=0.9, landmarks5=np.zeros((5, 2), np.float32))], i / 30)
        boxes.append(out[0].box)
    jitter = np.abs(np.diff(np.array(boxes[20:]), axis=0)).mean()
    assert jitter < 0.5, jitter  # raw frame-to-frame change is ~2.3 px


def test_missing_pulled_model_says_how_to_pull_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEFUSE_MODELS_DIR", str(tmp_path / "models"))
    engine = Engine(provider="cpu", cache_dir=tmp_path / "cache")
    with pytest.raises(ModelError, match=r"retinaface_mobilenet0.25.*livefuse models pull retinaface_mobilenet0.25"):
        make_stage(engine, detector="retinaface")


def record_passes(stage: FaceStage) -> list[tuple[str, ...]]:
    """The detector's passes on each frame ("whole", "tile0", ...), appended to the returned list: the
    caller appends an empty tuple before each frame."""
    passes: list[tuple[str, ...]] = []
    detector = stage.detector
    real_whole, real_tiles = detector._whole, detector._tiles

    def whole(*args: Any) -> list[Face]:
        passes[-1] += ("whole",)
        return real_whole(*args)

    def tiles(pixels: Any, which: Any = None) -> list[Face]:
        found = real_tiles(pixels, which)
        count = detector.tile_count(*pixels.shape[1::-1])
        passes[-1] += tuple(f"tile{k}" for k in range(count) if which is None or k in which)
        return found

    detector._whole, detector._tiles = whole, tiles  # type: ignore[method-assign, assignment]
    return passes


def test_detection_passes_are_spread_over_the_period(engine: Engine) -> None:
    """No frame pays for a whole detection (the whole-frame pass and every tile) except the first: the
    whole-frame pass opens each period and the tiles follow one a frame, each once a period."""
    stage = make_stage(engine, landmarks=True, scan_every_frame=False, detect_every=8)
    passes = record_passes(stage)
    detector = stage.detector
    source = DemoSource(SIZE, 30, paced=False)
    for i in range(17):
        passes.append(())
        frame = Frame(seq=i, capture_ns=0, image=source.render(i / 30))
        stage.process(frame)
        assert len(frame.faces) == 1 and frame.faces[0].mesh is not None
    count = detector.tile_count(*SIZE)
    assert count == 3
    assert passes[0] == ("whole", "tile0", "tile1", "tile2")  # the first frame: everything
    assert all(len(p) <= 1 for p in passes[1:]), passes
    for period in (passes[1:9], passes[9:17]):
        assert sorted(p for f in period for p in f) == ["tile0", "tile1", "tile2", "whole"], passes


def test_a_lost_face_is_looked_for_in_its_own_tile(engine: Engine) -> None:
    """A face the detector misses once (anonymise's detector, scanning every frame) is looked for on the
    next frame by the whole-frame pass and in the one tile it lies inside, not in every tile (which made
    each flicker of a weak detection the slowest frame); the period's tiles keep their turns (frame 2's,
    tile 0, was lost with the miss)."""
    stage = make_stage(engine, detector="blazeface_full", detect_every=8)
    passes = record_passes(stage)
    detector = stage.detector
    real = detector.detect
    detector.detect = lambda image: [] if len(passes) == 3 else real(image)  # type: ignore[method-assign]
    source = DemoSource(SIZE, 30, paced=False)
    faces = []
    for i in range(9):
        passes.append(())
        frame = Frame(seq=i, capture_ns=int(i / 30 * 1e9) + 1, image=source.render(i / 30))
        stage.process(frame)
        faces.append(frame.faces)
    assert faces[2][0].held and not faces[3][0].held, faces  # missed on frame 2, found again on 3
    assert passes[3][0] == "whole" and len(passes[3]) == 2, passes  # frame 3's phase has no tile due
    w, h, scale = detector._tiled_size(*SIZE)
    x, y, side = (v / scale for v in detector.tiles(w, h)[int(passes[3][1][4:])])
    box = faces[1][0].box
    assert x <= box[0] and box[2] <= x + side and y <= box[1] and box[3] <= y + side, (box, x, side)
    # the period did not start again on frame 3: tiles 1 and 2 come on phases 4 and 6, as they were due
    assert passes[4:9] == [("whole", "tile1"), ("whole",), ("whole", "tile2"), ("whole",), ("whole",)], passes


def test_following_max_faces_with_facemesh_pauses_detection(engine: Engine) -> None:
    """With as many faces followed as it may keep and no scan, a detection could add none: it waits until
    a face is lost, as MediaPipe's face mesh does. One face fewer than the limit and it runs on schedule."""
    source = DemoSource(SIZE, 30, paced=False)
    images = [source.render(i / 30) for i in range(17)]
    runs = {}
    for limit in (1, 2):
        stage = make_stage(engine, landmarks=True, scan_every_frame=False, max_faces=limit)
        calls: list[int] = []
        real = stage.detector.detect
        stage.detector.detect = lambda image, real=real, calls=calls: calls.append(1) or real(image)  # type: ignore[method-assign, misc]
        faces = run(stage, images)
        assert all(len(f) == 1 and f[0].mesh is not None for f in faces)
        runs[limit] = len(calls)
    assert runs[1] == 1  # the first frame only
    assert runs[2] >= 2 * 4 + 1  # two periods of a whole-frame pass and three tiles, after the first frame
