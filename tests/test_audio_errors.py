"""Bad --audio values and output options: one clear error naming the value, exit 2, no traceback."""

from __future__ import annotations

from typing import Any

import pytest
from test_cli_errors import RUN, assert_one_clear_error

BAD = [
    (("--audio", "alsa:no-such-card"), ("--audio alsa:no-such-card", "--audio off")),
    (("--output", "file:rec.mp4?crf=99"), ("crf=99", "out of range", "0 to 51")),
    (("--output", "file:rec.mp4?quality=best"), ("unknown output option 'quality'", "crf=N")),
    (("--output", "file:rec.mp4?preset=turbo"), ("preset='turbo'", "veryfast")),
    (("--output", "rtmp://127.0.0.1:9/live/x?bitrate=fast"), ("bitrate='fast'", "4500k")),
    (("--output", "udp://127.0.0.1:9?keyint=nan"), ("keyint='nan'", "0.1 to 20")),
    (("--output", "file:rec.mkv?audio_bitrate=9M"), ("audio_bitrate=9M", "out of range")),
]


@pytest.mark.parametrize(("args", "phrases"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_audio_or_output_option(cli: Any, args: tuple[str, ...], phrases: tuple[str, ...]) -> None:
    proc = cli(*RUN, "--source", "demo", *args)
    assert_one_clear_error(proc, *phrases)


def test_audio_off_and_auto_without_sound_run(cli: Any, tmp_path: Any) -> None:
    """The demo has no sound: auto records video alone, as off does."""
    for spec in ("auto", "off"):
        out = tmp_path / f"{spec}.mp4"
        proc = cli(
            "run",
            "--source",
            "demo",
            "--preset",
            "passthrough",
            "--frames",
            "5",
            "--size",
            "64x48",
            "--audio",
            spec,
            "--output",
            f"file:{out}",
        )
        assert proc.returncode == 0, proc.stderr
        assert "sound: none" in proc.stderr
        import av

        with av.open(str(out)) as container:
            assert not container.streams.audio and container.streams.video
