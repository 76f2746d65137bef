"""An audio input with a filter on its sound (`--audio-filter`, a preset's `audio_filter`), switchable live.

It wraps the input the source or device gives, on the same thread: chunks pass through untouched while
the filter is "none", and go through `Denoiser` while it is "denoise", stamped with the capture time of the
sound they carry, so sync holds across the switch. RNNoise needs 48 kHz: sound at another rate is
resampled to 48 kHz when denoise is on from the start; such a stream started without it cannot switch it
on later (its outputs were opened for the original rate), and says so.
"""

from __future__ import annotations

import logging
import threading

import av
import numpy as np

from livefuse.audio.chunk import AudioChunk, AudioFormat
from livefuse.audio.convert import to_frame
from livefuse.audio.denoise import AUDIO_FILTERS, RATE, Denoiser
from livefuse.audio.inputs import AudioInput, Deliver
from livefuse.errors import UserError

log = logging.getLogger("livefuse.audio")


class FilteredAudio:
    """An `AudioInput` whose sound goes through the chosen filter before it is queued to the outputs."""

    def __init__(self, inner: AudioInput, audio_filter: str = "none") -> None:
        if audio_filter not in AUDIO_FILTERS:
            raise UserError(f"--audio-filter {audio_filter}: one of {', '.join(AUDIO_FILTERS)}")
        self.inner = inner
        resample = audio_filter == "denoise" and inner.format.rate != RATE
        self.format = AudioFormat(RATE, inner.format.channels) if resample else inner.format
        self._resampler = (
            av.AudioResampler(format="fltp", layout="mono" if inner.format.channels == 1 else "stereo", rate=RATE)
            if resample
            else None
        )
        self._wanted = audio_filter
        self.description = inner.description
        self._active = "none"  # what the audio thread runs now; it follows `_wanted` at the next chunk
        self._denoiser: Denoiser | None = None
        self._deliver: Deliver | None = None
        self._lock = threading.Lock()  # the audio thread's chunk against close()
        self.set_filter(audio_filter)

    @property
    def audio_filter(self) -> str:
        return self._wanted

    def set_filter(self, audio_filter: str) -> None:
        """Switch the filter; it takes effect from the next chunk (any thread)."""
        self.check_filter(audio_filter)
        self._wanted = audio_filter
        self.description = self.inner.description + (", denoised (RNNoise)" if audio_filter == "denoise" else "")

    def check_filter(self, audio_filter: str) -> None:
        """A UserError naming the field and the fix when this stream cannot run `audio_filter`."""
        if audio_filter not in AUDIO_FILTERS:
            raise UserError(f"audio_filter = {audio_filter!r}: one of {', '.join(AUDIO_FILTERS)}")
        if audio_filter == "denoise":
            if self.format.rate != RATE:
                raise UserError(
                    f"audio_filter = 'denoise': this stream's sound is {self.format.rate} Hz and its "
                    f"outputs were opened for that; RNNoise needs {RATE} Hz, so start livefuse with "
                    "--audio-filter denoise to have it resampled"
                )
            Denoiser.check()

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self.inner.start(self._on_chunk)

    def _on_chunk(self, chunk: AudioChunk) -> None:
        with self._lock:
            assert self._deliver is not None
            for out in self._filtered(self._resampled(chunk)):
                self._deliver(out)

    def _resampled(self, chunk: AudioChunk) -> AudioChunk:
        if self._resampler is None:
            return chunk
        parts = [
            np.asarray(f.to_ndarray(), np.float32)
            for f in self._resampler.resample(to_frame(chunk.samples, chunk.rate))
        ]
        samples = np.concatenate(parts, axis=1) if parts else np.zeros((chunk.channels, 0), np.float32)
        return AudioChunk(samples, RATE, chunk.capture_ns)

    def _filtered(self, chunk: AudioChunk) -> list[AudioChunk]:
        """The chunk through the active filter, after following a switch (a denoiser's tail first)."""
        out: list[AudioChunk] = []
        if self._active != self._wanted:
            if self._denoiser is not None:
                out += self._denoiser.flush()
                self._denoiser.close()
                self._denoiser = None
            if self._wanted == "denoise":
                self._denoiser = Denoiser(self.format.channels)
            self._active = self._wanted
            log.info("audio filter: %s", self._active)
        if chunk.samples.shape[1] == 0:
            return out
        if self._denoiser is None:
            return [*out, chunk]
        return out + self._denoiser.push(chunk)

    def video_capture_ns(self, now_ns: int) -> int | None:
        return self.inner.video_capture_ns(now_ns)

    def on_video(self, capture_ns: int) -> None:
        self.inner.on_video(capture_ns)

    def flush(self) -> None:
        """The source ended: its last sound, then what the denoiser still holds."""
        self.inner.flush()
        with self._lock:
            if self._denoiser is not None and self._deliver is not None:
                for out in self._denoiser.flush():
                    self._deliver(out)
                self._denoiser.close()
                self._denoiser = None
                self._active = "none"  # sound after the end (a looped file) starts a fresh denoiser

    def close(self) -> None:
        self.inner.close()
        with self._lock:
            if self._denoiser is not None:
                self._denoiser.close()
                self._denoiser = None
