"""Five-point alignment: the warp puts a face's landmarks on the model's template."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from livefuse.engine import Engine
from livefuse.faces.align import TEMPLATES, estimate_affine, invert_affine, template_points, transform_points, warp_face
from livefuse.faces.detect import StillFaceFinder
from livefuse.sources.demo import astronaut_bgr


@pytest.fixture(scope="module")
def astronaut_face() -> tuple[np.ndarray, np.ndarray]:
    """The astronaut photo and its five points from the real BlazeFace + FaceMesh models."""
    image = astronaut_bgr()
    face = StillFaceFinder(Engine(provider="cpu", iobinding=False, cache_dir=None)).largest(image)
    assert face is not None
    return image, face.landmarks5


def test_template_points_match_insightface_pixels() -> None:
    # InsightFace's 112-px ArcFace points; the 128 template is the same shifted 8 px right.
    ref = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]])
    assert np.abs(template_points("arcface_112_v2", 112) - ref).max() < 1e-3
    assert np.abs(template_points("arcface_128", 128) - (ref + np.array([8.0, 0.0]))).max() < 1e-3
    assert set(TEMPLATES) >= {"arcface_112_v2", "arcface_128", "ffhq_512"}


@pytest.mark.parametrize(
    ("template", "size"), [("arcface_112_v2", 112), ("arcface_128", 128), ("ffhq_512", 512), ("ffhq_512", 256)]
)
@pytest.mark.parametrize("angle", [-30.0, 0.0, 17.0])
def test_exact_landmarks_land_on_the_template(template: str, size: int, angle: float) -> None:
    """Landmarks that are a similarity transform of the template come back onto it (to float precision)."""
    dst = template_points(template, size)
    a = np.deg2rad(angle)
    scale = 1.7
    rot = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    pts = dst @ rot.T + [300.0, 140.0]
    matrix = estimate_affine(pts, template, size)
    assert np.abs(transform_points(pts, matrix) - dst).max() < 1e-6
    assert np.abs(transform_points(dst, invert_affine(matrix)) - pts).max() < 1e-6


def test_exact_landmarks_in_pixels_after_warping_the_image() -> None:
    """Dots drawn at the landmarks are found in the warped crop at the template points (within 1 px)."""
    size = 128
    dst = template_points("arcface_128", size)
    a = np.deg2rad(12.0)
    pts = dst @ (2.3 * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])).T + [200.0, 90.0]
    image = np.zeros((600, 700, 3), np.uint8)
    for p in pts:
        cv2.circle(
            image, (round(p[0] * 16), round(p[1] * 16)), 5 * 16, (255, 255, 255), -1, lineType=cv2.LINE_AA, shift=4
        )
    crop, _ = warp_face(image, pts, "arcface_128", size)
    for target in dst:
        x0, y0 = (round(v) for v in target)
        win = crop[y0 - 5 : y0 + 6, x0 - 5 : x0 + 6, 0].astype(np.float64)
        ys, xs = np.mgrid[y0 - 5 : y0 + 6, x0 - 5 : x0 + 6]
        centre = np.array([(xs * win).sum(), (ys * win).sum()]) / win.sum()
        assert np.abs(centre - target).max() < 1.0, (centre, target)


def _dot_centres(crop: np.ndarray, points: np.ndarray, half: int = 6) -> np.ndarray:
    """Intensity-weighted centres of the bright dots near each expected point."""
    out = []
    for target in points:
        x0, y0 = (round(v) for v in target)
        win = crop[y0 - half : y0 + half + 1, x0 - half : x0 + half + 1, 1].astype(np.float64)
        ys, xs = np.mgrid[y0 - half : y0 + half + 1, x0 - half : x0 + half + 1]
        out.append([(xs * win).sum() / win.sum(), (ys * win).sum() / win.sum()])
    return np.array(out)


def test_detected_astronaut_landmarks_are_warped_where_the_matrix_says(
    astronaut_face: tuple[np.ndarray, np.ndarray],
) -> None:
    """Real detector points: dots drawn at them are found in each aligned crop within 1 px of where the
    matrix maps them, and the fit is the least-squares one (no similarity does better).

    A turned face is not a similarity of the frontal template, so the five points cannot all sit on it:
    for the astronaut (about 3/4 view) the residuals at 112 px are about 2.5 px at the eyes and 7 px at
    the nose and mouth, and the test bounds them at 10 px.
    """
    image, pts = astronaut_face
    marked = (image // 4).astype(np.uint8)  # darkened so the dots stand out
    for p in pts:
        cv2.circle(marked, (round(p[0] * 16), round(p[1] * 16)), 3 * 16, (0, 255, 0), -1, lineType=cv2.LINE_AA, shift=4)
    rng = np.random.default_rng(3)
    for template, size in (("arcface_112_v2", 112), ("arcface_128", 128), ("ffhq_512", 512), ("ffhq_512", 256)):
        crop, matrix = warp_face(marked, pts, template, size)
        warped = transform_points(pts, matrix)
        scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
        found = _dot_centres(crop, warped, half=int(np.ceil(3 * scale)) + 2)
        assert np.abs(found - warped).max() < 1.0, (template, size, found - warped)
        residual = np.linalg.norm(warped - template_points(template, size), axis=1)
        assert residual.max() < 10.0 * size / 112, (template, residual)
        cost = (residual**2).sum()
        for _ in range(20):  # any nearby similarity fits worse
            d = rng.normal(0, 0.01, 4)
            a, b = matrix[0, 0] * (1 + d[0]) - matrix[1, 0] * d[1], matrix[1, 0] * (1 + d[0]) + matrix[0, 0] * d[1]
            other = np.array([[a, -b, matrix[0, 2] + d[2] * size], [b, a, matrix[1, 2] + d[3] * size]])
            assert ((transform_points(pts, other) - template_points(template, size)) ** 2).sum() > cost
