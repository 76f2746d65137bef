"""`livefuse bench` runs a few real-time frames in both modes and writes the agreed JSON (no timing checks)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from livefuse.bench.camera import ReleasedCamera
from livefuse.cli import main

MODE_KEYS = {"fps", "dropped", "latency_ms", "stages_ms", "cpu_percent", "rss_mb", "copies_per_frame"}


def test_camera_skips_frames_a_slow_reader_misses() -> None:
    frames = iter(np.full((4, 4, 3), i, np.uint8) for i in range(3))
    camera = ReleasedCamera(lambda: next(frames, None), fps=1000.0, frames=3, size=(4, 4))
    camera.start()
    camera._thread.join()  # type: ignore[union-attr]  # all three released before anyone reads
    image = camera.read()
    assert image is not None and image[0, 0, 0] == 2  # the newest
    assert camera.skipped == 2 and camera.reads[0].index == 2
    assert camera.read() is None
    assert camera.released == 3


def test_bench_both_modes_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "--preset",
            "passthrough",
            "--source",
            "demo",
            "--size",
            "320x180",
            "--fps",
            "30",
            "--frames",
            "8",
            "--mode",
            "both",
            "--provider",
            "cpu",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["preset"] == "passthrough"
    assert result["size"] == [320, 180] and result["fps_target"] == 30 and result["frames"] == 8
    assert "provider" in result
    assert set(result["modes"]) == {"pipelined", "sequential"}
    for mode in result["modes"].values():
        assert MODE_KEYS <= set(mode)
        assert set(mode["latency_ms"]) == {"p50", "p95", "p99", "max"}
        assert mode["frames_released"] == 8
        assert mode["frames_out"] + mode["dropped"] == 8 and mode["frames_out"] > 0
        assert len(mode["timeline"]["t_s"]) == 8
    assert set(result["ratios"]) == {"throughput", "latency_p99"}
