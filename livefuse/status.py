"""The one-line live status on a terminal, and periodic JSON stats for machines."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Sequence

from livefuse.stats import PipelineStats


def status_line(stats: PipelineStats, disabled: Sequence[str] = ()) -> str:
    lat = stats.latency.summary()
    off = f" | OFF after errors: {', '.join(disabled)}" if disabled else ""
    off += f" | HUNG: {stats.stalled}" if stats.stalled else ""
    line = (
        f"{stats.fps:5.1f} fps | latency p50 {lat['p50']:6.1f} ms p95 {lat['p95']:6.1f} ms | "
        f"dropped {stats.dropped} | in {stats.frames_in} out {stats.frames_out} | {stats.provider}{off}"
    )
    delay = stats.virtualcam_delay_ms()
    if delay is not None:  # no sound on the virtual camera: say how far to hold the microphone back
        line += f" | video delay {delay:.0f} ms: set it as the mic's sync offset in OBS"
    return line


async def report_status(
    stats: PipelineStats, *, json_lines: bool, interval: float = 0.5, disabled: Callable[[], list[str]] = lambda: []
) -> None:
    """Redraw the status line on a TTY (or log JSON every few seconds) until cancelled.

    `disabled` names the stages switched off after failures, so the line says so while they are off.
    """
    tty = sys.stderr.isatty()
    if not tty and not json_lines:
        return
    try:
        while True:
            await asyncio.sleep(interval if tty else 5.0)
            if json_lines:
                sys.stderr.write(json.dumps({"stats": stats.snapshot(), "disabled_stages": disabled()}) + "\n")
            else:
                sys.stderr.write("\r\x1b[K" + status_line(stats, disabled()))
            sys.stderr.flush()
    finally:
        if tty and not json_lines:
            sys.stderr.write("\n")
