"""Where frames go: `open_sink(spec, size, fps)` turns an --output value into a Sink."""

from __future__ import annotations

from typing import Any

from livefuse.errors import OutputError
from livefuse.sinks.base import NullSink, Sink

__all__ = ["OUTPUT_HELP", "NullSink", "Sink", "open_sink", "output_kind"]

OUTPUT_HELP = "virtualcam[:DEVICE], preview, file:PATH (.mp4 .mkv .webm), rtmp://URL, udp://URL, srt://URL, null"


def output_kind(spec: str) -> str:
    """Which kind of output a --output value names (null, virtualcam, preview, stream, file), checked up front
    so that a typo is reported before any model loads."""
    from livefuse.sinks.encoder import FILE_FORMATS, STREAM_FORMATS

    if spec in ("null", "preview"):
        return spec
    if spec == "virtualcam" or spec.startswith("virtualcam:"):
        return "virtualcam"
    if spec.startswith(tuple(STREAM_FORMATS)):
        return "stream"
    path = spec[len("file:"):] if spec.startswith("file:") else spec
    if spec.startswith("file:") or path.partition("?")[0].lower().endswith(tuple(FILE_FORMATS)):
        return "file"
    raise OutputError(f"unknown output {spec!r}: expected {OUTPUT_HELP}")


def open_sink(spec: str, size: tuple[int, int], fps: float, **web: Any) -> Sink:
    """Open the output an --output value names; raises OutputError with the fix when it can't."""
    from livefuse.sinks.encoder import open_file_sink, open_stream_sink

    kind = output_kind(spec)
    if kind == "null":
        return NullSink()
    if kind == "virtualcam":
        from livefuse.sinks.virtualcam import VirtualCamSink

        return VirtualCamSink(size, fps, device=spec.partition(":")[2] or None)
    if kind == "preview":
        from livefuse.web.sink import PreviewSink

        return PreviewSink(size, fps, **web)
    if kind == "stream":
        return open_stream_sink(spec, size, fps)
    return open_file_sink(spec[len("file:"):] if spec.startswith("file:") else spec, size, fps)
