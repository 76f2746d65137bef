"""The `background` stage's two paths on the CPU provider: the fused ONNX graph vs OpenCV.

    .venv/bin/python benchmarks/background_paths.py [--size 1280x720] [--runs 30]

Prints the median ms per frame of each path in blur mode (presets/background-blur.toml's settings) and
in remove mode. The machine is shared and noisy, so the figures are medians over `--runs` frames (demo
frames at different times, processed in turn, EMA state carried as in a stream).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from livefuse.engine import Engine  # noqa: E402
from livefuse.frame import Frame  # noqa: E402
from livefuse.presets import PRESETS_DIR  # noqa: E402
from livefuse.sources.demo import DemoSource  # noqa: E402
from livefuse.stages.background import SPEC, BackgroundStage  # noqa: E402
from livefuse.stages.base import StageContext  # noqa: E402


def median_ms(stage: BackgroundStage, frames: list[np.ndarray], runs: int) -> float:
    """Median wall time of `stage.process` over `runs` frames, after one warm-up frame."""
    stage.process(Frame(seq=0, pts=0, capture_ns=0, image=frames[0].copy()))
    times = []
    for i in range(runs):
        frame = Frame(seq=i + 1, pts=0, capture_ns=0, image=frames[i % len(frames)])
        start = time.perf_counter()
        stage.process(frame)
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
    preset = tomllib.loads((PRESETS_DIR / "background-blur.toml").read_text())["stages"][0]
    blur = {k: v for k, v in preset.items() if k != "type"}
    defaults = {p.name: p.default for p in SPEC.params}
    with tempfile.TemporaryDirectory() as cache:
        engine = Engine(provider="cpu", cache_dir=cache)
        context = StageContext(engine=engine, size=(width, height), fps=30.0, preset_dir=PRESETS_DIR)
        print(f"background stage, {width}x{height}, CPU provider, median of {args.runs} frames (ms per frame)")
        for label, params in (("background-blur", blur), ("remove", {"mode": "remove"})):
            graph, cpu = (median_ms(BackgroundStage(defaults | params, context, path=path), frames, args.runs)
                          for path in ("graph", "cpu"))
            print(f"  {label:<16} graph {graph:7.2f}   opencv {cpu:6.2f}   ({graph / cpu:.1f}x)")
        stage = BackgroundStage(defaults | blur, context, path="graph")
        strengths = iter([0.3, 0.4, 0.5, 0.7, 0.8, 0.9])
        start = time.perf_counter()
        for _ in range(5):
            stage.update({"strength": next(strengths)})
        print(f"  graph live update (rebuilds the session): {(time.perf_counter() - start) / 5 * 1e3:.0f} ms")
        print(f"  copies on the CPU provider: {engine.copies()}")


if __name__ == "__main__":
    main()
