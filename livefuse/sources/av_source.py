"""Files, network streams and cameras, all decoded by PyAV (FFmpeg)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np

from livefuse.audio.chunk import AudioFormat
from livefuse.errors import SourceError
from livefuse.redact import redact
from livefuse.sources.base import Pacer, Source, SourceLost

log = logging.getLogger("livefuse.source")

# A live source silent this long is taken as lost and reopened (outputs a viewer watches repeat their last
# frame meanwhile): without it, a stream whose sender stopped would block the capture thread on a silent socket.
STALL_TIMEOUT_S = 2.0
OPEN_TIMEOUT_S = 5.0
STREAM_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "rtmps://", "srt://", "http://", "https://", "udp://", "tcp://")


def camera_inputs(device: str, size: tuple[int, int], fps: float) -> list[tuple[str, str, dict[str, str]]]:
    """FFmpeg (url, format, options) to try for a camera on this OS, best first.

    MJPEG first (a USB camera sends 720p30 only compressed), then raw YUYV, then the camera's own
    default mode at the requested size and rate.
    """
    options = {"video_size": f"{size[0]}x{size[1]}", "framerate": f"{fps:g}"}
    if sys.platform.startswith("linux"):
        url = device if device.startswith("/dev/") else f"/dev/video{device}"
        return [(url, "v4l2", {**options, "input_format": fmt}) for fmt in ("mjpeg", "yuyv422")] + [
            (url, "v4l2", options)
        ]
    if sys.platform == "darwin":
        return [(device, "avfoundation", {**options, "pixel_format": fmt}) for fmt in ("uyvy422", "yuyv422")] + [
            (device, "avfoundation", options)
        ]
    if sys.platform == "win32":
        name = device if not device.isdigit() else f"video={device}"
        return [
            (name, "dshow", {**options, "vcodec": "mjpeg"}),
            (name, "dshow", {**options, "pixel_format": "yuyv422"}),
            (name, "dshow", options),
        ]
    raise SourceError(f"cameras are not supported on {sys.platform}: use --source demo or a file")


class AVSource(Source):
    """Decodes a container or device with PyAV and returns frames as BGR at the requested size.

    Files (`live=False`) are paced at their own frame rate like a camera and can loop;
    cameras and streams are read as fast as they deliver.
    """

    def __init__(
        self,
        url: str,
        size: tuple[int, int],
        fps: float,
        *,
        fmt: str | None = None,
        options: dict[str, str] | None = None,
        live: bool = True,
        loop: bool = False,
        description: str | None = None,
        stall_timeout: float = STALL_TIMEOUT_S,
    ) -> None:
        self.url = url
        self.size = size
        self.fps = fps
        self.live = live
        self.loop = loop
        self.description = description or redact(url)  # in errors and logs: no password
        self.stall_timeout = stall_timeout
        self._fmt = fmt
        self._options = options or {}
        self._container: Any = None
        self._frames: Iterator[av.VideoFrame] | None = None
        self._pacer: Pacer | None = None
        self.audio_format: AudioFormat | None = None  # the container's sound, offered to SourceAudio
        self.video_media_ns = 0  # media time of the frame `read` returned last
        self.video_slot_ns: int | None = None  # a paced file's: the instant its pacer released that frame for
        self.loop_end_ns: int | None = None
        self._audio_enabled = False
        self._audio: list[tuple[int, av.AudioFrame]] = []
        self._declared_s: float | None = None  # a file's duration, to tell a truncated one from a short one
        self._first_s: float | None = None  # times of the first and last frame of this pass through a file
        self._last_s = 0.0
        self._read = 0
        self._open()

    def _open(self) -> None:
        try:
            self._container = av.open(
                self.url,
                format=self._fmt,
                options=self._options,
                timeout=(OPEN_TIMEOUT_S, self.stall_timeout if self.live else OPEN_TIMEOUT_S),
            )
        except (av.FFmpegError, OSError) as exc:
            if not self.live:
                raise SourceError(
                    f"cannot open source {self.description}: {exc.strerror or exc}. It is not a video "
                    "file FFmpeg can read, or it is damaged or truncated"
                ) from exc
            raise SourceError(
                f"cannot open source {self.description}: {exc}. Check that it exists and is "
                "reachable, or use --source demo to try livefuse without one"
            ) from exc
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"source {self.description} has no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        if not self.live:
            rate = float(stream.average_rate or stream.guessed_rate or self.fps)
            self.fps = rate if rate > 0 else self.fps
            self._pacer = Pacer(self.fps, catch_up=self._audio_enabled)
            self._declared_s = declared_duration(self._container)
        duration = stream.duration * stream.time_base if stream.duration and stream.time_base else None
        self.loop_end_ns = int(duration * 1_000_000_000) if self.loop and duration else None  # where a pass ends
        audio = self._container.streams.audio
        self.audio_format = AudioFormat(audio[0].rate, audio[0].channels) if audio and audio[0].rate else None
        self._frames = self._decode()
        self._first_s, self._read = None, 0

    def _decode(self) -> Iterator[av.VideoFrame]:
        """The video frames; with audio enabled, the sound demuxed on the way is kept for `take_audio`."""
        video = self._container.streams.video[0]
        if not self._audio_enabled or self.audio_format is None:
            return self._container.decode(video)
        return demux_with_audio(self._container, video, self._container.streams.audio[0], self._audio)

    def enable_audio(self) -> None:
        """Decode the container's audio too (only when an output will carry it: decoding costs CPU)."""
        self._audio_enabled = True
        if self._pacer is not None:
            self._pacer.catch_up = True  # late frames keep their slots, so the sound needs no gap
        self._frames = self._decode()

    def take_audio(self) -> list[tuple[int, av.AudioFrame]]:
        """(media time in ns, frame) of the sound decoded since the last call."""
        taken, self._audio[:] = list(self._audio), []
        return taken

    def read(self) -> np.ndarray | None:
        assert self._frames is not None
        try:
            frame = next(self._frames)
        except StopIteration:
            if self.live:  # a camera or stream does not end: it was unplugged or its sender stopped
                raise SourceLost(f"{self.description} ended") from None
            self._check_complete()
            if not self.loop:
                return None
            self._container.seek(0)
            for stream in self._container.streams.audio[:1]:  # no sound of the old pass in the new one
                stream.codec_context.flush_buffers()
            self._frames = self._decode()
            self._first_s, self._read = None, 0
            try:
                frame = next(self._frames)
            except StopIteration:
                return None
        except av.ExitError as exc:  # the read timeout interrupted a read that got no data
            if not self.live:
                raise SourceError(f"cannot read {self.description}: no data for {OPEN_TIMEOUT_S:g} s") from exc
            raise SourceLost(f"{self.description} sent nothing for {self.stall_timeout:g} s") from exc
        except (av.FFmpegError, OSError) as exc:
            if not self.live:
                raise SourceError(
                    f"cannot decode {self.description} after {self._read} frames: "
                    f"{exc.strerror or exc}. The file is damaged"
                ) from exc
            raise SourceLost(str(exc)) from exc
        if frame.time is not None:
            self._first_s = frame.time if self._first_s is None else self._first_s
            self._last_s = frame.time
        self._read += 1
        if self._pacer is not None:
            self.video_slot_ns = self._pacer.wait()
        if frame.pts is not None and frame.time_base is not None:
            self.video_media_ns = int(frame.pts * frame.time_base * 1_000_000_000)
        return frame.to_ndarray(format="bgr24", width=self.size[0], height=self.size[1])

    def _check_complete(self) -> None:
        """A file that ends well before the duration its header declares was cut short: say so, don't stop
        quietly as if it had played to its end."""
        if self._declared_s is None:
            return
        played = self._last_s - (self._first_s or 0.0) + 1.0 / self.fps if self._read else 0.0
        if played < 0.9 * self._declared_s - 1.0 / self.fps:
            raise SourceError(
                f"{self.description} is truncated: it ended after {played:.1f} s of the "
                f"{self._declared_s:.1f} s its header declares ({self._read} frames)"
            )

    def reopen(self) -> None:
        """Open the source again after it was lost."""
        self.close()
        self._open()

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


