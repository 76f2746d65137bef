"""Render one picture per shipped preset from the demo source, for presets/README.md.

    .venv/bin/python tools/preset_pictures.py [NAME ...]

Each preset runs for a second of the 1280x720 demo clip (so tracking and mask smoothing settle), and
the last frame is written, halved, to presets/pictures/NAME.jpg next to the unfiltered input
(presets/pictures/input.jpg). Presets whose models are not pulled are skipped with the reason.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livefuse.engine import Engine  # noqa: E402
from livefuse.errors import UserError  # noqa: E402
from livefuse.frame import Frame  # noqa: E402
from livefuse.presets import PRESETS_DIR, load_preset  # noqa: E402
from livefuse.sources.demo import DemoSource  # noqa: E402
from livefuse.stage import StageContext  # noqa: E402
from livefuse.wiring import build_chain  # noqa: E402

OUT = PRESETS_DIR / "pictures"
SIZE = (1280, 720)
FPS = 30.0
FRAMES = 30
T0 = 2.0  # seconds into the demo clip: the face is turned a little, not centred


def render(name: str, engine: Engine) -> Path:
    preset = load_preset(str(PRESETS_DIR / f"{name}.toml"))
    context = StageContext(engine=engine, size=SIZE, fps=FPS, preset_dir=preset.path.parent)
    chain = build_chain(preset, context)
    source = DemoSource(SIZE, FPS, paced=False)
    try:
        frame = None
        for i in range(FRAMES):
            frame = Frame(seq=i, capture_ns=time.monotonic_ns(), image=source.render(T0 + i / FPS))
            chain.run(frame, chain.admit())
        assert frame is not None
        errors = chain.stats.stage_errors
        if errors:
            raise RuntimeError(f"stage errors: {errors}")
    finally:
        chain.close()
    path = OUT / f"{name}.jpg"
    cv2.imwrite(
        str(path),
        cv2.resize(frame.image, (SIZE[0] // 2, SIZE[1] // 2), interpolation=cv2.INTER_AREA),
        [cv2.IMWRITE_JPEG_QUALITY, 85],
    )
    return path


def main(names: list[str]) -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    source = DemoSource(SIZE, FPS, paced=False)
    cv2.imwrite(
        str(OUT / "input.jpg"),
        cv2.resize(source.render(T0 + (FRAMES - 1) / FPS), (SIZE[0] // 2, SIZE[1] // 2), interpolation=cv2.INTER_AREA),
        [cv2.IMWRITE_JPEG_QUALITY, 85],
    )
    engine = Engine(provider="cpu", cache_dir=Path(tempfile.mkdtemp(prefix="livefuse-pictures-")))
    for name in names or sorted(p.stem for p in PRESETS_DIR.glob("*.toml")):
        try:
            print(f"{name}: wrote {render(name, engine).relative_to(ROOT)}")
        except UserError as exc:
            print(f"{name}: skipped ({exc})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
