"""`livefuse bench --mode pipelined` run as a user runs it, on this tree or another: shared by the scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def livefuse_bench(preset: str | Path, *options: str, frames: int = 300, code: Path | None = None) -> dict[str, Any]:
    """The whole JSON report of one pipelined run of `preset` with `options` (e.g. "--size", "1280x720"); with
    `code`, that checkout's livefuse runs (PYTHONPATH, and its folder as the cwd, which `-m` puts first)."""
    env = {**os.environ, "PYTHONPATH": str(code)} if code is not None else None
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "bench.json"
        command = [
            sys.executable,
            "-m",
            "livefuse",
            "bench",
            "--preset",
            str(preset),
            "--frames",
            str(frames),
            "--mode",
            "pipelined",
            *options,
            "--json",
            str(out),
        ]
        subprocess.run(command, check=True, env=env, cwd=code or ROOT, capture_output=True)
        return dict(json.loads(out.read_text()))


def figures(report: dict[str, Any]) -> dict[str, Any]:
    """The pipelined run's frame rate, drops, latency p50 and p99 (ms), per-stage times, CPU and memory."""
    run = report["modes"]["pipelined"]
    return {
        "fps": run["fps"],
        "dropped": run["dropped"],
        "p50": run["latency_ms"]["p50"],
        "p99": run["latency_ms"]["p99"],
        "stages_ms": run["stages_ms"],
        "cpu_percent": run["cpu_percent"],
        "rss_mb": run.get("rss_mb"),
    }
