"""What every peer shares with `livefuse bench`: the clip released in real time, and the figures.

The clip is decoded with OpenCV (every peer venv has it) on the camera-emulator thread, the same
`ReleasedCamera` livefuse's own benchmark reads, and results go through the same `mode_result`,
so every contender is paced, measured and reported identically.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))  # these livefuse modules need only numpy: usable from any venv

from livefuse.bench.camera import ReleasedCamera, preloaded  # noqa: E402
from livefuse.bench.report import Measured, mode_result, write_json  # noqa: E402
from livefuse.commands.args import size_arg  # noqa: E402

StageTimes = dict[str, int]


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--clip", type=Path, required=True, help="video file, released at --fps")
    parser.add_argument("--size", type=size_arg, default=(1280, 720), metavar="WxH")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--downscale", type=int, default=4, help="blur at 1/N size, like livefuse's stage")
    parser.add_argument("--blur-sigma", type=float, default=10.1, help="Gaussian sigma at the 1/N size")
    parser.add_argument(
        "--blur",
        choices=("matched", "docs"),
        default="matched",
        help="matched: livefuse's blur strength; docs: the (55, 55) full-size kernel of MediaPipe's example",
    )
    parser.add_argument("--model", type=Path, default=ROOT / "models/mediapipe/selfie_segmentation_landscape.onnx")
    parser.add_argument("--preload", type=int, default=0, help="cycle the first N frames (capacity runs)")
    parser.add_argument("--json", type=Path, required=True)
    return parser.parse_args()


def face_args(description: str, extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The face benchmark's options: the clip and its release, how many faces to look for, the JSON."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--clip", type=Path, required=True, help="video file, released at --fps")
    parser.add_argument("--size", type=size_arg, default=(1280, 720), metavar="WxH")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--preload", type=int, default=0, help="cycle the first N frames (capacity runs)")
    parser.add_argument("--max-faces", type=int, default=1, help="look for at most this many faces")
    parser.add_argument("--json", type=Path, required=True)
    if extra is not None:
        extra(parser)
    return parser.parse_args()


def faces_summary(counts: list[int]) -> dict[str, Any]:
    """Faces found per measured frame: the mean, and how many frames had none."""
    return {
        "per_frame": round(float(np.mean(counts)), 3) if counts else 0.0,
        "frames": len(counts),
        "frames_without": int(sum(c == 0 for c in counts)),
        "counts": counts,
    }


def clip_producer(path: Path, size: tuple[int, int]) -> Callable[[], np.ndarray | None]:
    """Next BGR frame of the clip at `size`, looping at its end."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise SystemExit(f"cannot open clip {path}")

    def produce() -> np.ndarray | None:
        ok, image = cap.read()
        if not ok:
            cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, image = cap.read()
            if not ok:
                return None
        if image.shape[1::-1] != size:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return image

    return produce


