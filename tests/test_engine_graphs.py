"""Graph builders against OpenCV/numpy references on a real image (skimage's astronaut)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from livefuse.engine import Engine, graphs


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine("cpu", cache_dir=tmp_path_factory.mktemp("engine"))


def face_matrix(scale: float, angle: float, center: tuple[float, float], size: int) -> np.ndarray:
    """A frame->crop similarity transform centred on `center`, like a face-alignment matrix."""
    m = cv2.getRotationMatrix2D(center, angle, scale)
    m[:, 2] += np.array([size / 2, size / 2]) - np.array(center)
    return m


@pytest.mark.parametrize(
    ("size", "color", "layout"),
    [((256, 256), "RGB", "NHWC"), ((640, 480), "BGR", "NCHW"), ((1024, 768), "RGB", "NCHW")],
)
def test_preprocess_matches_opencv(
    engine: Engine, astronaut: np.ndarray, size: tuple[int, int], color: str, layout: str
) -> None:
    mean, std = (127.5, 120.0, 110.0), (127.5, 60.0, 64.0)
    sess = engine.session(graphs.preprocess(size, color=color, layout=layout, mean=mean, std=std))
    got = sess.run({"frame": astronaut})["tensor"]
    img = cv2.resize(astronaut.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    if color == "RGB":
        img = img[..., ::-1]
    ref = (img - np.array(mean, np.float32)) / np.array(std, np.float32)
    ref = ref.transpose(2, 0, 1)[None] if layout == "NCHW" else ref[None]
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=2e-4 * 255 / min(std))


def test_mask_blend_matches_numpy(engine: Engine, astronaut: np.ndarray) -> None:
    h, w = astronaut.shape[:2]
    yy, xx = np.mgrid[0:144, 0:256].astype(np.float32)
    mask = np.clip(1.2 - np.hypot((xx - 128) / 60, (yy - 60) / 50), 0, 1)  # soft blob, like a person mask
    bg = np.ascontiguousarray(cv2.GaussianBlur(astronaut, (0, 0), 8))
    sess = engine.session(graphs.mask_blend((256, 144), mask_layout="NHWC"))
    got = sess.run({"frame": astronaut, "mask": mask[None, :, :, None], "background": bg})["image"]
    m = np.clip(cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR), 0, 1)[..., None]
    ref = np.round(bg + m * (astronaut.astype(np.float32) - bg)).clip(0, 255).astype(np.uint8)
    diff = np.abs(got.astype(int) - ref.astype(int))
    assert diff.max() <= 1 and diff.mean() < 0.01
    # A constant background colour and NCHW masks.
    sess = engine.session(graphs.mask_blend((256, 144), mask_layout="NCHW", background=(0, 255, 0)))
    got = sess.run({"frame": astronaut, "mask": mask[None, None]})["image"]
    ref = np.round(np.array([0, 255, 0]) + m * (astronaut - np.array([0, 255, 0]))).astype(np.uint8)
    assert np.abs(got.astype(int) - ref.astype(int)).max() <= 1


def test_warp_crops_match_cv2_warpaffine(engine: Engine, astronaut: np.ndarray) -> None:
    """Max 255-scale error is measured at ~2 (OpenCV interpolates in 1/32-pixel fixed point), mean < 0.2."""
    s = 128
    frame_size = (astronaut.shape[1], astronaut.shape[0])
    mats = np.stack(
        [
            face_matrix(0.9, 12.0, (250, 120), s),
            face_matrix(0.45, -30.0, (300, 300), s),
            face_matrix(1.5, 0.0, (30, 20), s),
        ]
    )  # the last runs off the frame: zero borders
    sess = engine.session(graphs.warp_crops(s, color="BGR", layout="NHWC"))
    got = sess.run({"frame": astronaut, "theta": graphs.crop_theta(mats, frame_size, s)})["crops"]
    assert got.shape == (3, s, s, 3)
    for i, m in enumerate(mats):
        ref = cv2.warpAffine(
            astronaut.astype(np.float32),
            m,
            (s, s),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )
        diff = np.abs(got[i] - ref)
        assert diff.mean() < 0.2 and diff.max() < 3.0, (i, diff.mean(), diff.max())
    # Normalised NCHW RGB output for a model is the same pixels, rearranged.
    sess = engine.session(
        graphs.warp_crops(s, color="RGB", layout="NCHW", mean=(127.5,) * 3, std=(127.5,) * 3)
    )
    norm = sess.run({"frame": astronaut, "theta": graphs.crop_theta(mats, frame_size, s)})["crops"]
    np.testing.assert_allclose(norm * 127.5 + 127.5, got[..., ::-1].transpose(0, 3, 1, 2), atol=1e-3)


def test_paste_back_matches_cv2(engine: Engine, astronaut: np.ndarray) -> None:
    s = 128
    h, w = astronaut.shape[:2]
    m = face_matrix(0.9, 12.0, (250, 120), s)
    crop = cv2.warpAffine(astronaut, m, (s, s))
    edited = 255.0 - crop.astype(np.float32)  # a visible edit: the negative
    rgb01 = (edited[..., ::-1] / 255.0).transpose(2, 0, 1)[None].astype(np.float32)  # model-style output
    sess = engine.session(graphs.paste_back(s, color="RGB", layout="NCHW", std=(255.0,) * 3))
    got = sess.run({"frame": astronaut, "crops": rgb01, "theta": graphs.paste_theta(m[None], (w, h), s)})[
        "image"
    ]
    inv = cv2.invertAffineTransform(m)
    warped = cv2.warpAffine(edited, inv, (w, h), flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(graphs.feather_mask(s), inv, (w, h), flags=cv2.INTER_LINEAR)[..., None]
    ref = np.round(astronaut * (1 - np.minimum(alpha, 1)) + warped * alpha).clip(0, 255)
    diff = np.abs(got.astype(np.float32) - ref)
    assert diff.mean() < 0.1 and diff.max() <= 4, (diff.mean(), diff.max())
    assert np.array_equal(got[400:], astronaut[400:])  # far from the face nothing changes
    changed = np.abs(got.astype(int) - astronaut.astype(int)).sum(axis=2) > 30
    ys, xs = np.nonzero(changed)
    assert 150 < xs.mean() < 350 and 40 < ys.mean() < 200  # and the face region did change


def test_two_faces_paste_and_occlusion_mask(engine: Engine, astronaut: np.ndarray) -> None:
    s = 64
    h, w = astronaut.shape[:2]
    mats = np.stack([face_matrix(0.5, 0.0, (120, 120), s), face_matrix(0.5, 0.0, (400, 380), s)])
    crops = np.zeros((2, 3, s, s), np.float32)  # black faces
    mask = np.ones((2, 1, s, s), np.float32)
    mask[1] = 0.0  # second face fully occluded: left as it was
    sess = engine.session(graphs.paste_back(s, color="BGR", with_mask=True))
    got = sess.run(
        {"frame": astronaut, "crops": crops, "theta": graphs.paste_theta(mats, (w, h), s), "mask": mask}
    )["image"]
    assert got[110:130, 110:130].max() <= 2  # first face blacked out at its centre
    np.testing.assert_array_equal(got[370:390, 390:410], astronaut[370:390, 390:410])