def declared_duration(container: Any) -> float | None:
    """Seconds of video a file's header declares; None where it is only an estimate (MPEG-TS) or may be
    another stream's (a container with more than the video stream and no video duration of its own)."""
    stream = container.streams.video[0]
    if stream.duration and stream.time_base and "mpegts" not in container.format.name:
        return float(stream.duration * stream.time_base)
    if container.duration and len(container.streams) == 1 and "mpegts" not in container.format.name:
        return container.duration / 1_000_000
    return None


def demux_with_audio(
    container: Any, video: Any, audio: Any, sound: list[tuple[int, av.AudioFrame]]
) -> Iterator[av.VideoFrame]:
    """Video frames of one container read once for both streams; its audio frames go to `sound`."""
    for packet in container.demux(video, audio):
        for frame in packet.decode():
            if isinstance(frame, av.AudioFrame):
                if frame.pts is not None and frame.time_base is not None:
                    sound.append((int(frame.pts * frame.time_base * 1_000_000_000), frame))
            else:
                yield frame


def open_file(path: Path, size: tuple[int, int], fps: float, loop: bool) -> AVSource:
    if not path.is_file():
        raise SourceError(f"source file not found: {path}. Give an existing video file, or --source demo")
    return AVSource(str(path), size, fps, live=False, loop=loop, description=f"file {path}")


def open_camera(device: str, size: tuple[int, int], fps: float) -> AVSource:
    """The camera in the first mode it accepts; the error of the preferred mode when it takes none."""
    candidates = camera_inputs(device, size, fps)
    url = candidates[0][0]
    if candidates[0][1] == "v4l2" and not Path(url).exists():
        raise SourceError(f"no camera at {url}. Plug one in, pick another with --source webcam:N, or use --source demo")
    first_error: SourceError | None = None
    for url, fmt, options in candidates:
        try:
            return AVSource(url, size, fps, fmt=fmt, options=options, live=True, description=f"camera {url}")
        except SourceError as exc:
            log.debug("camera %s refused %s: %s", url, options, exc)
            first_error = first_error or exc
    assert first_error is not None
    raise first_error
