"""Render presets/pictures/face-swap-talk.jpg: the mouth region of the demo under face-swap-talk.

    .venv/bin/python tools/swap_talk_picture.py

inswapper_128 cannot be shipped or downloaded here, so the swap runs the STAND-IN swapper the tests
use (tests/models_builder.py, "tint": it repaints the aligned face with an identity-coloured ramp)
and the stand-in ArcFace; the picture says so. Everything else is the shipped preset: the face stage
with FaceMesh, the swap with its colour match and paste-back, and the mouth mask. Three panels of the
same 1280x720 demo frame (one second into the clip, as tools/preset_pictures.py does): the input,
the swap with no kept regions, face-swap-talk as shipped, and how far that output is from the input
(x4: black where the own mouth was kept).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import models_builder as mb  # noqa: E402

from livefuse.engine import Engine  # noqa: E402
from livefuse.frame import Frame  # noqa: E402
from livefuse.presets import PRESETS_DIR, load_preset  # noqa: E402
from livefuse.sources.demo import DemoSource, astronaut_bgr  # noqa: E402
from livefuse.stage import StageContext  # noqa: E402
from livefuse.wiring import build_chain  # noqa: E402

OUT = PRESETS_DIR / "pictures" / "face-swap-talk.jpg"
SIZE = (1280, 720)
FPS = 30.0
FRAMES = 30
T0 = 2.0
ZOOM = 2


def _preset(work: Path, keep: bool) -> Path:
    """face-swap-talk with the stand-in models and a source photo (and optionally no kept mouth)."""
    text = (PRESETS_DIR / "face-swap-talk.toml").read_text()
    text = text.replace('model = "inswapper_128"', f'model = "{work / "standin_swapper.onnx"}"')
    text = text.replace('arcface_model = "w600k_r50"', f'arcface_model = "{work / "standin_arcface.onnx"}"')
    text = text.replace('source_image = ""', 'source_image = "source.png"')
    if not keep:
        text = text.replace('keep_regions = ["mouth"]', "keep_regions = []")
    path = work / f"talk-{keep}.toml"
    path.write_text(text)
    return path


def _run(preset_path: Path, engine: Engine) -> Frame:
    preset = load_preset(str(preset_path))
    chain = build_chain(preset, StageContext(engine=engine, size=SIZE, fps=FPS, preset_dir=preset_path.parent))
    source = DemoSource(SIZE, FPS, paced=False)
    frame = None
    try:
        for i in range(FRAMES):
            frame = Frame(seq=i, capture_ns=time.monotonic_ns(), image=source.render(T0 + i / FPS))
            chain.run(frame, chain.admit())
        if chain.stats.stage_errors:
            raise RuntimeError(f"stage errors: {chain.stats.stage_errors}")
    finally:
        chain.close()
    assert frame is not None
    return frame


def _panel(image: np.ndarray, box: tuple[int, int, int, int], label: str) -> np.ndarray:
    x1, y1, x2, y2 = box
    crop = cv2.resize(image[y1:y2, x1:x2], ((x2 - x1) * ZOOM, (y2 - y1) * ZOOM), interpolation=cv2.INTER_CUBIC)
    out = cv2.copyMakeBorder(crop, 34, 0, 0, 0, cv2.BORDER_CONSTANT, value=(30, 30, 30))
    cv2.putText(out, label, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="livefuse-talk-"))
    mb.save(mb.inswapper("tint"), work / "standin_swapper.onnx")
    mb.save(mb.arcface(), work / "standin_arcface.onnx")
    cv2.imwrite(str(work / "source.png"), np.ascontiguousarray(astronaut_bgr()[:, :, ::-1]))
    engine = Engine(provider="cpu", cache_dir=work / "cache")
    talk = _run(_preset(work, True), engine)
    plain = _run(_preset(work, False), engine)
    face = max(talk.faces, key=lambda f: float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1])))
    assert face.mesh is not None, "the face stage ran without FaceMesh"
    x1, y1, x2, y2 = face.box.astype(int)
    h = y2 - y1
    box = (max(0, x1), max(0, y1 + h * 45 // 100), min(SIZE[0], x2), min(SIZE[1], y1 + h * 105 // 100))
    source = DemoSource(SIZE, FPS, paced=False).render(T0 + (FRAMES - 1) / FPS)
    changed = np.clip(np.abs(talk.image.astype(np.int16) - source.astype(np.int16)) * 4, 0, 255).astype(np.uint8)
    row = np.hstack(
        [
            _panel(source, box, "input"),
            _panel(plain.image, box, "keep_regions = []"),
            _panel(talk.image, box, "face-swap-talk (0.4)"),
            _panel(changed, box, "|talk - input| x4"),
        ]
    )
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
    cv2.imwrite(str(OUT), np.vstack([banner, row]), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {OUT.relative_to(ROOT)} (mouth box {tuple(int(v) for v in box)} of the 1280x720 frame, zoom {ZOOM}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
