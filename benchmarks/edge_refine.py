"""The background stage's edge refinement (`edge` = off, fast, fine): quality on the demo, and its cost.

    .venv/bin/python benchmarks/edge_refine.py [--size 1280x720] [--runs 30]

The demo composes the astronaut over the room through a known alpha (`DemoSource.alpha`), so each frame's
true matte is known. For each setting it prints, over `--runs` demo frames after a second of EMA warm-up
(preset background-blur's settings otherwise, the OpenCV path as on the CPU provider):
- the alpha error in the band within 10 px of the true edge, and the boundary F-score at 2 px and 5 px
  (livefuse/bench/matte.py);
- the median ms of the matte alone (`person_matte`: upsample, plus the refinement) and of the whole stage.
"""

from __future__ import annotations

import itertools
import statistics
from typing import Any

import numpy as np
from stage_timing import cpu_context, median_ms, parse_args, preset_stage

from livefuse.bench.matte import boundary_fscore, edge_error
from livefuse.frame import Frame
from livefuse.sources.demo import DemoSource
from livefuse.stage import StageContext
from livefuse.stages.background.cpu import CpuBackground, person_matte
from livefuse.stages.background.spec import SPEC
from livefuse.vision.matting import EDGE_MODES

WARM_UP = 30  # frames of EMA before measuring, as a stream has had


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


def main() -> None:
    size, runs = parse_args(__doc__.split("\n\n")[0])
    width, height = size
    source = DemoSource(size, 30.0, paced=False)
    times = [(WARM_UP + i * 3) / 30.0 for i in range(runs)]  # a tenth of a second apart: varied poses
    frames = [source.render(t) for t in times]
    truths = [source.alpha(t) for t in times]
    params = {p.name: p.default for p in SPEC.params} | preset_stage("background-blur")
    print(f"background edge refinement, {width}x{height}, demo, {runs} frames, CPU (OpenCV path)")
    print(f"{'edge':6} {'edge MAE':>9} {'F@2px':>7} {'F@5px':>7} {'matte ms':>9} {'stage ms':>9}")
    with cpu_context(size) as (_, context):
        warm = CpuBackground(params, context)
        masks = []
        for i in range(WARM_UP):
            warm.segment(Frame(i, 0, source.render(i / 30.0)))
        for i, image in enumerate(frames):
            frame = Frame(WARM_UP + i, 0, image)
            warm.segment(frame)
            masks.append(frame.person_mask)
        warm.close()
        for edge in EDGE_MODES:
            mattes = [
                person_matte(image, mask, (0, 0, width, height), edge)
                for image, mask in zip(frames, masks, strict=True)
            ]
            mae = statistics.mean(edge_error(m, t) for m, t in zip(mattes, truths, strict=True))
            f2 = statistics.mean(boundary_fscore(m, t, 2.0) for m, t in zip(mattes, truths, strict=True))
            f5 = statistics.mean(boundary_fscore(m, t, 5.0) for m, t in zip(mattes, truths, strict=True))
            matte_ms, stage_ms = timings(edge, frames, masks, params, context, runs)
            print(f"{edge:6} {mae:9.4f} {f2:7.3f} {f5:7.3f} {matte_ms:9.2f} {stage_ms:9.2f}")


if __name__ == "__main__":
    main()
