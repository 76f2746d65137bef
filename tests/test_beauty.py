"""Beauty: skin smoothing limited to the mesh's skin region, eye-enlarge and face-slim warps, the preset."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from livefuse.engine import Engine
from livefuse.engine.registry import Registry
from livefuse.faces.detect import StillFaceFinder
from livefuse.faces.skin import FACE_OVAL, KEEP_SHARP, skin_mask
from livefuse.faces.warp import local_translate
from livefuse.frame import Face, Frame
from livefuse.presets import load_preset
from livefuse.sources.demo import DemoSource, astronaut_bgr
from livefuse.stage import StageContext
from livefuse.stages.beauty import EYE_RADIUS, MAX_EYE_AMOUNT, BeautyStage, slim_warp
from livefuse.wiring import build_chain


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine(provider="cpu", cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def portrait(engine: Engine) -> tuple[np.ndarray, Face]:
    """The astronaut at 768 px (face ~140 px wide) with its real FaceMesh."""
    image = cv2.resize(astronaut_bgr(), (768, 768), interpolation=cv2.INTER_CUBIC)
    face = StillFaceFinder(engine).largest(image)
    assert face is not None and face.mesh is not None
    return image, face


def beauty(smooth: float = 0.0, eyes: float = 0.0, slim: float = 0.0) -> BeautyStage:
    return BeautyStage({"smooth": smooth, "eye_enlarge": eyes, "face_slim": slim}, None)  # type: ignore[arg-type]


def _hf_energy(image: np.ndarray, where: np.ndarray) -> float:
    lap = cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32), cv2.CV_32F)
    return float((lap[where] ** 2).mean())


def _polygon_mask(mesh: np.ndarray, indices: tuple[int, ...], shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape[:2], np.uint8)
    cv2.fillPoly(out, [np.round(mesh[list(indices), :2]).astype(np.int32)], 1)
    return out.astype(bool)


def test_smoothing_only_touches_skin(portrait: tuple[np.ndarray, Face]) -> None:
    image, face = portrait
    assert face.mesh is not None
    frame = Frame(0, 0, image.copy(), faces=[face])
    beauty(smooth=1.0).process(frame)
    out = frame.image
    skin = skin_mask(face.mesh, (0, 0), image.shape[:2], float(face.box[2] - face.box[0])) > 0.9
    assert skin.sum() > 5000
    before, after = _hf_energy(image, skin), _hf_energy(out, skin)
    assert after < 0.5 * before, (before, after)  # measured: 74.5 -> 19.6
    diff = np.abs(out.astype(np.int16) - image.astype(np.int16)).max(axis=2)
    for indices in KEEP_SHARP:  # eyes, brows and lips stay exactly as they were
        region = _polygon_mask(face.mesh, indices, image.shape)
        assert region.sum() > 20
        assert diff[region].max() <= 1
    oval = cv2.dilate(_polygon_mask(face.mesh, FACE_OVAL, image.shape).astype(np.uint8), np.ones((9, 9)))
    assert diff[oval == 0].max() == 0  # outside the face: byte-identical


def test_strength_zero_and_no_faces_leave_the_frame_alone(portrait: tuple[np.ndarray, Face]) -> None:
    image, face = portrait
    frame = Frame(0, 0, image.copy(), faces=[face])
    beauty().process(frame)
    assert np.array_equal(frame.image, image)
    frame = Frame(0, 0, image.copy())
    beauty(1.0, 1.0, 1.0).process(frame)
    assert np.array_equal(frame.image, image)


def _dot_centre(image: np.ndarray, near: np.ndarray, half: int = 8) -> np.ndarray:
    x0, y0 = (round(v) for v in near)
    win = 255.0 - image[y0 - half : y0 + half + 1, x0 - half : x0 + half + 1, 0].astype(np.float64)
    ys, xs = np.mgrid[y0 - half : y0 + half + 1, x0 - half : x0 + half + 1]
    return np.array([(xs * win).sum(), (ys * win).sum()]) / win.sum()


@pytest.mark.parametrize("strength", [0.5, 1.0])
def test_eye_enlarge_moves_eye_pixels_outward_by_the_expected_amount(strength: float) -> None:
    """Dots at distance s from an eye centre reappear at d with d * (1 - a (1 - d²/R²)) = s."""
    eyes = np.array([[150.0, 180.0], [250.0, 180.0]])
    pts5 = np.array([eyes[0], eyes[1], [200, 230], [165, 270], [235, 270]], np.float32)
    face = Face(box=np.array([100, 110, 300, 320], np.float32), score=1.0, landmarks5=pts5)
    radius = EYE_RADIUS * 100.0
    a = MAX_EYE_AMOUNT * strength
    image = np.full((400, 400, 3), 255, np.uint8)
    offsets = [np.array([12.0, 0.0]), np.array([0.0, -20.0]), np.array([-18.0, 18.0])]
    for off in offsets:
        p = eyes[0] + off
        cv2.circle(image, (int(p[0] * 16), int(p[1] * 16)), 2 * 16, (0, 0, 0), -1, cv2.LINE_AA, shift=4)
    frame = Frame(0, 0, image.copy(), faces=[face])
    beauty(eyes=strength).process(frame)
    for off in offsets:
        s = float(np.linalg.norm(off))
        roots = np.roots([a / radius**2, 0.0, 1.0 - a, -s])
        d = min(r.real for r in roots if abs(r.imag) < 1e-9 and 0 <= r.real <= radius)
        expected = eyes[0] + off / s * d
        found = _dot_centre(frame.image, expected)
        assert np.linalg.norm(found - expected) < 0.5, (off, found, expected)
        assert d > s + 1  # really moved outward
    far = np.ones(image.shape[:2], bool)
    for e in eyes:
        cv2.circle(far.view(np.uint8), (int(e[0]), int(e[1])), int(radius) + 2, 0, -1)
    assert np.array_equal(frame.image[far], image[far])


def test_face_slim_pulls_the_jaw_towards_the_centre_line(portrait: tuple[np.ndarray, Face]) -> None:
    image, face = portrait
    assert face.mesh is not None
    (centre, radius, move), _ = slim_warp(face, 1.0)  # the subject's right (image left) cheek
    assert float(np.linalg.norm(move)) > 5
    marked = image.copy()
    cv2.circle(marked, (int(centre[0] * 16), int(centre[1] * 16)), 9 * 16, (255, 255, 255), -1, cv2.LINE_AA, shift=4)
    cv2.circle(marked, (int(centre[0] * 16), int(centre[1] * 16)), 3 * 16, (0, 0, 0), -1, cv2.LINE_AA, shift=4)
    frame = Frame(0, 0, marked.copy(), faces=[face])
    beauty(slim=1.0).process(frame)
    # The output point p whose backward displacement lands on the centre: |p - c| = w(|p - c|) |m| along m.
    p = centre.copy()
    for _ in range(100):
        dx, dy = local_translate(np.array([p[0]]), np.array([p[1]]), centre, radius, move)
        p = centre - np.array([float(dx[0]), float(dy[0])])
    found = _dot_centre(frame.image, p, half=5)
    assert np.linalg.norm(found - p) < 0.5, (found, p)
    assert np.linalg.norm(p - centre) > 0.9 * np.linalg.norm(move)  # the content moved by ~the full move
    nose_x = float(face.mesh[1, 0])
    assert abs(found[0] - nose_x) < abs(centre[0] - nose_x) - 4  # inward


def test_beauty_preset_runs_on_built_in_models(tmp_path: Path) -> None:
    """No pulled models needed: the preset builds with an empty model cache and changes only the face."""
    engine = Engine(provider="cpu", cache_dir=tmp_path / "cache", registry=Registry(models_dir=tmp_path / "none"))
    chain = build_chain(load_preset("beauty"), StageContext(engine=engine, size=(640, 360), fps=30.0))
    image = DemoSource((640, 360), 30.0, paced=False).render(0.0)
    frame = Frame(0, 0, image.copy())
    chain.run(frame, chain.admit())
    chain.close()
    assert not chain.stats.stage_errors and len(frame.faces) == 1
    diff = np.abs(frame.image.astype(np.int16) - image.astype(np.int16)).max(axis=2)
    x1, y1, x2, y2 = frame.faces[0].box.astype(int)
    w, h = x2 - x1, y2 - y1
    assert diff[y1:y2, x1:x2].mean() > 0.5
    diff[max(0, y1 - h // 2) : y2 + h // 2, max(0, x1 - w // 2) : x2 + w // 2] = 0
    assert diff.max() == 0
