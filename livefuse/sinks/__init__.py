"""Where frames go: `open_sink(spec, size, fps)` turns an --output value into a Sink."""

from __future__ import annotations

from livefuse.audio.chunk import AudioFormat
from livefuse.errors import OutputError
from livefuse.sinks.base import NullSink, OutputFailed, Sink

__all__ = ["OUTPUT_HELP", "NullSink", "OutputFailed", "Sink", "open_sink", "parse_output"]

OUTPUT_HELP = (
    "virtualcam[:DEVICE], preview, file:PATH (.mp4 .mkv .webm), rtmp://URL, udp://URL, srt://URL, null; "
    "encoded outputs take ?crf=N, ?bitrate=4500k, ?keyint=S, ?preset=NAME, ?audio_bitrate=160k"
)


def parse_output(spec: str) -> tuple[str, str]:
    """(kind, target) of an --output value: kind is null, virtualcam, preview, stream or file. Checked up
    front, so that a typo is reported before any model loads."""
    from livefuse.sinks.encoder import FILE_FORMATS, STREAM_FORMATS, file_options, stream_options

    if spec in ("null", "preview"):
        return spec, ""
    if spec == "virtualcam" or spec.startswith("virtualcam:"):
        return "virtualcam", spec.partition(":")[2]
    if spec.startswith(tuple(STREAM_FORMATS)):
        stream_options(spec)  # a bad quality option is reported now, by name
        return "stream", spec
    path = spec.removeprefix("file:")
    if spec.startswith("file:") or path.partition("?")[0].lower().endswith(tuple(FILE_FORMATS)):
        file_options(path)
        return "file", path
    raise OutputError(f"unknown output {spec!r}: expected {OUTPUT_HELP}")


def open_sink(spec: str, size: tuple[int, int], fps: float, audio: AudioFormat | None = None) -> Sink:
    """Open the output an --output value names; raises OutputError with the fix when it can't.

    `audio`: the format of the sound the pipeline will feed, for outputs that carry it."""
    from livefuse.sinks.encoder import open_file_sink

    kind, target = parse_output(spec)
    if kind == "null":
        return NullSink()
    if kind == "virtualcam":
        from livefuse.sinks.virtualcam import VirtualCamSink

        return VirtualCamSink(size, fps, device=target or None)
    if kind == "preview":  # its frames go to the web server's viewers: the daemon asks the server for it
        raise OutputError("output preview: the web server sends it, and this command starts none")
    if kind == "stream":  # connected by a child process, in the background: no server can stall the daemon
        from livefuse.sinks.push import PushSink

        return PushSink(target, size, fps, audio)
    return open_file_sink(target, size, fps, audio)
