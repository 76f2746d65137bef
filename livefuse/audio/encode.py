"""One encoded output's audio track: chunks resampled once and placed on the video's timeline.

The output's timeline starts at its first video frame's capture time (video pts are capture times
too). A chunk goes where its capture time says; consecutive chunks are written back to back, so the
encoder sees one continuous signal. A gap in the capture times longer than `RESYNC_S` (a source that
reconnected, a device that stalled) is filled with silence, so sound after it is in place again.
Sound captured before the first picture is trimmed: the output starts with its picture.
"""

from __future__ import annotations

import logging
import math
from fractions import Fraction
from typing import Any

import av
import numpy as np

from livefuse.audio.chunk import AudioChunk, AudioFormat
from livefuse.audio.convert import to_frame

log = logging.getLogger("livefuse.audio")

RESYNC_S = 0.02
# Samples an encoder puts before the first real one (AAC's priming frame, Opus's pre-skip).
ENCODER_DELAY = {"aac": 1024, "libopus": 312}


class AudioTrack:
    """Adds an audio stream to a container; `write` and `close` run on the output's own thread."""

    def __init__(
        self,
        container: Any,
        codec: str,
        source: AudioFormat,
        *,
        rate: int,
        bitrate: int,
        delay_in_timeline: bool = False,
    ) -> None:
        """`delay_in_timeline`: the container cannot say "skip the encoder's first samples" (fragmented
        MP4, FLV), so they are played: the track starts at 0 with them and the video is shifted by
        `delay_s` to match, instead of negative timestamps that such muxers mishandle."""
        self.rate = rate
        delay = ENCODER_DELAY.get(codec, 0) if delay_in_timeline else 0
        self.delay_s = delay / rate
        self._pts_shift = delay
        self.layout = "mono" if source.channels == 1 else "stereo"
        stream = container.add_stream(codec, rate=rate)
        stream.layout = self.layout
        stream.bit_rate = bitrate
        stream.time_base = Fraction(1, rate)
        stream.codec_context.time_base = Fraction(1, rate)
        formats = [f.name for f in stream.codec_context.codec.audio_formats or []]
        stream.format = "fltp" if "fltp" in formats or not formats else formats[-1]
        self._stream = stream
        self._container = container
        self._resampler: av.AudioResampler | None = None
        self._in_rate = source.rate
        self._fed_s: float | None = None  # seconds of input fed so far, from the timeline's start
        self._out_samples = 0
        self.overlaps = 0
        self.gaps = 0
        self.samples_written = 0

    def write(self, chunk: AudioChunk, origin_ns: int) -> None:
        """Encode `chunk` where its capture time falls on a timeline that starts at `origin_ns`."""
        samples = chunk.samples
        at_s = (chunk.capture_ns - origin_ns) / 1e9
        if self._fed_s is None:
            if at_s < 0:  # captured before the first picture
                trim = math.ceil(-at_s * chunk.rate)
                samples, at_s = samples[:, trim:], at_s + trim / chunk.rate
                if samples.shape[1] == 0:
                    return
            self._fed_s = 0.0
            log.debug("sound starts %.1f ms after the first picture", at_s * 1000)
            self._silence(at_s, chunk.rate, samples.shape[0])
        else:
            gap_s = at_s - self._fed_s
            if gap_s > RESYNC_S:
                self.gaps += 1
                log.debug("sound resumes %.1f ms after it stopped: filled with silence", gap_s * 1000)
                self._silence(gap_s, chunk.rate, samples.shape[0])
            elif gap_s < -RESYNC_S:
                self.overlaps += 1  # written after the previous chunk anyway: sound is never dropped
                log.debug(
                    "sound stamped %.1f ms before the previous chunk ended: kept, written after it", -gap_s * 1000
                )
        self._feed(samples, chunk.rate)

    def _silence(self, seconds: float, rate: int, channels: int) -> None:
        count = round(seconds * rate)
        if count > 0:
            self._feed(np.zeros((channels, count), np.float32), rate)

    def _feed(self, samples: np.ndarray, rate: int) -> None:
        assert self._fed_s is not None
        if self._resampler is None:
            self._resampler = av.AudioResampler(
                format=self._stream.format.name,
                layout=self.layout,
                rate=self.rate,
                frame_size=self._stream.codec_context.frame_size or None,
            )
        self._fed_s += samples.shape[1] / rate
        self._encode(self._resampler.resample(to_frame(samples, rate)))

    def _encode(self, frames: list[av.AudioFrame]) -> None:
        for frame in frames:
            frame.pts = self._out_samples + self._pts_shift
            frame.time_base = Fraction(1, self.rate)
            self._out_samples += frame.samples
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        self.samples_written = self._out_samples

    def close(self) -> None:
        """Encode what the resampler holds and flush the encoder: the last samples are kept."""
        if self._resampler is not None:
            self._encode(self._resampler.resample(None))
        for packet in self._stream.encode(None):
            self._container.mux(packet)
