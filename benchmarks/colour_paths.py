"""The `colour` stage's two paths on the CPU provider: the ONNX graph vs OpenCV and the lookup table.

    .venv/bin/python benchmarks/colour_paths.py [--size 1280x720] [--runs 30]

Prints the median ms per frame of each path, for presets/colour-cinematic.toml's settings (the LUT) and
for sliders alone, and what a live update costs on the CPU path. The machine is shared and noisy, so
the figures are medians over `--runs` frames (30 demo frames at different times, graded in turn).
"""

from __future__ import annotations

import itertools

import numpy as np
from stage_timing import cpu_context, demo_frames, median_ms, parse_args, preset_stage

from livefuse.frame import Frame
from livefuse.stages.colour.common import ColourStage
from livefuse.stages.colour.spec import SPEC, make_colour


def main() -> None:
    size, runs = parse_args(__doc__.split("\n\n")[0])
    frames = demo_frames(size, runs)
    cinematic = preset_stage("colour-cinematic")
    settings = {
        "colour-cinematic": cinematic,
        "sliders only": {"brightness": -0.1, "contrast": 1.2, "saturation": 1.6, "temperature": 0.5},
    }
    defaults = {p.name: p.default for p in SPEC.params}
    with cpu_context(size) as (_, context):
        print(f"colour stage, {size[0]}x{size[1]}, CPU provider, median of {runs} frames (ms per frame)")
        for label, params in settings.items():
            row = []
            for path in ("graph", "cpu"):
                stage = make_colour(defaults | params, context, path=path)
                frame = Frame(seq=0, capture_ns=0, image=frames[0])
                turn = itertools.count()

                def grade(stage: ColourStage = stage, frame: Frame = frame, turn: itertools.count = turn) -> None:
                    frame.image = frames[next(turn) % len(frames)]
                    stage.process(frame)

                row.append(median_ms(grade, runs))
            print(f"  {label:<17} graph {row[0]:8.2f}   cpu {row[1]:6.2f}   ({row[0] / row[1]:.0f}x)")

        stage = make_colour(defaults | cinematic, context, path="cpu")
        strengths = iter(np.linspace(0.2, 0.9, 10**4))
        sliders = iter(np.linspace(-0.5, 0.5, 10**4))
        table = median_ms(lambda: stage.update({"lut_strength": float(next(strengths))}), max(5, runs // 3))
        slider = median_ms(lambda: stage.update({"temperature": float(next(sliders))}), runs)
        print(
            f"  cpu live update: a slider {slider:.3f} ms; a new LUT or lut_strength (rebuilds the table) "
            f"{table:.1f} ms"
        )


if __name__ == "__main__":
    main()
