"""Latency plots: a CDF per contender and a per-frame latency timeline (matplotlib, an optional dependency)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from livefuse.errors import UserError

DROPPED_AT_MS = 0.5  # where dropped frames are ticked on the (log) timeline


def plot_latency(series: list[tuple[str, dict[str, Any]]], path: Path, title: str = "") -> None:
    """Write a PNG: left the latency CDF of each (label, mode result), right latency against release time.

    Both latency axes are logarithmic. Dropped frames are drawn as ticks along the bottom of the
    timeline, so a mode that keeps its latency low by skipping frames shows it.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
    except ImportError:
        raise UserError("--plot needs matplotlib: install it with `.venv/bin/pip install matplotlib`") from None
    fig, (cdf, timeline) = plt.subplots(1, 2, figsize=(14, 5))
    for label, mode in series:
        t = np.asarray(mode["timeline"]["t_s"], dtype=float)
        lat = np.asarray([np.nan if v is None else v for v in mode["timeline"]["latency_ms"]], dtype=float)
        ok = ~np.isnan(lat)
        values = np.sort(lat[ok])
        if values.size:
            cdf.plot(
                values,
                np.arange(1, values.size + 1) / values.size,
                label=f"{label} (p50 {mode['latency_ms']['p50']:.0f}, p99 {mode['latency_ms']['p99']:.0f} ms)",
            )
        line = timeline.plot(
            t[ok], lat[ok], lw=0.8, label=f"{label}: {mode['fps']:.1f} fps, {mode['dropped']} dropped"
        )[0]
        if (~ok).any():
            timeline.plot(t[~ok], np.full((~ok).sum(), DROPPED_AT_MS), "|", color=line.get_color(), ms=8)
    cdf.set_xscale("log")  # a contender with a growing backlog (seconds) must not flatten the others
    timeline.set_yscale("log")
    cdf.set_xlabel("capture-to-output latency (ms, log)")
    cdf.set_ylabel("fraction of output frames")
    cdf.set_title("latency CDF")
    cdf.grid(alpha=0.3)
    cdf.legend(fontsize=8, loc="lower right")
    timeline.set_xlabel("release time (s)")
    timeline.set_ylabel("latency (ms, log)")
    timeline.set_title(f"per-frame latency (ticks at {DROPPED_AT_MS:g} ms: dropped frames)")
    timeline.grid(alpha=0.3)
    timeline.legend(fontsize=8, loc="upper right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