def blurred_background(image: np.ndarray, args: argparse.Namespace) -> np.ndarray:
    """The whole frame blurred as strongly as livefuse's stage blurs (same sigma at the same 1/N size)."""
    if args.blur == "docs":
        return cv2.GaussianBlur(image, (55, 55), 0)
    h, w = image.shape[:2]
    small = cv2.resize(image, (w // args.downscale, h // args.downscale), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), args.blur_sigma)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


class Timer:
    """Accumulates named step durations for one frame."""

    def __init__(self) -> None:
        self.steps: StageTimes = {}
        self._t = time.perf_counter_ns()

    def lap(self, name: str) -> None:
        now = time.perf_counter_ns()
        self.steps[name] = self.steps.get(name, 0) + now - self._t
        self._t = now


def run_loop(
    args: argparse.Namespace,
    camera: ReleasedCamera,
    process: Callable[[np.ndarray], tuple[np.ndarray, StageTimes]],
    measured: Measured,
) -> None:
    """The naive loop: read the newest released frame, process it, "write" it (null output), repeat."""
    while True:
        image = camera.read()
        if image is None:
            return
        taken = time.monotonic_ns()
        got = camera.reads[-1]
        out, steps = process(image)
        del out  # the null output
        record(measured, got.index, got.release_ns, taken, time.monotonic_ns(), steps)


def record(measured: Measured, index: int, release_ns: int, taken_ns: int, output_ns: int, steps: StageTimes) -> None:
    """One frame that reached the output, with the time each of its steps took."""
    for name, ns in steps.items():
        measured.stages_ns.setdefault(name, []).append(ns)
    measured.outputs.append((index, release_ns, taken_ns, output_ns, sum(steps.values())))


def ort_segment_blur(args: argparse.Namespace) -> Callable[[np.ndarray], tuple[np.ndarray, StageTimes]]:
    """The OpenCV + onnxruntime transform on `args.model`: resize to the model's input, RGB float in
    [0, 1], `session.run` (CPU, default session options), upsample the mask, numpy blend over
    `blurred_background`."""
    import onnxruntime as ort  # imported here: the MediaPipe peer's venv has no onnxruntime

    session = ort.InferenceSession(str(args.model), providers=["CPUExecutionProvider"])
    inp = session.get_inputs()[0]
    _, mh, mw, _ = inp.shape

    def transform(image: np.ndarray) -> tuple[np.ndarray, StageTimes]:
        timer = Timer()
        h, w = image.shape[:2]
        x = cv2.cvtColor(cv2.resize(image, (mw, mh)), cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255.0
        mask = session.run(None, {inp.name: x})[0].reshape(mh, mw)
        timer.lap("segment")
        alpha = cv2.resize(mask, (w, h))[..., None]
        out = (image * alpha + blurred_background(image, args) * (1.0 - alpha)).astype(np.uint8)
        timer.lap("composite")
        return out, timer.steps

    return transform


def make_camera(args: argparse.Namespace, warmup: Callable[[np.ndarray], Any]) -> ReleasedCamera:
    """The clip's camera, after `warmup` ran on its first frames (unmeasured, as livefuse's bench does)."""
    produce = clip_producer(args.clip, args.size)
    if args.preload > 0:
        produce = preloaded(produce, args.preload)
    for _ in range(args.warmup):
        image = produce()
        if image is not None:
            warmup(image)
    return ReleasedCamera(produce, args.fps, args.frames, size=args.size, description=f"clip {args.clip}")


def measure(
    args: argparse.Namespace,
    process: Callable[[np.ndarray], tuple[np.ndarray, StageTimes]],
    drive: Callable[[ReleasedCamera, Measured], None] | None = None,
) -> tuple[ReleasedCamera, Measured]:
    """Warm `process` up, release the clip and let `drive` (default: `run_loop`) take it to its end,
    with CPU and memory usage measured; returns the closed camera and the figures for `finish`."""
    camera = make_camera(args, process)
    measured = Measured(release_ns=camera.release_times_ns)
    measured.usage.start()
    camera.start()
    if drive is None:
        run_loop(args, camera, process, measured)
    else:
        drive(camera, measured)
    measured.usage.stop()
    camera.close()
    return camera, measured


def finish(
    args: argparse.Namespace,
    peer: str,
    mode: str,
    provider: str,
    measured: Measured,
    camera: ReleasedCamera,
    notes: str,
    *,
    preset: str = "background-blur",
    extra: dict[str, Any] | None = None,
) -> None:
    measured.provider = provider
    measured.camera_slips = camera.slips
    result = {
        "preset": preset,
        "peer": peer,
        "notes": notes,
        "source": str(args.clip),
        "size": list(args.size),
        "fps_target": args.fps,
        "frames": args.frames,
        "provider": provider,
        "blur": getattr(args, "blur", None),
        "preload": args.preload,
        "modes": {mode: mode_result(measured)},
        **(extra or {}),
    }
    write_json(result, args.json)
    m = result["modes"][mode]
    print(
        json.dumps(
            {
                "peer": peer,
                "fps": m["fps"],
                "dropped": m["dropped"],
                "latency_ms": m["latency_ms"],
                "cpu_percent": m["cpu_percent"],
                "rss_mb": m["rss_mb"],
            }
        )
    )
