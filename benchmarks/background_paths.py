"""The `background` stage's two paths on the CPU provider: the fused ONNX graph vs OpenCV.

    .venv/bin/python benchmarks/background_paths.py [--size 1280x720] [--runs 30]

Prints the median ms per frame of each path in blur mode (presets/background-blur.toml's settings) and
in remove mode. The machine is shared and noisy, so the figures are medians over `--runs` frames (demo
frames at different times, processed in turn, EMA state carried as in a stream).
"""

from __future__ import annotations

import itertools
import time

from stage_timing import cpu_context, demo_frames, median_ms, parse_args, preset_stage

from livefuse.frame import Frame
from livefuse.stages.background.common import BackgroundStage
from livefuse.stages.background.spec import SPEC, make_background


def time_stage(stage: BackgroundStage, frames: list, runs: int) -> float:
    """Median ms of `stage.process` on the frames in turn (EMA state carried as in a stream)."""
    seq = itertools.count()

    def step() -> None:
        n = next(seq)
        stage.process(Frame(seq=n, capture_ns=0, image=frames[n % len(frames)]))

    return median_ms(step, runs)


def main() -> None:
    size, runs = parse_args(__doc__.split("\n\n")[0])
    frames = demo_frames(size, runs)
    blur = preset_stage("background-blur")
    defaults = {p.name: p.default for p in SPEC.params}
    with cpu_context(size) as (engine, context):
        print(f"background stage, {size[0]}x{size[1]}, CPU provider, median of {runs} frames (ms per frame)")
        for label, params in (("background-blur", blur), ("remove", {"mode": "remove"})):
            graph, cpu = (
                time_stage(make_background(defaults | params, context, path=path), frames, runs)
                for path in ("graph", "cpu")
            )
            print(f"  {label:<16} graph {graph:7.2f}   opencv {cpu:6.2f}   ({graph / cpu:.1f}x)")
        stage = make_background(defaults | blur, context, path="graph")
        strengths = iter([0.3, 0.4, 0.5, 0.7, 0.8, 0.9])
        start = time.perf_counter()
        for _ in range(5):
            stage.update({"strength": next(strengths)})
        print(f"  graph live update (rebuilds the session): {(time.perf_counter() - start) / 5 * 1e3:.0f} ms")
        print(f"  copies on the CPU provider: {engine.copies()}")


if __name__ == "__main__":
    main()
