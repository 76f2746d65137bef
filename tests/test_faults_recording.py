"""A recording that cannot be written any more: that output stops cleanly and says why, the others go on.

The faults are real: a file size limit on the `livefuse` process (RLIMIT_FSIZE: writes past it fail with
EFBIG, as CPython ignores SIGXFSZ), and a disk that fills (a small tmpfs, where this machine lets root mount
one; skipped elsewhere).
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from test_cli_errors import assert_one_clear_error

LIMIT = 250_000  # bytes: the first 2 s fragment of the demo at 320x180 (about 160 kB) fits, the second does not
RUN = (
    "run",
    "--source",
    "demo",
    "--size",
    "320x180",
    "--preset",
    "passthrough",
    "--duration",
    "7",
    "--stats-json",
    "s.json",
    "--output",
    "null",
)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A LIMIT-byte tmpfs at tmp_path/disk, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={LIMIT}", "tmpfs", str(disk)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def run_cli(
    tmp_path: Path, env: dict[str, str], *outputs: str, file_limit: int | None = None
) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    args = [a for spec in outputs for a in ("--output", spec)]
    return subprocess.run(
        [sys.executable, "-m", "livefuse", *RUN, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=90,
        env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
        preexec_fn=limit,
    )


def assert_stopped_cleanly(
    proc: subprocess.CompletedProcess[str], tmp_path: Path, recording: str, reason: str
) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    # reported once, naming the file and why
    reports = [line for line in proc.stderr.splitlines() if recording in line and "stopped" in line]
    assert len(reports) == 1 and reason in reports[0], proc.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    out = stats["outputs"][f"file:{recording}"]
    assert reason in out["failed"] and out["errors"] == 1, out  # given up at once: retrying cannot help
    # the other outputs went on to the end: they wrote (nearly) every frame, far more than the recording
    assert stats["outputs"]["null"]["frames"] >= 0.9 * stats["frames_processed"], stats
    assert stats["outputs"]["null"]["frames"] >= out["frames"] + 45, stats
    # and what was recorded before the fault plays to its end (the half-written fragment was cut off)
    path = tmp_path / recording
    assert path.stat().st_size <= LIMIT
    frames = decoded_frames(path)
    print(
        f"\n{reason}: the recording stopped after {out['frames']} frames and plays {frames}; null wrote "
        f"{stats['outputs']['null']['frames']} of {stats['frames_processed']} frames"
    )
    assert frames >= 30
    return stats


@pytest.mark.slow
def test_a_recording_past_the_file_size_limit_stops_and_the_stream_goes_on(
    tmp_path: Path, livefuse_env: dict[str, str]
) -> None:
    proc = run_cli(tmp_path, livefuse_env, "file:rec.mp4", file_limit=LIMIT)
    assert_stopped_cleanly(proc, tmp_path, "rec.mp4", "File too large")


@pytest.mark.slow
def test_a_recording_whose_disk_fills_stops_and_the_others_go_on(
    tmp_path: Path, livefuse_env: dict[str, str], small_disk: Path
) -> None:
    proc = run_cli(tmp_path, livefuse_env, "file:disk/rec.mp4", "file:other.mkv")
    stats = assert_stopped_cleanly(proc, tmp_path, "disk/rec.mp4", "No space left on device")
    # a second recording on another disk kept every frame
    assert stats["outputs"]["file:other.mkv"]["failed"] is None
    assert decoded_frames(tmp_path / "other.mkv") == stats["outputs"]["file:other.mkv"]["frames"] >= 150


def test_a_recording_in_a_read_only_folder_is_refused_at_start(cli: Any, tmp_path: Path, small_disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    proc = cli(
        "run",
        "--source",
        "demo",
        "--preset",
        "passthrough",
        "--frames",
        "3",
        "--size",
        "64x48",
        "--output",
        "null",
        "--output",
        "file:disk/rec.mp4",
    )
    assert_one_clear_error(proc, "cannot open output disk/rec.mp4", "Read-only file system")
