"""Bad input: one clear `livefuse: error:` line (or argparse's usage error), exit 2, never a traceback."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ERROR_LINE = re.compile(r"^livefuse( run| presets validate)?: error: ", re.M)

# The real CLI with one extra stage type registered, for parameter checks that must not depend on the
# shipped stages' parameters.
WITH_TEST_STAGE = """
import sys
from livefuse.stage import Param, Stage, StageSpec
from livefuse.stages.registry import register

class Gain(Stage):
    name = "test-gain"
    def __init__(self, params, context):
        self.gain = params["gain"]
    def process(self, frame):
        pass
    def update(self, params):
        pass
    def close(self):
        pass

register(StageSpec("test-gain", "brightness gain (tests only)", (Param("gain", float, 1.0, min=0.0, max=4.0),),
                   Gain))
from livefuse.cli import main
sys.exit(main(sys.argv[1:]))
"""


def assert_one_clear_error(proc: subprocess.CompletedProcess[str], *phrases: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout, proc.stderr
    errors = ERROR_LINE.findall(proc.stderr)
    assert len(errors) == 1, proc.stderr
    line = next(x for x in proc.stderr.splitlines() if ERROR_LINE.match(x))
    for phrase in phrases:
        assert phrase in line, line


@pytest.fixture
def presets(tmp_path: Path) -> Path:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "malformed.toml").write_text('name = "broken"\n[[stages]\ntype = "background"\n')
    (folder / "unknown-stage.toml").write_text('name = "x"\n[[stages]]\ntype = "teleport"\n')
    (folder / "out-of-range.toml").write_text('name = "x"\n[[stages]]\ntype = "test-gain"\ngain = 9.5\n')
    (folder / "in-range.toml").write_text('name = "x"\n[[stages]]\ntype = "test-gain"\ngain = 2.0\n')
    return folder


RUN = ("run", "--output", "null", "--preset", "passthrough", "--frames", "3", "--size", "64x48")


@pytest.mark.parametrize(
    ("args", "phrases"),
    [
        (("--source", "missing.mp4"), ("source file not found", "missing.mp4")),
        (("--source", "image:missing.png"), ("image source not found",)),
        (("--preset", "no-such-preset"), ("unknown preset 'no-such-preset'", "passthrough")),
        (("--preset", "p/malformed.toml"), ("malformed.toml", "malformed TOML")),
        (("--preset", "p/unknown-stage.toml"), ("unknown stage type 'teleport'", "stages[1]")),
        (("--preset", "p/missing.toml"), ("preset file not found",)),
        (("--size", "0x0"), ("argument --size", "invalid size '0x0'")),
        (("--size", "640"), ("invalid size '640'", "WIDTHxHEIGHT")),
        (("--fps", "-1"), ("argument --fps", "invalid frame rate '-1'")),
        (("--fps", "fast"), ("invalid frame rate 'fast'",)),
        (("--frames", "0"), ("argument --frames",)),
        (("--output", "bogus"), ("unknown output 'bogus'", "file:PATH")),
        (("--output", "nowhere/rec.mp4"), ("folder nowhere does not exist",)),
        (("--output", "rec.avi"), ("unknown output 'rec.avi'",)),
        (("--provider", "quantum"), ("argument --provider",)),
        (("--stats-json", "nowhere/s.json"), ("--stats-json", "does not exist")),
    ],
)
def test_run_rejects_bad_input(cli: Any, presets: Path, args: tuple[str, ...], phrases: tuple[str, ...]) -> None:
    proc = cli(*RUN, "--source", "demo", *args)
    assert_one_clear_error(proc, *phrases)


def test_unreachable_stream_fails_fast(cli: Any) -> None:
    start = time.monotonic()
    proc = cli(*RUN, "--source", "rtsp://127.0.0.1:9/x")
    assert time.monotonic() - start < 10
    assert_one_clear_error(proc, "cannot open source", "rtsp://127.0.0.1:9/x")


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def test_a_stream_that_never_answers_times_out(cli: Any, silent_server: int) -> None:
    start = time.monotonic()
    proc = cli(*RUN, "--source", f"rtsp://127.0.0.1:{silent_server}/live")
    took = time.monotonic() - start
    assert took < 10, took
    assert_one_clear_error(proc, "cannot open source", f"rtsp://127.0.0.1:{silent_server}/live")


def run_with_test_stage(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", WITH_TEST_STAGE, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_out_of_range_parameter(tmp_path: Path, presets: Path, livefuse_env: dict[str, str]) -> None:
    args = ("run", "--source", "demo", "--output", "null", "--frames", "3", "--size", "64x48", "--preset")
    good = run_with_test_stage(tmp_path, livefuse_env, *args, "p/in-range.toml")
    assert good.returncode == 0, good.stderr  # the harness itself works: only the value is at fault below
    bad = run_with_test_stage(tmp_path, livefuse_env, *args, "p/out-of-range.toml")
    assert_one_clear_error(bad, "out-of-range.toml", "stages[1]", "gain = 9.5", "out of range", "from 0 to 4")
    validate = run_with_test_stage(tmp_path, livefuse_env, "presets", "validate", "p/out-of-range.toml")
    assert_one_clear_error(validate, "gain = 9.5", "out of range")


@pytest.mark.parametrize(
    ("name", "phrases"),
    [
        ("malformed.toml", ("malformed TOML",)),
        ("unknown-stage.toml", ("unknown stage type 'teleport'",)),
        ("missing.toml", ("preset file not found",)),
    ],
)
def test_presets_validate_reports_the_fault(cli: Any, presets: Path, name: str, phrases: tuple[str, ...]) -> None:
    assert_one_clear_error(cli("presets", "validate", f"p/{name}"), f"p/{name}", *phrases)


def test_presets_validate_accepts_a_good_file(cli: Any, tmp_path: Path) -> None:
    (tmp_path / "ok.toml").write_text('name = "ok"\ndescription = "nothing"\nstages = []\n')
    proc = cli("presets", "validate", "ok.toml")
    assert proc.returncode == 0, proc.stderr
    assert "ok.toml: ok (0 stages" in proc.stdout
