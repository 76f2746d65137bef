"""Where frames go: `open_sink(spec, size, fps)` turns an --output value into a Sink."""

from __future__ import annotations

from typing import Any

from livefuse.errors import OutputError
from livefuse.sinks.base import NullSink, Sink

__all__ = ["OUTPUT_HELP", "NullSink", "Sink", "open_sink"]

OUTPUT_HELP = "virtualcam[:DEVICE], preview, file:PATH (.mp4 .mkv .webm), rtmp://URL, srt://URL, null"


def open_sink(spec: str, size: tuple[int, int], fps: float, **web: Any) -> Sink:
    """Open the output an --output value names; raises OutputError with the fix when it can't."""
    from livefuse.sinks.encoder import FILE_FORMATS, STREAM_FORMATS, open_file_sink, open_stream_sink

    if spec == "null":
        return NullSink()
    if spec == "virtualcam" or spec.startswith("virtualcam:"):
        from livefuse.sinks.virtualcam import VirtualCamSink

        return VirtualCamSink(size, fps, device=spec.partition(":")[2] or None)
    if spec == "preview":
        from livefuse.web.sink import PreviewSink

        return PreviewSink(size, fps, **web)
    if spec.startswith(tuple(STREAM_FORMATS)):
        return open_stream_sink(spec, size, fps)
    path = spec[len("file:"):] if spec.startswith("file:") else spec
    if spec.startswith("file:") or path.partition("?")[0].lower().endswith(tuple(FILE_FORMATS)):
        return open_file_sink(path, size, fps)
    raise OutputError(f"unknown output {spec!r}: expected {OUTPUT_HELP}")
