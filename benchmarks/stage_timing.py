"""What the per-stage path benchmarks (background_paths.py, colour_paths.py) share.

Demo frames, a stage context on the CPU provider with a throw-away model cache, a preset's stage
settings, and the median of timed calls (the machine is noisy: medians, after one warm-up call).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from livefuse.commands.args import size_arg  # noqa: E402
from livefuse.engine import Engine  # noqa: E402
from livefuse.presets import PRESETS_DIR  # noqa: E402
from livefuse.sources.demo import DemoSource  # noqa: E402
from livefuse.stage import StageContext  # noqa: E402


def parse_args(description: str) -> tuple[tuple[int, int], int]:
    """(frame size, runs) from --size WIDTHxHEIGHT and --runs N."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--size", type=size_arg, default=(1280, 720), metavar="WxH", help="frame size")
    parser.add_argument("--runs", type=int, default=30, help="frames timed per figure (the median is printed)")
    args = parser.parse_args()
    return args.size, args.runs


def demo_frames(size: tuple[int, int], count: int) -> list[np.ndarray]:
    """`count` demo frames at different times, so a stage sees motion as in a stream."""
    source = DemoSource(size, 30.0, paced=False)
    return [source.render(i / 30.0) for i in range(count)]


def preset_stage(name: str) -> dict[str, Any]:
    """The first stage's settings in presets/NAME.toml, without its `type`."""
    stage = tomllib.loads((PRESETS_DIR / f"{name}.toml").read_text())["stages"][0]
    return {k: v for k, v in stage.items() if k != "type"}


@contextmanager
def cpu_context(size: tuple[int, int]) -> Iterator[tuple[Engine, StageContext]]:
    """An engine on the CPU provider (its own empty cache) and a stage context for `size`."""
    with tempfile.TemporaryDirectory() as cache:
        engine = Engine(provider="cpu", cache_dir=cache)
        yield engine, StageContext(engine=engine, size=size, fps=30.0, preset_dir=PRESETS_DIR)


def median_ms(call: Callable[[], Any], runs: int) -> float:
    """Median wall time of `call()` in ms over `runs` calls, after one unmeasured warm-up call."""
    call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3
