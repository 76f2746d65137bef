"""The frame graphs (livefuse/device/graphs.py) against OpenCV and numpy references on skimage's astronaut."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from livefuse.device import graphs
from livefuse.engine import Engine
from livefuse.faces.paste import box_mask, paste_back, paste_region


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    skimage_data = pytest.importorskip("skimage.data")
    return np.ascontiguousarray(cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR))


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Engine:
    return Engine("cpu", cache_dir=tmp_path_factory.mktemp("engine"))


MEAN_CROP, MAX_CROP = 0.3, 1.0  # measured 0.20-0.24 and 0.5: OpenCV rounds its crop to uint8
MEAN_PASTE, MAX_PASTE = 0.05, 1  # measured 0.007 and 1


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


def test_face_crop_matches_cv2_warpaffine(engine: Engine, astronaut: np.ndarray) -> None:
    """The CPU path's crop (`cv2.warpAffine`, bicubic, replicated borders), within its rounding to uint8."""
    s = 128
    frame_size = (astronaut.shape[1], astronaut.shape[0])
    mats = [
        face_matrix(0.9, 12.0, (250, 120), s),
        face_matrix(0.45, -30.0, (300, 300), s),
        face_matrix(1.5, 0.0, (30, 20), s),
    ]  # the last runs off the frame: replicated borders
    plain = engine.session(graphs.face_crop(s, 0.0, 1.0))
    normalised = engine.session(graphs.face_crop(s, 127.5, 127.5))
    for i, m in enumerate(mats):
        theta = graphs.crop_theta(m[None], frame_size, s)
        got = plain.run({"frame": astronaut, "theta": theta})["crop"]
        assert got.shape == (1, 3, s, s)
        ref = cv2.warpAffine(astronaut, m, (s, s), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
        diff = np.abs(got[0].transpose(1, 2, 0)[..., ::-1] - ref)
        assert diff.mean() < MEAN_CROP and diff.max() < MAX_CROP, (i, diff.mean(), diff.max())
        # normalised for a model, the same pixels
        norm = normalised.run({"frame": astronaut, "theta": theta})["crop"]
        np.testing.assert_allclose(norm * 127.5 + 127.5, got, atol=1e-3)


def _pasted(engine: Engine, frame: np.ndarray, crop_bgr: np.ndarray, mask: np.ndarray, m: np.ndarray) -> np.ndarray:
    """`face_paste` as `device.crops.FaceCrops.put` runs it: the crop as RGB in 0..1, over its region alone."""
    s = crop_bgr.shape[0]
    x1, y1, x2, y2 = paste_region(frame.shape, s, m)
    shifted = np.asarray(m, np.float64).copy()
    shifted[:, 2] += shifted[:, :2] @ np.array([x1, y1], np.float64)
    rgb01 = (crop_bgr[..., ::-1].astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
    feeds = {
        "frame": frame,
        "crop": np.ascontiguousarray(rgb01),
        "box": np.array([x1, y1, x2, y2], np.int64),
        "theta": graphs.paste_theta(shifted[None], (x2 - x1, y2 - y1), s),
        "mask": np.ascontiguousarray(mask[None, None], np.float32),
    }
    return np.asarray(engine.session(graphs.face_paste(s, 0.0, 255.0)).run(feeds)["image"])


def test_face_paste_matches_the_cpu_paste_back(engine: Engine, astronaut: np.ndarray) -> None:
    s = 128
    m = face_matrix(0.9, 12.0, (250, 120), s)
    crop = cv2.warpAffine(astronaut, m, (s, s))
    edited = (255 - crop).astype(np.uint8)  # a visible edit: the negative
    mask = box_mask(s, 0.3)
    got = _pasted(engine, astronaut, edited, mask, m)
    ref = astronaut.copy()
    paste_back(ref, edited, mask, m, 1.0)
    diff = np.abs(got.astype(np.float32) - ref)
    assert diff.mean() < MEAN_PASTE and diff.max() <= MAX_PASTE, (diff.mean(), diff.max())
    assert np.array_equal(got[400:], astronaut[400:])  # far from the face nothing changes
    changed = np.abs(got.astype(int) - astronaut.astype(int)).sum(axis=2) > 30
    ys, xs = np.nonzero(changed)
    assert 150 < xs.mean() < 350 and 40 < ys.mean() < 200  # and the face region did change


def test_two_faces_paste_and_a_zero_mask_leaves_a_face_as_it_was(engine: Engine, astronaut: np.ndarray) -> None:
    s = 64
    black = np.zeros((s, s, 3), np.uint8)
    first = _pasted(engine, astronaut, black, np.ones((s, s), np.float32), face_matrix(0.5, 0.0, (120, 120), s))
    got = _pasted(engine, first, black, np.zeros((s, s), np.float32), face_matrix(0.5, 0.0, (400, 380), s))
    assert got[110:130, 110:130].max() <= 2  # first face blacked out at its centre
    np.testing.assert_array_equal(got[370:390, 390:410], astronaut[370:390, 390:410])
