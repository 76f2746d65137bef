"""Where sound comes from: the source's own audio track, or a capture device beside the camera.

Both hand `AudioChunk`s stamped on the capture clock to a `deliver` callback, from a thread that is
never the asyncio loop's: the source's audio from the capture thread (decoded with the video from the
same container), a device's from its own reader thread.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import av

from livefuse.audio.chunk import AudioChunk, AudioFormat
from livefuse.audio.clock import BACK_NS, MediaClock
from livefuse.audio.convert import ToPlanarFloat
from livefuse.errors import SourceError

log = logging.getLogger("livefuse.audio")

Deliver = Callable[[AudioChunk], None]
DEVICE_FORMATS = ("pulse", "alsa", "avfoundation", "dshow")
AUDIO_HELP = (
    "auto (the source's own sound, else none), off, or a device: pulse:NAME, alsa:NAME (e.g. alsa:default), "
    "avfoundation::N, dshow:audio=NAME"
)


class AudioInput(Protocol):
    """A producer of audio chunks. `on_video` and `flush` are called by the capture thread."""

    description: str
    format: AudioFormat

    def start(self, deliver: Deliver) -> None: ...

    def video_capture_ns(self, now_ns: int) -> int | None: ...

    def on_video(self, capture_ns: int) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


class _LiveEdge:
    """Finds where a stream's backlog ends. Opening a stream reads ahead to learn its codecs, so its first
    frames come in a burst, already old; picture and sound stamped as they arrive would be squeezed
    together and the sound would then lag for good. The backlog ends with the first frame that comes at
    its own pace (or after `GIVE_UP_NS`). The frames of the next `SETTLE_NS` only teach the clock when
    frames arrive at the earliest: each comes late by its own share of the sender's and the network's
    jitter, so a picture stamped before the clock has seen enough of them would show after its sound
    (66 ms on a loaded machine). Capture, of picture and sound alike, starts once the clock has settled."""

    GIVE_UP_NS = 2_000_000_000
    PACED = 1
    SETTLE_NS = 500_000_000

    def __init__(self) -> None:
        self._first_ns: int | None = None
        self._last_ns: int | None = None
        self._paced = 0
        self.reached = False
        self.reached_ns = 0

    def stale(self, now_ns: int, fps: float) -> bool:
        if self.reached:
            return False
        self._first_ns = self._first_ns or now_ns
        previous, self._last_ns = self._last_ns, now_ns
        paced = previous is not None and now_ns - previous >= 0.5e9 / fps
        self._paced = self._paced + 1 if paced else 0
        self.reached = self._paced >= self.PACED or now_ns - self._first_ns > self.GIVE_UP_NS
        self.reached_ns = now_ns
        return not self.reached

    def settled(self, now_ns: int) -> bool:
        return self.reached and now_ns - self.reached_ns >= self.SETTLE_NS


class DemuxedAudio(Protocol):
    """What a video source with its own audio track offers (`AVSource` declares it)."""

    audio_format: AudioFormat | None
    video_media_ns: int
    video_slot_ns: int | None
    live: bool
    fps: float
    loop_end_ns: int | None

    def enable_audio(self) -> None: ...

    def take_audio(self) -> list[tuple[int, av.AudioFrame]]: ...


class SourceAudio:
    """The source's own audio, decoded beside its video and stamped through the video's capture times.

    Each video frame the pipeline stamps anchors a `MediaClock`: media time -> capture time. An audio
    frame's capture time is its media time through that clock, so a sample and the picture of the same
    media instant carry the same capture time.
    """

    def __init__(self, source: DemuxedAudio, description: str) -> None:
        assert source.audio_format is not None
        self.format = source.audio_format
        self.description = f"sound of {description}"
        self._source = source
        self._clock = MediaClock()
        self._convert = ToPlanarFloat()
        self._deliver: Deliver | None = None
        self._live_edge = _LiveEdge() if source.live else None
        self._last_media_ns = 0
        self._held: list[tuple[int, av.AudioFrame]] = []
        self._capturing = False  # a stream: whether its clock has settled and its frames go on
        source.enable_audio()

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    def video_capture_ns(self, now_ns: int) -> int | None:
        """The capture time to stamp the frame just read with (None: skip it), from its media time: a paced file's frame
        belongs to its pacer slot (a late wake-up of the capture thread must not shift it against its
        sound), a stream's to when its media instant arrived at the earliest (not when a burst of
        buffered frames was delivered). A stream's frames are skipped until that is known (`_LiveEdge`)."""
        media = self._source.video_media_ns
        slot = self._source.video_slot_ns
        if self._live_edge is not None and self._live_edge.stale(now_ns, self._source.fps):
            self._source.take_audio()  # the sound of that backlog: before capture started, like its picture
            return None
        if self._clock.anchored and media < self._last_media_ns - BACK_NS:  # a looped file started again
            self._send_before_loop()
        self._last_media_ns = media
        self._clock.anchor(media, slot if slot is not None and slot <= now_ns else now_ns)
        if self._live_edge is not None and not self._capturing:
            if not self._live_edge.settled(now_ns):
                self._held += self._source.take_audio()  # some of it may be the next frames' sound
                return None
            self._capturing = True  # the sound from this picture's instant on goes with it
            self._held = [
                (at, frame)
                for at, frame in self._held + self._source.take_audio()
                if at + frame.samples * 1_000_000_000 // frame.sample_rate > media
            ]
        return min(now_ns, self._clock.capture_ns(media))

    def on_video(self, capture_ns: int) -> None:
        self._send(self._held + self._source.take_audio())
        self._held = []

    def _send_before_loop(self) -> None:
        """Deliver the end of the previous pass on the old clock; hold the new pass's start for the new one."""
        pending = self._source.take_audio()
        split = next((i for i in range(1, len(pending)) if pending[i][0] < pending[i - 1][0] - BACK_NS), len(pending))
        self._send(pending[:split])
        self._held = pending[split:]

    def flush(self) -> None:
        """The source ended: deliver the sound decoded after its last picture."""
        if self._clock.anchored:
            self._send(self._source.take_audio())

    def _send(self, pending: list[tuple[int, av.AudioFrame]]) -> None:
        if self._deliver is None:
            return
        for media_ns, frame in pending:
            samples = self._convert(frame)
            end_ns = self._source.loop_end_ns
            if end_ns is not None:  # a looped pass ends with its picture: sound past it (an encoder's
                # padding) would overlap the next pass and push all later sound back a little every loop
                samples = samples[:, : max(0, (end_ns - media_ns) * frame.sample_rate // 1_000_000_000)]
            if samples.shape[1]:
                self._deliver(AudioChunk(samples, frame.sample_rate, self._clock.capture_ns(media_ns)))

    def close(self) -> None:
        pass


def device_input(spec: str) -> tuple[str, str]:
    """(FFmpeg format, device) for an --audio device spec; a bare name uses the platform's usual system."""
    fmt, sep, device = spec.partition(":")
    if sep and fmt in DEVICE_FORMATS:
        return fmt, device
    if sys.platform.startswith("linux"):
        return ("pulse" if "pulse" in av.formats_available else "alsa"), spec
    if sys.platform == "darwin":
        return "avfoundation", spec
    return "dshow", spec if spec.startswith("audio=") else f"audio={spec}"


class DeviceAudio:
    """A microphone read through PyAV on its own thread; capture times from when its samples arrive."""

    def __init__(self, spec: str) -> None:
        fmt, device = device_input(spec)
        self.description = f"audio device {fmt}:{device}"
        if fmt not in av.formats_available:
            raise SourceError(
                f"--audio {spec}: this PyAV build cannot capture with {fmt} (it has "
                f"{', '.join(f for f in DEVICE_FORMATS if f in av.formats_available) or 'none'}); "
                "use --audio off or another device"
            )
        try:
            self._container: Any = av.open(device, format=fmt, timeout=(5.0, 5.0))
        except (av.FFmpegError, OSError) as exc:
            raise SourceError(
                f"--audio {spec}: cannot open {self.description}: {exc}. Name an existing device, or use --audio off"
            ) from exc
        if not self._container.streams.audio:
            self._container.close()
            raise SourceError(f"--audio {spec}: {self.description} has no audio stream")
        stream = self._container.streams.audio[0]
        self.format = AudioFormat(stream.rate, stream.channels)
        self._stream = stream
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._clock = MediaClock()
        self._convert = ToPlanarFloat()

    def start(self, deliver: Deliver) -> None:
        self._thread = threading.Thread(target=self._read, args=(deliver,), name="livefuse-audio", daemon=True)
        self._thread.start()

    def _read(self, deliver: Deliver) -> None:
        try:
            for frame in self._container.decode(self._stream):
                if self._stop.is_set():
                    return
                now = time.monotonic_ns()
                media_ns = int(frame.pts * frame.time_base * 1_000_000_000) if frame.pts is not None else now
                duration_ns = frame.samples * 1_000_000_000 // frame.sample_rate
                self._clock.anchor(media_ns + duration_ns, now)  # its last sample has just arrived
                deliver(AudioChunk(self._convert(frame), frame.sample_rate, self._clock.capture_ns(media_ns)))
        except (av.FFmpegError, OSError) as exc:
            if not self._stop.is_set():
                log.error("%s stopped: %s", self.description, exc)

    def video_capture_ns(self, now_ns: int) -> int:
        return now_ns

    def on_video(self, capture_ns: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=1.0)
        self._container.close()


def open_audio(spec: str, source: object, source_description: str) -> AudioInput | None:
    """The audio input an --audio value names, for this video source (None: no sound)."""
    from livefuse.sources.av_source import AVSource

    if spec == "off":
        return None
    if spec == "auto":
        if isinstance(source, AVSource) and source.audio_format is not None:
            return SourceAudio(source, source_description)
        return None
    return DeviceAudio(spec)
