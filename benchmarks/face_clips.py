"""The face benchmark's clips: one face (the demo source), three faces, and a face that enters mid-clip.

Written once to H.264 under benchmarks/clip/ (git-ignored) so livefuse's face stage and MediaPipe's
FaceMesh decode exactly the same frames. The faces are scikit-image's astronaut, as in the tests.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402

from livefuse.sources.demo import DemoSource, astronaut_bgr  # noqa: E402

SIZE = (1280, 720)
FPS = 30.0
PORTRAIT = (300, 330)  # width, height of each pasted head-and-shoulders crop (face about 160 px)


def _room(width: int, height: int) -> np.ndarray:
    rng = np.random.default_rng(4)
    canvas = np.full((height, width, 3), (120, 130, 140), np.uint8)
    for _ in range(30):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        colour = tuple(int(c) for c in rng.integers(30, 230, 3))
        cv2.rectangle(canvas, (x, y), (x + int(rng.integers(20, 200)), y + int(rng.integers(20, 150))), colour, -1)
    return canvas


def _paste(canvas: np.ndarray, portrait: np.ndarray, x: int, y: int) -> None:
    """Paste `portrait` with its top-left at (x, y), clipped to the canvas (a face half out of frame)."""
    h, w = portrait.shape[:2]
    ch, cw = canvas.shape[:2]
    x1, y1, x2, y2 = max(0, x), max(0, y), min(cw, x + w), min(ch, y + h)
    if x2 > x1 and y2 > y1:
        canvas[y1:y2, x1:x2] = portrait[y1 - y : y2 - y, x1 - x : x2 - x]


def scenes(size: tuple[int, int] = SIZE) -> dict[str, Callable[[int], np.ndarray]]:
    """name -> frame maker (frame index -> BGR image)."""
    width, height = size
    room = _room(width, height)
    portrait = cv2.resize(astronaut_bgr()[20:280, 100:340], PORTRAIT, interpolation=cv2.INTER_AREA)
    demo = DemoSource(size, FPS, paced=False)

    def three(i: int) -> np.ndarray:
        t = i / FPS
        canvas = room.copy()
        for k in range(3):
            x = int(60 + k * (width - 420) / 2 + 30 * np.sin(2 * t + k))
            y = int(160 + 60 * np.cos(1.5 * t + 2 * k))
            _paste(canvas, portrait, x, y)
        return canvas

    def enters(i: int) -> np.ndarray:
        """Nobody for 3 s, then a face slides in from the left edge over 1 s and stays, drifting."""
        t = i / FPS
        canvas = room.copy()
        if t >= 3.0:
            x = int(-PORTRAIT[0] + min(1.0, t - 3.0) * (width / 2 - PORTRAIT[0] / 2 + PORTRAIT[0]))
            _paste(canvas, portrait, x + int(20 * np.sin(t)), int(180 + 30 * np.sin(1.3 * t)))
        return canvas

    return {"1face": lambda i: demo.render(i / FPS), "3faces": three, "enters": enters}


def write_clips(directory: Path, frames: int) -> dict[str, Path]:
    """Each scene rendered to directory/face-NAME-WxH-FPS-FRAMES.mp4 (kept if already there)."""
    import av

    out = {}
    for name, make in scenes().items():
        path = directory / f"face-{name}-{SIZE[0]}x{SIZE[1]}-{FPS:g}fps-{frames}.mp4"
        out[name] = path
        if path.is_file():
            continue
        directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.mp4")
        with av.open(str(tmp), "w") as container:
            stream = container.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=int(FPS))
            stream.width, stream.height, stream.pix_fmt = SIZE[0], SIZE[1], "yuv420p"
            stream.options = {"crf": "16", "preset": "medium"}
            for i in range(frames):
                container.mux(stream.encode(av.VideoFrame.from_ndarray(make(i), format="bgr24")))
            container.mux(stream.encode(None))
        tmp.replace(path)
    return out


if __name__ == "__main__":
    for name, path in write_clips(ROOT / "benchmarks" / "clip", int(sys.argv[1]) if len(sys.argv) > 1 else 300).items():
        print(name, path)
