"""The `colour` stage's two paths on the CPU provider: the ONNX graph vs OpenCV and the lookup table.

    .venv/bin/python benchmarks/colour_paths.py [--size 1280x720] [--runs 30]

Prints the median ms per frame of each path, for presets/colour-cinematic.toml's settings (the LUT) and
for sliders alone, and what a live update costs on the CPU path. The machine is shared and noisy, so
the figures are medians over `--runs` frames (30 demo frames at different times, graded in turn).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from livefuse.engine import Engine  # noqa: E402
from livefuse.frame import Frame  # noqa: E402
from livefuse.presets import PRESETS_DIR  # noqa: E402
from livefuse.sources.demo import DemoSource  # noqa: E402
from livefuse.stages.base import StageContext  # noqa: E402
from livefuse.stages.colour import SPEC, ColourStage  # noqa: E402


def median_ms(call: Callable[[], Any], runs: int) -> float:
    call()  # warm-up: first-run allocations and session set-up are not per-frame costs
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1280x720", help="frame size, WIDTHxHEIGHT")
    parser.add_argument("--runs", type=int, default=30, help="frames timed per figure (the median is printed)")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    source = DemoSource((width, height), 30.0, paced=False)
    frames = [source.render(i / 30.0) for i in range(args.runs)]

    preset = tomllib.loads((PRESETS_DIR / "colour-cinematic.toml").read_text())["stages"][0]
    cinematic = {k: v for k, v in preset.items() if k != "type"}
    settings = {
        "colour-cinematic": cinematic,
        "sliders only": {"brightness": -0.1, "contrast": 1.2, "saturation": 1.6, "temperature": 0.5},
    }
    defaults = {p.name: p.default for p in SPEC.params}
    with tempfile.TemporaryDirectory() as cache:
        engine = Engine(provider="cpu", cache_dir=cache)
        context = StageContext(engine=engine, size=(width, height), fps=30.0, preset_dir=PRESETS_DIR)
        print(f"colour stage, {width}x{height}, CPU provider, median of {args.runs} frames (ms per frame)")
        for label, params in settings.items():
            row = []
            for path in ("graph", "cpu"):
                stage = ColourStage(defaults | params, context, path=path)
                frame = Frame(seq=0, pts=0, capture_ns=0, image=frames[0])
                turn = iter(range(10**9))

                def grade(stage: ColourStage = stage, frame: Frame = frame, turn: Any = turn) -> None:
                    frame.image = frames[next(turn) % len(frames)]
                    stage.process(frame)

                row.append(median_ms(grade, args.runs))
            print(f"  {label:<17} graph {row[0]:8.2f}   cpu {row[1]:6.2f}   ({row[0] / row[1]:.0f}x)")

        stage = ColourStage(defaults | cinematic, context, path="cpu")
        strengths = iter(np.linspace(0.2, 0.9, 10**4))
        sliders = iter(np.linspace(-0.5, 0.5, 10**4))
        table = median_ms(lambda: stage.update({"lut_strength": float(next(strengths))}), max(5, args.runs // 3))
        slider = median_ms(lambda: stage.update({"temperature": float(next(sliders))}), args.runs)
        print(f"  cpu live update: a slider {slider:.3f} ms; a new LUT or lut_strength (rebuilds the table) "
              f"{table:.1f} ms")


if __name__ == "__main__":
    main()
