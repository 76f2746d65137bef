"""Where frames come from: `open_source(spec, size, fps)` turns a --source value into a Source."""

from __future__ import annotations

import glob
import sys
from pathlib import Path
from urllib.parse import parse_qs

from livefuse.errors import SourceError
from livefuse.sources.base import Pacer, Source, SourceLost

__all__ = ["SOURCE_HELP", "Pacer", "Source", "SourceLost", "default_source", "open_source"]

SOURCE_HELP = (
    "webcam, webcam:N, /dev/videoN, PATH or file:PATH[?loop=1], image:PATH, "
    "rtsp:// rtmp:// srt:// http(s):// URLs, or demo"
)


def default_source() -> str:
    """`webcam` when this machine has one, else the built-in `demo`."""
    if sys.platform.startswith("linux"):
        return "webcam" if glob.glob("/dev/video*") else "demo"
    return "webcam"


def _split_query(spec: str) -> tuple[str, dict[str, str]]:
    if "?" not in spec:
        return spec, {}
    base, query = spec.split("?", 1)
    return base, {k: v[-1] for k, v in parse_qs(query).items()}


def open_source(spec: str, size: tuple[int, int], fps: float) -> Source:
    """Open the source a --source value names; raises SourceError with the fix when it can't."""
    from livefuse.sources.av_source import STREAM_SCHEMES, AVSource, open_camera, open_file

    if spec == "demo":
        from livefuse.sources.demo import DemoSource

        return DemoSource(size, fps)
    if spec == "webcam" or spec.startswith("webcam:") or spec.startswith("/dev/video"):
        device = spec.split(":", 1)[1] if spec.startswith("webcam:") else ("0" if spec == "webcam" else spec)
        return open_camera(device, size, fps)
    if spec.startswith("image:"):
        from livefuse.sources.image import ImageSource

        return ImageSource(Path(spec[len("image:") :]), size, fps)
    if spec.startswith(STREAM_SCHEMES):
        options = {"rtsp_transport": "tcp"} if spec.startswith("rtsp") else {}
        return AVSource(spec, size, fps, options=options, live=True, description=f"stream {spec}")
    path_spec, query = _split_query(spec[len("file:") :] if spec.startswith("file:") else spec)
    if "://" in path_spec:
        raise SourceError(f"unknown source {spec!r}: expected {SOURCE_HELP}")
    return open_file(Path(path_spec), size, fps, loop=query.get("loop", "0") in ("1", "true", "yes"))
