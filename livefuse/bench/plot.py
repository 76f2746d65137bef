"""Latency plots: a CDF per contender and a per-frame latency timeline (matplotlib, an optional dependency)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from livefuse.errors import UserError


def plot_latency(series: list[tuple[str, dict[str, Any]]], path: Path, title: str = "") -> None:
    """Write a PNG: left the latency CDF of each (label, mode result), right latency against release time.

    Dropped frames are drawn as ticks along the bottom of the timeline, so a mode that keeps its
    latency low by skipping frames shows it.
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
            cdf.plot(values, np.arange(1, values.size + 1) / values.size,
                     label=f"{label} (p50 {mode['latency_ms']['p50']:.0f}, p99 {mode['latency_ms']['p99']:.0f} ms)")
        line = timeline.plot(t[ok], lat[ok], lw=0.8, label=f"{label}: {mode['fps']:.1f} fps, "
                             f"{mode['dropped']} dropped")[0]
        if (~ok).any():
            timeline.plot(t[~ok], np.zeros((~ok).sum()), "|", color=line.get_color(), ms=8)
    cdf.set_xlabel("capture-to-output latency (ms)")
    cdf.set_ylabel("fraction of output frames")
    cdf.set_title("latency CDF")
    cdf.grid(alpha=0.3)
    cdf.legend(fontsize=8, loc="lower right")
    timeline.set_xlabel("release time (s)")
    timeline.set_ylabel("latency (ms)")
    timeline.set_title("per-frame latency (ticks at 0: dropped frames)")
    timeline.grid(alpha=0.3)
    timeline.legend(fontsize=8, loc="upper right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
