"""Generate the files the shipped presets use, under presets/assets/ (deterministic; rerun to rebuild).

    .venv/bin/python tools/make_preset_assets.py

- cinematic.cube: a 17-point (small and smooth) "teal and orange" film look: a gentle S-curve, lifted blacks, shadows
  pushed towards teal, skin and highlights towards warm orange, slightly reduced saturation.
- room.jpg: a 1920x1080 soft-focus "home office" picture (wall gradient, window light, shelf, plant)
  for the background-replace preset; drawn with OpenCV, so it is ours to ship.
"""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from livefuse.stages.colour.cube import identity_cube, write_cube  # noqa: E402

ASSETS = ROOT / "presets" / "assets"


def cinematic_lut(size: int = 17) -> np.ndarray:
    rgb = identity_cube(size).astype(np.float64)
    # S-curve on each channel (smoothstep blended in), with lifted blacks and soft highlights.
    s = rgb * rgb * (3 - 2 * rgb)
    rgb = 0.55 * rgb + 0.45 * s
    rgb = 0.04 + 0.93 * rgb
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    shadow = np.clip(1.0 - luma / 0.55, 0.0, 1.0)[..., None]
    highlight = np.clip((luma - 0.35) / 0.65, 0.0, 1.0)[..., None]
    teal = np.array([-0.06, 0.015, 0.05])
    orange = np.array([0.06, 0.015, -0.05])
    rgb = rgb + shadow * teal + highlight * orange
    # Slightly less saturation overall: a filmic, not a garish, look.
    luma = (rgb @ np.array([0.299, 0.587, 0.114]))[..., None]
    rgb = luma + (rgb - luma) * 0.88
    return np.clip(rgb, 0.0, 1.0).astype(np.float32)


def room(width: int = 1920, height: int = 1080) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = xx / width, yy / height
    img = np.empty((height, width, 3), np.float32)
    # Warm wall, lighter towards a window on the left; darker floor strip.
    light = np.exp(-((u - 0.18) ** 2) / 0.08 - ((v - 0.35) ** 2) / 0.3)
    img[..., 2] = 175 + 55 * light - 30 * v
    img[..., 1] = 160 + 50 * light - 30 * v
    img[..., 0] = 140 + 40 * light - 35 * v
    floor = v > 0.82
    img[floor] = np.array([70, 95, 125], np.float32) * (1.1 - 0.3 * (v[floor, None] - 0.82) / 0.18)
    out = img.clip(0, 255).astype(np.uint8)
    # Window with light.
    cv2.rectangle(
        out, (int(0.06 * width), int(0.12 * height)), (int(0.30 * width), int(0.62 * height)), (245, 240, 232), -1
    )
    for x in (0.18,):
        cv2.line(out, (int(x * width), int(0.12 * height)), (int(x * width), int(0.62 * height)), (200, 196, 190), 8)
    cv2.line(out, (int(0.06 * width), int(0.37 * height)), (int(0.30 * width), int(0.37 * height)), (200, 196, 190), 8)
    # Shelf with books on the right.
    y0 = int(0.40 * height)
    cv2.rectangle(out, (int(0.62 * width), y0), (int(0.95 * width), y0 + 18), (60, 90, 120), -1)
    rng = np.random.default_rng(3)
    x = int(0.63 * width)
    while x < int(0.93 * width):
        w, h = int(rng.integers(18, 40)), int(rng.integers(90, 150))
        colour = tuple(int(c) for c in rng.integers(40, 200, 3))
        cv2.rectangle(out, (x, y0 - h), (x + w, y0), colour, -1)
        x += w + int(rng.integers(2, 8))
    # A plant: pot and leaves.
    px, py = int(0.45 * width), int(0.82 * height)
    cv2.rectangle(out, (px - 50, py - 110), (px + 50, py), (50, 80, 150), -1)
    for angle in range(-70, 80, 14):
        a = np.radians(angle - 90)
        tip = (int(px + 230 * np.cos(a)), int(py - 110 + 230 * np.sin(a)))
        cv2.ellipse(
            out,
            ((px + tip[0]) // 2, (py - 110 + tip[1]) // 2),
            (125, 22),
            angle,
            0,
            360,
            (60, 140 + angle % 40, 50),
            -1,
        )
    # Soft focus, like a real background at a video call's depth of field.
    return cv2.GaussianBlur(out, (0, 0), 3)


def main() -> None:
    ASSETS.mkdir(parents=True, exist_ok=True)
    write_cube(ASSETS / "cinematic.cube", cinematic_lut(), title="livefuse cinematic (teal/orange)")
    cv2.imwrite(str(ASSETS / "room.jpg"), room(), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {ASSETS / 'cinematic.cube'} and {ASSETS / 'room.jpg'}")


if __name__ == "__main__":
    main()
