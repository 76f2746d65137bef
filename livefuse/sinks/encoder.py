"""Encoded outputs through PyAV: recordings (.mp4, .mkv, .webm) and RTMP/SRT pushes, with their sound.

Recordings must survive an abrupt end: MP4 is written fragmented (a playable
file after every keyframe even if the process is killed), and `close` flushes
the encoder so a clean stop keeps every frame. When a recording cannot be
written any more (disk full, file too large), it stops at once and is cut back
to the end of its last whole write, so what was recorded stays playable.

Video and audio pts both come from capture times, on one timeline that starts at
the first frame's capture: the muxer then holds sound back by exactly the delay
the video took (it interleaves packets by timestamp), frame by frame.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from livefuse.audio.chunk import AudioFormat
from livefuse.audio.encode import AudioTrack
from livefuse.audio.feed import AudioFeed
from livefuse.errors import OutputError
from livefuse.frame import Frame
from livefuse.sinks.base import OutputFailed, Sink
from livefuse.sinks.options import (
    AUDIO_RATE,
    WEBM_CODECS,
    EncodeOptions,
    parse_options,
    split_options,
    video_codec_options,
)
from livefuse.yuv import yuv420p_frame

log = logging.getLogger("livefuse.output")

# container suffix -> (format, default codec)
FILE_FORMATS: dict[str, tuple[str, str]] = {
    ".mp4": ("mp4", "libx264"),
    ".mkv": ("matroska", "libx264"),
    ".webm": ("webm", "libvpx"),
}
STREAM_FORMATS = {"rtmp://": "flv", "rtmps://": "flv", "srt://": "mpegts", "udp://": "mpegts"}
AUDIO_CODECS = {"mp4": "aac", "matroska": "aac", "webm": "libopus", "flv": "aac", "mpegts": "aac"}
NO_ENCODER_DELAY_FIELD = {"flv"}  # no way to say "skip the priming" (MP4 has its edit list: delay_moov)
TIME_BASE = Fraction(1, 1000)


class EncoderSink(Sink):
    """Encodes frames with PyAV into a file or a network push; timestamps come from capture times."""

    repeat_when_idle = False

    def __init__(
        self,
        target: str,
        size: tuple[int, int],
        fps: float,
        *,
        fmt: str,
        codec: str,
        options: dict[str, str] | None = None,
        name: str | None = None,
        live: bool = False,
        quality: EncodeOptions | None = None,
        audio: AudioFormat | None = None,
        path: Path | None = None,
    ) -> None:
        self.name = name or target
        self.target = target
        self.repeat_when_idle = live
        self.failed = False
        self._path = path  # a recording's file: cut back to `_whole_size` when a write fails half-way
        self._whole_size = 0
        quality = quality or EncodeOptions()
        self._first_ns: int | None = None
        self._last_pts = -1
        self._keyint_ms = round(quality.keyint_s * 1000 - 500 / fps)  # half a frame early is on time
        self._last_key_pts: int | None = None
        self.audio_feed: AudioFeed | None = AudioFeed(audio) if audio is not None else None
        self._audio: AudioTrack | None = None
        self._video_shift_ms = 0
        # flush_packets: each packet leaves at once instead of sitting in FFmpeg's 256 KB I/O buffer, so a
        # push adds no delay and a killed recorder loses at most the fragment being written.
        options = {"flush_packets": "1", **(options or {})}
        try:
            self._container: Any = av.open(target, mode="w", format=fmt, options=options)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(
                f"cannot open output {target}: {exc}. Check the path or URL is writable or reachable"
            ) from exc
        try:
            self._setup(size, fps, codec, fmt, quality, audio, live)
        except BaseException:  # nothing half-open is left behind: the file, the encoder's threads
            with contextlib.suppress(av.FFmpegError, OSError):
                self._container.close()
            raise
        self.frames = 0

    def _setup(
        self,
        size: tuple[int, int],
        fps: float,
        codec: str,
        fmt: str,
        quality: EncodeOptions,
        audio: AudioFormat | None,
        live: bool,
    ) -> None:
        """Add the streams and write the header (a push connects here)."""
        target = self.target
        try:
            stream = self._container.add_stream(codec, rate=Fraction(fps).limit_denominator(1001))
        except (av.FFmpegError, ValueError) as exc:
            raise OutputError(f"codec {codec} is not available in this PyAV build: {exc}") from exc
        assert isinstance(stream, av.VideoStream)  # a video codec's
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = TIME_BASE
        stream.codec_context.time_base = TIME_BASE
        stream.options = {**video_codec_options(codec, fps, quality, push=live)}
        self._stream = stream
        if audio is not None:
            self._audio = AudioTrack(
                self._container,
                AUDIO_CODECS[fmt],
                audio,
                rate=AUDIO_RATE,
                bitrate=quality.audio_bitrate,
                delay_in_timeline=fmt in NO_ENCODER_DELAY_FIELD,
            )
            self._video_shift_ms = round(self._audio.delay_s * 1000)
        try:  # write the header (and connect a push) now, so a bad target fails at start, not at frame one
            self._container.start_encoding()
        except (av.FFmpegError, OSError) as exc:
            hint = (
                " This FFmpeg build has no SRT support: push with rtmp:// or udp:// instead."
                if target.startswith("srt://") and isinstance(exc, av.ProtocolNotFoundError)
                else ""
            )
            raise OutputError(f"cannot open output {target}: {exc}.{hint}") from exc
        if self._path is not None:
            self._whole_size = os.stat(self._path).st_size

    def write(self, frame: Frame) -> None:
        if self._first_ns is None:
            self._first_ns = frame.capture_ns
        pts = (frame.capture_ns - self._first_ns) // 1_000_000 + self._video_shift_ms
        pts = max(pts, self._last_pts + 1)  # strictly increasing, even for repeated frames
        self._last_pts = pts
        video = yuv420p_frame(frame.image)
        video.pts = pts
        video.time_base = TIME_BASE
        if self._last_key_pts is None or pts - self._last_key_pts >= self._keyint_ms:
            video.pict_type = av.video.frame.PictureType.I  # keyframes by time, whatever frames were dropped
            self._last_key_pts = pts
        for packet in self._stream.encode(video):
            self._mux(packet)
        self.frames += 1
        self._write_audio()

    def _write_audio(self) -> None:
        """Encode the sound captured so far; the muxer interleaves it with the video by timestamp."""
        if self._audio is None or self.audio_feed is None:
            return
        chunks = self.audio_feed.take_all()
        if self._first_ns is None:  # no picture yet: the timeline starts with the first sound
            if not chunks:
                return
            self._first_ns = chunks[0].capture_ns
        with self._file_writes():
            for chunk in chunks:
                self._audio.write(chunk, self._first_ns)

    @contextlib.contextmanager
    def _file_writes(self) -> Iterator[None]:
        """A write error on a recording is final (FFmpeg's file writer stays in error once a write failed, so
        retrying cannot help): OutputFailed, for the pipeline to give this output up at once. A push's error
        is left as it is: the pipeline retries, then gives it up."""
        if self.failed:
            raise OutputFailed(f"{self.target} was stopped after a write error")
        try:
            yield
        except (av.FFmpegError, OSError) as exc:
            if self._path is None:
                raise
            self.failed = True
            raise OutputFailed(f"cannot write {self._path}: {exc.strerror or exc}") from exc

    def _mux(self, packet: av.Packet) -> None:
        with self._file_writes():
            self._container.mux(packet)
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
                try:
                    self._write_audio()
                    if self._audio is not None:
                        with self._file_writes():
                            self._audio.close()
                finally:
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


def file_options(spec: str) -> tuple[Path, str, EncodeOptions]:
    """(path, codec, checked options) of file:PATH[?crf=18&preset=slow&codec=vp9...]."""
    path_text, raw = split_options(spec, passthrough=False)
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path_text):
        raise OutputError(f"cannot record to {path_text!r}: a file name may not contain control characters")
    path = Path(path_text)
    suffix = path.suffix.lower()
    if suffix not in FILE_FORMATS:
        raise OutputError(f"cannot record to {path}: use a .mp4, .mkv or .webm file name")
    codec = FILE_FORMATS[suffix][1]
    options = parse_options(raw, video_codec=codec)
    if options.codec is not None:
        codec = WEBM_CODECS[options.codec]
    return path, codec, options


def stream_options(url: str) -> tuple[str, EncodeOptions]:
    """(URL for the protocol, checked options) of a push URL; its own query keys stay in the URL."""
    target, raw = split_options(url, passthrough=True)
    return target, parse_options(raw, video_codec="libx264")


def open_file_sink(
    spec: str, size: tuple[int, int], fps: float, audio: AudioFormat | None = None, *, new_file: bool = False
) -> EncoderSink:
    """file:PATH[?crf=N&...] -> a recording; the suffix picks the container, AAC or Opus sound beside it.

    `new_file`: the file must not exist yet, and is never reached through a symlink (recordings an API
    client names: one cannot overwrite another's, nor write where a link points)."""
    path, codec, quality = file_options(spec)
    if not path.parent.exists():
        raise OutputError(f"cannot record to {path}: folder {path.parent} does not exist")
    fmt = FILE_FORMATS[path.suffix.lower()][0]
    options = {"movflags": "frag_keyframe+empty_moov+default_base_moof+delay_moov"} if fmt == "mp4" else {}
    if new_file:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644))
        except FileExistsError:
            raise OutputError(
                f"cannot record to {path.name}: a file of that name exists already; choose another name"
            ) from None
        except OSError as exc:
            raise OutputError(f"cannot record to {path.name}: {exc.strerror}") from None
    try:
        return EncoderSink(
            str(path),
            size,
            fps,
            fmt=fmt,
            codec=codec,
            options=options,
            name=f"file:{path}",
            quality=quality,
            audio=audio,
            path=path,
        )
    except BaseException:
        if new_file:
            path.unlink(missing_ok=True)
        raise


def open_stream_sink(url: str, size: tuple[int, int], fps: float, audio: AudioFormat | None = None) -> EncoderSink:
    """rtmp:// (FLV) or srt:// / udp:// (MPEG-TS) push with H.264 and AAC at push settings."""
    target, quality = stream_options(url)
    fmt = next(f for prefix, f in STREAM_FORMATS.items() if url.startswith(prefix))
    return EncoderSink(target, size, fps, fmt=fmt, codec="libx264", name=url, live=True, quality=quality, audio=audio)
