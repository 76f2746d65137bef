"""The background stage's edge refinement (`edge` = off, fast, fine): quality on the demo, and its cost.

    .venv/bin/python benchmarks/edge_refine.py [--size 1280x720] [--runs 30]
    .venv/bin/python benchmarks/edge_refine.py --portraits [--scale 1] [--runs 30]

The demo composes the astronaut over the room through a known alpha (`DemoSource.alpha`), so each frame's
true matte is known. For each setting it prints, over `--runs` demo frames after a second of EMA warm-up
(preset background-blur's settings otherwise, the OpenCV path as on the CPU provider):
- the alpha error in the band within 10 px of the true edge, and the boundary F-score at 2 px and 5 px
  (livefuse/bench/matte.py);
- the median ms of the matte alone (`person_matte`: upsample, plus the refinement) and of the whole stage.

`--portraits` measures the same on the real photos of benchmarks/data/matting (people with hand-drawn
person masks; README.md there says where from), each a still frame repeated through the stage, at its own
size times `--scale`: a row per photo and setting, then the mean over the photos.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from stage_timing import cpu_context, median_ms, preset_stage

from livefuse.bench.matte import boundary_fscore, edge_error
from livefuse.commands.args import size_arg
from livefuse.frame import Frame
from livefuse.sources.demo import DemoSource
from livefuse.stage import StageContext
from livefuse.stages.background.cpu import CpuBackground, person_matte
from livefuse.stages.background.spec import SPEC
from livefuse.vision.matting import EDGE_MODES

WARM_UP = 30  # frames of EMA before measuring, as a stream has had
PORTRAITS = Path(__file__).resolve().parent / "data" / "matting"
HEADER = f"{'edge':6} {'edge MAE':>9} {'F@2px':>7} {'F@5px':>7} {'matte ms':>9} {'stage ms':>9}"


def timings(
    edge: str,
    frames: list[np.ndarray],
    masks: list[np.ndarray],
    params: dict[str, Any],
    context: StageContext,
    runs: int,
) -> tuple[float, float]:
    """Median ms of the matte alone (whole frame) and of the whole stage (EMA carried), with `edge`."""
    height, width = frames[0].shape[:2]
    pick, seq = itertools.count(), itertools.count()

    def matte_once() -> None:
        n = next(pick) % runs
        person_matte(frames[n], masks[n], (0, 0, width, height), edge)

    stage = CpuBackground(params | {"edge": edge}, context)

    def stage_once() -> None:
        n = next(seq)
        stage.process(Frame(n, 0, frames[n % runs].copy()))

    try:
        return median_ms(matte_once, runs), median_ms(stage_once, runs)
    finally:
        stage.close()


def quality(mattes: list[np.ndarray], truths: list[np.ndarray]) -> tuple[float, float, float]:
    """Mean edge MAE (within 10 px), boundary F at 2 px and at 5 px, over the pairs."""
    pairs = list(zip(mattes, truths, strict=True))
    return (
        statistics.mean(edge_error(m, t) for m, t in pairs),
        statistics.mean(boundary_fscore(m, t, 2.0) for m, t in pairs),
        statistics.mean(boundary_fscore(m, t, 5.0) for m, t in pairs),
    )


def measure(
    warm_up: list[np.ndarray],
    frames: list[np.ndarray],
    truths: list[np.ndarray],
    params: dict[str, Any],
    runs: int,
) -> dict[str, tuple[float, ...]]:
    """For each edge setting: (edge MAE, F@2px, F@5px, matte ms, stage ms) over `frames` (len `runs`),
    segmented after the `warm_up` frames have run the EMA, as a stream's would have."""
    height, width = frames[0].shape[:2]
    rows = {}
    with cpu_context((width, height)) as (_, context):
        warm = CpuBackground(params, context)
        masks = []
        for i, image in enumerate(warm_up):
            warm.segment(Frame(i, 0, image))
        for i, image in enumerate(frames):
            frame = Frame(len(warm_up) + i, 0, image)
            warm.segment(frame)
            masks.append(frame.person_mask)
        warm.close()
        for edge in EDGE_MODES:
            mattes = [
                person_matte(image, mask, (0, 0, width, height), edge)
                for image, mask in zip(frames, masks, strict=True)
            ]
            rows[edge] = quality(mattes, truths) + timings(edge, frames, masks, params, context, runs)
    return rows


