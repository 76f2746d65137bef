"""The benchmark's figures: one mode's raw measurements -> the JSON every contender reports.

Only the standard library and numpy (via livefuse.stats) are imported, so the peer scripts,
some of which run in a virtualenv without livefuse's dependencies, share this code.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from livefuse.stats import percentiles_ms


@dataclass
class Usage:
    """Process CPU time and wall time over a measured window (CPU % of one core: 200 = two cores busy)."""

    wall_ns: int = 0
    cpu_s: float = 0.0
    _t0: tuple[int, float] = (0, 0.0)

    def start(self) -> None:
        times = os.times()
        self._t0 = (time.monotonic_ns(), times.user + times.system)

    def stop(self) -> None:
        times = os.times()
        self.wall_ns = time.monotonic_ns() - self._t0[0]
        self.cpu_s = times.user + times.system - self._t0[1]

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_s / (self.wall_ns / 1e9) if self.wall_ns else 0.0


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (each mode runs in its own process, so it is per mode).

    Linux's VmHWM first: `ru_maxrss` survives exec, so a child would report its parent's peak if larger.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 2**10, 1)
    except (OSError, ValueError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)  # bytes on macOS, KiB elsewhere


@dataclass
class Measured:
    """Raw figures of one run of one contender.

    `outputs`: one (release index, release_ns, capture_ns, output_ns, stages_ns) per frame that reached
    the output, where capture_ns is when the reader took it from the camera and stages_ns the time spent
    in the filter stages themselves.
    """

    release_ns: list[int]
    outputs: list[tuple[int, int, int, int, int]] = field(default_factory=list)
    stages_ns: dict[str, list[int]] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    provider: str = "none"
    copies: dict[str, int] = field(default_factory=lambda: {"h2d": 0, "d2h": 0})
    camera_slips: int = 0
    stage_errors: dict[str, int] = field(default_factory=dict)
    # Frames kept on the device: the boundary's uploads, downloads and the copies each stage forced
    # (livefuse/transfers.py); None when frames stay in host memory.
    device_frames: dict[str, Any] | None = None


def _p50_p95(values_ns: list[int]) -> dict[str, float]:
    p = percentiles_ms(values_ns)
    return {"p50": p["p50"], "p95": p["p95"]}


def mode_result(m: Measured) -> dict[str, Any]:
    """One mode's JSON: fps, dropped, latency from release to output, stage times, CPU, memory, timeline."""
    outs = sorted(m.outputs, key=lambda o: o[3])
    latency = [o[3] - o[1] for o in outs]
    span = outs[-1][3] - outs[0][3] if len(outs) > 1 else 0
    fps = (len(outs) - 1) * 1e9 / span if span > 0 else 0.0
    processed = max(len(outs), 1)
    dropped = len(m.release_ns) - len(outs)
    t0 = m.release_ns[0] if m.release_ns else 0
    by_index = {o[0]: (o[3] - o[1]) / 1e6 for o in outs}
    return {
        "fps": round(fps, 2),
        "frames_released": len(m.release_ns),
        "frames_out": len(outs),
        "dropped": dropped,
        "dropped_percent": round(100.0 * dropped / max(len(m.release_ns), 1), 2),
        "latency_ms": percentiles_ms(latency),
        "stages_ms": {name: _p50_p95(values) for name, values in m.stages_ns.items()},
        # Where the latency goes: waiting to be taken from the camera, in the stages, and the rest
        # (queues, turn-taking between stages, handing to the output).
        "latency_parts_ms": {
            "until_read": _p50_p95([o[2] - o[1] for o in outs]),
            "stages": _p50_p95([o[4] for o in outs]),
            "other": _p50_p95([o[3] - o[2] - o[4] for o in outs]),
        },
        "cpu_percent": round(m.usage.cpu_percent, 1),
        "rss_mb": peak_rss_mb(),
        "provider": m.provider,
        "copies_per_frame": {k: round(v / processed, 3) for k, v in m.copies.items()},
        "device_frames": m.device_frames,
        "camera_slips": m.camera_slips,
        "stage_errors": dict(m.stage_errors),
        "timeline": {  # per released frame: release time (s) and latency (ms), null when dropped
            "t_s": [round((t - t0) / 1e9, 4) for t in m.release_ns],
            "latency_ms": [round(by_index[i], 3) if i in by_index else None for i in range(len(m.release_ns))],
        },
    }


def ratios(modes: dict[str, dict[str, Any]]) -> dict[str, float]:
    """pipelined / sequential, measured in the same run: throughput (higher is better), p99 latency (lower)."""
    pipe, seq = modes["pipelined"], modes["sequential"]
    return {
        "throughput": round(pipe["fps"] / seq["fps"], 3) if seq["fps"] else 0.0,
        "latency_p99": round(pipe["latency_ms"]["p99"] / seq["latency_ms"]["p99"], 3)
        if seq["latency_ms"]["p99"]
        else 0.0,
    }


def write_json(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


def table(result: dict[str, Any]) -> str:
    """A short human summary of a result's modes."""
    head = (
        f"{result['preset']} {result['size'][0]}x{result['size'][1]} @ {result['fps_target']:g} fps, "
        f"{result['frames']} frames, provider {result['provider']}"
    )
    rows = [
        head,
        f"{'mode':<14}{'fps':>7}{'dropped':>9}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}{'cpu%':>7}"
        f"{'rss MB':>8}  stages p50/p95 ms",
    ]
    for name, m in result["modes"].items():
        lat = m["latency_ms"]
        stages = ", ".join(f"{k} {v['p50']:.1f}/{v['p95']:.1f}" for k, v in m["stages_ms"].items())
        rows.append(
            f"{name:<14}{m['fps']:>7.1f}{m['dropped']:>9d}{lat['p50']:>8.1f}{lat['p95']:>8.1f}"
            f"{lat['p99']:>8.1f}{lat['max']:>8.1f}{m['cpu_percent']:>7.0f}{m['rss_mb']:>8.0f}  {stages}"
        )
    for name, m in result["modes"].items():
        device = m.get("device_frames")
        if device:
            per = device["per_frame"]
            forced = ", ".join(f"{k} {v:g}" for k, v in per["forced_copies"].items()) or "none"
            rows.append(
                f"{name}: frames on {device['device']}: {per['uploads']:g} upload + {per['downloads']:g} "
                f"download per frame, full-frame copies forced by stages: {forced}"
            )
    if "ratios" in result:
        r = result["ratios"]
        rows.append(f"pipelined/sequential: throughput x{r['throughput']:.2f}, p99 latency x{r['latency_p99']:.2f}")
    return "\n".join(rows)
