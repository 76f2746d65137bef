"""Encoded outputs through PyAV: recordings (.mp4, .mkv, .webm) and RTMP/SRT pushes.

Recordings must survive an abrupt end: MP4 is written fragmented (a playable
file after every keyframe even if the process is killed), and `close` flushes
the encoder so a clean stop keeps every frame. When a recording cannot be
written any more (disk full, file too large), it stops at once and is cut back
to the end of its last whole write, so what was recorded stays playable.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from livefuse.errors import OutputError
from livefuse.frame import Frame
from livefuse.sinks.base import OutputFailed

log = logging.getLogger("livefuse.output")

# container suffix -> (format, default codec)
FILE_FORMATS: dict[str, tuple[str, str]] = {
    ".mp4": ("mp4", "libx264"),
    ".mkv": ("matroska", "libx264"),
    ".webm": ("webm", "libvpx"),
}
WEBM_CODECS = {"vp8": "libvpx", "vp9": "libvpx-vp9"}
STREAM_FORMATS = {"rtmp://": "flv", "rtmps://": "flv", "srt://": "mpegts", "udp://": "mpegts"}
TIME_BASE = Fraction(1, 1000)


def _codec_options(codec: str, fps: float) -> dict[str, str]:
    """Real-time settings: no B-frames, a keyframe every two seconds, fast presets."""
    gop = str(max(1, round(fps * 2)))
    if codec == "libx264":
        return {"preset": "veryfast", "tune": "zerolatency", "g": gop, "bf": "0"}
    if codec in ("libvpx", "libvpx-vp9"):
        return {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "g": gop, "b": "2M",
                "row-mt": "1"}
    return {"g": gop}


class EncoderSink:
    """Encodes frames with PyAV into a file or a network push; timestamps come from capture times."""

    repeat_when_idle = False

    def __init__(self, target: str, size: tuple[int, int], fps: float, *, fmt: str, codec: str,
                 options: dict[str, str] | None = None, name: str | None = None, live: bool = False,
                 path: Path | None = None) -> None:
        self.name = name or target
        self.target = target
        self.repeat_when_idle = live
        self.failed = False
        self._path = path  # a recording's file: cut back to `_whole_size` when a write fails half-way
        self._whole_size = 0
        self._first_ns: int | None = None
        self._last_pts = -1
        # flush_packets: each packet leaves at once instead of sitting in FFmpeg's 256 KB I/O buffer, so a
        # push adds no delay and a killed recorder loses at most the fragment being written.
        options = {"flush_packets": "1", **(options or {})}
        try:
            self._container: Any = av.open(target, mode="w", format=fmt, options=options)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot open output {target}: {exc}. Check the path or URL is writable "
                              "or reachable") from exc
        try:
            stream = self._container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        except (av.FFmpegError, ValueError) as exc:
            self._container.close()
            raise OutputError(f"codec {codec} is not available in this PyAV build: {exc}") from exc
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        stream.options = _codec_options(codec, fps)
        self._stream = stream
        try:  # write the header (and connect a push) now, so a bad target fails at start, not at frame one
            self._container.start_encoding()
        except (av.FFmpegError, OSError) as exc:
            self._container.close()
            hint = (" This FFmpeg build has no SRT support: push with rtmp:// or udp:// instead."
                    if target.startswith("srt://") and isinstance(exc, av.ProtocolNotFoundError) else "")
            raise OutputError(f"cannot open output {target}: {exc}.{hint}") from exc
        if path is not None:
            self._whole_size = os.stat(path).st_size
        self.frames = 0

    def write(self, frame: Frame) -> None:
        if self._first_ns is None:
            self._first_ns = frame.capture_ns
        pts = (frame.capture_ns - self._first_ns) // 1_000_000
        pts = max(pts, self._last_pts + 1)  # strictly increasing, even for repeated frames
        self._last_pts = pts
        video = av.VideoFrame.from_ndarray(frame.image, format="bgr24")
        video.pts = pts
        video.time_base = TIME_BASE
        for packet in self._stream.encode(video):
            self._mux(packet)
        self.frames += 1

    def _mux(self, packet: av.Packet) -> None:
        if self.failed:
            raise OutputFailed(f"{self.target} was stopped after a write error")
        try:
            self._container.mux(packet)
        except (av.FFmpegError, OSError) as exc:
            if self._path is None:
                raise  # a push: the pipeline retries, then gives it up
            self.failed = True  # FFmpeg's file writer stays in error once a write failed: retrying cannot help
            raise OutputFailed(f"cannot write {self._path}: {exc.strerror or exc}") from exc
        if self._path is not None:  # each packet is flushed (flush_packets), so the file ends on a whole write
            self._whole_size = os.stat(self._path).st_size

    def close(self) -> None:
        """Flush the encoder and finalise the container, so the recording plays to its end.

        After a write error only the container is closed (what it still writes may be cut off too) and the
        file is cut back to its last whole write: a fragmented MP4 or a Matroska file then plays to there."""
        container = self._container
        if container is None:
            return
        try:
            if not self.failed:
                for packet in self._stream.encode(None):
                    self._mux(packet)
        finally:
            self._container = None
            try:
                container.close()
            except (av.FFmpegError, OSError) as exc:
                if self._path is None:
                    raise
                if not self.failed:  # else the write error was reported already, and this one follows from it
                    self.failed = True
                    raise OutputFailed(f"cannot finish {self._path}: {exc.strerror or exc}") from exc
            finally:
                if self.failed and self._path is not None:
                    os.truncate(self._path, self._whole_size)


def open_file_sink(spec: str, size: tuple[int, int], fps: float) -> EncoderSink:
    """file:PATH[?codec=vp9] → a recording; the suffix picks the container."""
    path_text, _, query = spec.partition("?")
    path = Path(path_text)
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise OutputError(f"cannot record to {path}: use a .mp4, .mkv or .webm file name")
    if not path.parent.exists():
        raise OutputError(f"cannot record to {path}: folder {path.parent} does not exist")
    fmt, codec = FILE_FORMATS[suffix]
    if query.startswith("codec="):
        wanted = query[len("codec="):].lower()
        if suffix != ".webm" or wanted not in WEBM_CODECS:
            raise OutputError(f"codec {wanted!r} is not supported for {suffix}: .webm takes vp8 or vp9")
        codec = WEBM_CODECS[wanted]
    options = {"movflags": "frag_keyframe+empty_moov+default_base_moof"} if fmt == "mp4" else {}
    return EncoderSink(str(path), size, fps, fmt=fmt, codec=codec, options=options, name=f"file:{path}", path=path)


def open_stream_sink(url: str, size: tuple[int, int], fps: float) -> EncoderSink:
    """rtmp:// (FLV) or srt:// / udp:// (MPEG-TS) push with H.264."""
    fmt = next(f for prefix, f in STREAM_FORMATS.items() if url.startswith(prefix))
    return EncoderSink(url, size, fps, fmt=fmt, codec="libx264", name=url, live=True)