def row(name: str, figures: tuple[float, ...]) -> str:
    mae, f2, f5, matte_ms, stage_ms = figures
    return f"{name:6} {mae:9.4f} {f2:7.3f} {f5:7.3f} {matte_ms:9.2f} {stage_ms:9.2f}"


def demo(size: tuple[int, int], runs: int, params: dict[str, Any]) -> None:
    width, height = size
    source = DemoSource(size, 30.0, paced=False)
    times = [(WARM_UP + i * 3) / 30.0 for i in range(runs)]  # a tenth of a second apart: varied poses
    print(f"background edge refinement, {width}x{height}, demo, {runs} frames, CPU (OpenCV path)")
    print(HEADER)
    rows = measure(
        [source.render(i / 30.0) for i in range(WARM_UP)],
        [source.render(t) for t in times],
        [source.alpha(t) for t in times],
        params,
        runs,
    )
    for edge, figures in rows.items():
        print(row(edge, figures))


def portrait(path: Path, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """A photo of benchmarks/data/matting and its true matte (0..1 float32; the hand-drawn masks are 0 or
    1), both scaled by `scale` (the mask stays hard: its linear resize cut at 0.5)."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    truth = cv2.imread(str(path.with_name(f"{path.stem}-mask.png")), cv2.IMREAD_GRAYSCALE)
    if image is None or truth is None:
        raise SystemExit(f"cannot read {path} or its -mask.png")
    true = truth.astype(np.float32) / 255.0
    if scale != 1.0:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
        true = (cv2.resize(true, size, interpolation=cv2.INTER_LINEAR) >= 0.5).astype(np.float32)
    return image, true


def portraits(scale: float, runs: int, params: dict[str, Any]) -> None:
    paths = sorted(p for p in PORTRAITS.glob("*.jpg"))
    print(f"background edge refinement, {len(paths)} portraits x {scale:g}, each still for {runs} frames,", end=" ")
    print("CPU (OpenCV path)")
    every: dict[str, list[tuple[float, ...]]] = {edge: [] for edge in EDGE_MODES}
    for path in paths:
        image, true = portrait(path, scale)
        print(f"{path.stem}, {image.shape[1]}x{image.shape[0]}")
        print(HEADER)
        # The still, copied per frame as a camera's frames are distinct arrays.
        rows = measure(
            [image.copy() for _ in range(WARM_UP)], [image.copy() for _ in range(runs)], [true] * runs, params, runs
        )
        for edge, figures in rows.items():
            every[edge].append(figures)
            print(row(edge, figures))
    print(f"mean of {len(paths)}")
    print(HEADER)
    for edge, figures in every.items():
        print(row(edge, tuple(statistics.mean(f[i] for f in figures) for i in range(5))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=size_arg, default=(1280, 720), metavar="WxH", help="demo frame size")
    parser.add_argument("--runs", type=int, default=30, help="frames measured per figure (times: the median)")
    parser.add_argument("--portraits", action="store_true", help="the real photos of data/matting, not the demo")
    parser.add_argument("--scale", type=float, default=1.0, help="with --portraits: scale the photos by this")
    args = parser.parse_args()
    params = {p.name: p.default for p in SPEC.params} | preset_stage("background-blur")
    if args.portraits:
        portraits(args.scale, args.runs, params)
    else:
        demo(args.size, args.runs, params)


if __name__ == "__main__":
    main()
