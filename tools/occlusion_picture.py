"""Render presets/pictures/swap-occlusion.jpg: swap's occlusion = "hands" on a real hand in front of a face.

    .venv/bin/python tools/occlusion_picture.py

inswapper_128 cannot be shipped or downloaded here, so the swap runs the STAND-IN swapper the tests use
(tests/models_builder.py, "tint": it repaints the aligned face with an identity-coloured ramp); the
picture says so. The hand models are the real, bundled MediaPipe ones. The photos are the tests'
(tests/hand_photos.py): first row, a real hand pasted in front of a real face; second row, a real photo
of a hand on a face (tests/data/mediapipe_hand_on_cheek.jpg). Panels: the input, the swap with occlusion
off (the hand painted over), occlusion = "hands", and the hand model's landmarks and feathered hull
(red: where the original stays).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import models_builder as mb  # noqa: E402
from hand_photos import FACES, HAND_ON_CHEEK, hand_in_front, weight_map  # noqa: E402

from livefuse.engine import Engine  # noqa: E402
from livefuse.faces.detect import StillFaceFinder  # noqa: E402
from livefuse.faces.occlusion import HandOcclusion  # noqa: E402
from livefuse.frame import Face, Frame  # noqa: E402
from livefuse.presets import PRESETS_DIR, validate_params  # noqa: E402
from livefuse.sources.demo import astronaut_bgr  # noqa: E402
from livefuse.stage import StageContext  # noqa: E402
from livefuse.stages.swap.cpu import SwapStage  # noqa: E402
from livefuse.stages.swap.spec import SPEC  # noqa: E402

OUT = PRESETS_DIR / "pictures" / "swap-occlusion.jpg"


def _panel(image: np.ndarray, box: tuple[int, int, int, int], label: str, width: int) -> np.ndarray:
    x1, y1, x2, y2 = box
    crop = image[y1:y2, x1:x2]
    if crop.shape[1] != width:
        crop = cv2.resize(crop, (width, round(crop.shape[0] * width / crop.shape[1])), interpolation=cv2.INTER_CUBIC)
    out = cv2.copyMakeBorder(crop, 34, 0, 0, 0, cv2.BORDER_CONSTANT, value=(30, 30, 30))
    cv2.putText(out, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _row(
    engine: Engine,
    params: dict[str, str],
    image: np.ndarray,
    face: Face,
    title: str,
    margin: tuple[int, int, int, int],
    width: int | None = None,
) -> np.ndarray:
    """The four panels for one photo (the first labelled `title`), cropped to the face grown by `margin`
    (left, top, right, bottom) and scaled to `width` pixels wide each (unscaled without one)."""
    outputs = {}
    for mode in ("off", "hands"):
        stage = SwapStage(
            validate_params(SPEC, {**params, "occlusion": mode}, "picture"),
            StageContext(engine=engine, size=(image.shape[1], image.shape[0]), fps=30.0),
        )
        stage.set_source_face(astronaut_bgr())
        frame = Frame(0, 0, image.copy(), faces=[face])
        stage.process(frame)
        outputs[mode] = frame.image
    occlusion = HandOcclusion(engine)
    weight = weight_map(occlusion.regions(image, [face]), image.shape)[..., None] * 0.5
    shown = (image * (1 - weight) + np.array([0, 0, 255.0]) * weight).astype(np.uint8)
    for points in occlusion.hands(image, [face]):
        for x, y in points:
            cv2.circle(shown, (int(x), int(y)), 3, (0, 255, 255), -1, cv2.LINE_AA)
    x1, y1, x2, y2 = face.box.astype(int)
    left, top, right, bottom = margin
    box = (max(0, x1 - left), max(0, y1 - top), min(image.shape[1], x2 + right), min(image.shape[0], y2 + bottom))
    width = width or box[2] - box[0]
    return np.hstack(
        [
            _panel(image, box, title, width),
            _panel(outputs["off"], box, "occlusion = off", width),
            _panel(outputs["hands"], box, "occlusion = hands", width),
            _panel(shown, box, "hand model", width),
        ]
    )


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="livefuse-occlusion-"))
    engine = Engine(provider="cpu", cache_dir=work / "cache")
    params = {
        "model": str(mb.save(mb.inswapper("tint"), work / "standin_swapper.onnx")),
        "arcface_model": str(mb.save(mb.arcface(), work / "standin_arcface.onnx")),
    }
    finder = StillFaceFinder(engine)
    photo = cv2.imread(str(FACES))
    assert photo is not None
    face = finder.largest(photo)
    assert face is not None
    image, _, _ = hand_in_front(photo, face)
    pasted = _row(engine, params, image, face, "input: hand pasted on", (20, 20, 120, 110))
    real = cv2.imread(str(HAND_ON_CHEEK))
    assert real is not None
    face = finder.largest(real)
    assert face is not None
    real_row = _row(engine, params, real, face, "input: real photo", (60, 40, 30, 50), pasted.shape[1] // 4)
    row = np.vstack([pasted, real_row])
    banner = np.full((30, row.shape[1], 3), (0, 0, 160), np.uint8)
    cv2.putText(
        banner,
        "STAND-IN swap model (tests/models_builder.py 'tint'), NOT inswapper_128",
        (8, 21),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.6,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(OUT), np.vstack([banner, row]), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
