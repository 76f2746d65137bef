"""An audio input with a filter on its sound (`--audio-filter`, a preset's `audio_filter`), switchable live.

It wraps the input the source or device gives. The thread that delivers a chunk (capture, or the decoder
that also decodes the picture) only queues it; a thread of its own filters it, so a filter that stalls
(DeepFilterNet's process on a busy machine) never holds up the picture. Chunks pass through untouched while
the filter is "none", and go through a `Denoiser` while it names a suppressor ("denoise": RNNoise,
"deepfilternet": DeepFilterNet 3), stamped with the capture time of the sound they carry. A switch is
queued between chunks, so it applies from exactly the next chunk and sync holds across it. Both suppressors
need 48 kHz: sound at another rate is resampled to 48 kHz when one is on from the start; a stream started
without one cannot switch one on later (its outputs were opened for the original rate), and says so.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass

import av
import numpy as np

from livefuse.audio.chunk import AudioChunk, AudioFormat
from livefuse.audio.convert import to_frame
from livefuse.audio.denoise import AUDIO_FILTERS, RATE, SUPPRESSORS, Denoiser
from livefuse.audio.inputs import AudioInput, Deliver
from livefuse.errors import UserError

log = logging.getLogger("livefuse.audio")
QUEUED = 400  # chunks the filter thread may fall behind (seconds of sound: capture chunks are 10-40 ms)
FLUSH_S = 5.0  # seconds flush() and close() wait for the filter thread


@dataclass(frozen=True)
class _Switch:
    """A filter switch, queued between the chunks before and after it (its suppressor built already)."""

    name: str
    denoiser: Denoiser | None


_Item = AudioChunk | _Switch | threading.Event | None  # a chunk, a switch, a flush, the end


class FilteredAudio:
    """An `AudioInput` whose sound goes through the chosen filter before it is queued to the outputs."""

    def __init__(self, inner: AudioInput, audio_filter: str = "none") -> None:
        if audio_filter not in AUDIO_FILTERS:
            raise UserError(f"--audio-filter {audio_filter}: one of {', '.join(AUDIO_FILTERS)}")
        self.inner = inner
        resample = audio_filter in SUPPRESSORS and inner.format.rate != RATE
        self.format = AudioFormat(RATE, inner.format.channels) if resample else inner.format
        self._resampler = (
            av.AudioResampler(format="fltp", layout="mono" if inner.format.channels == 1 else "stereo", rate=RATE)
            if resample
            else None
        )
        self._wanted = audio_filter
        self.description = inner.description
        self._deliver: Deliver | None = None
        self._queue: queue.Queue[_Item] = queue.Queue()  # chunks bounded by QUEUED (switches and flushes are few)
        self._worker: threading.Thread | None = None
        # the filter thread's own: what it runs, and whether the next chunk needs a fresh suppressor
        self._active = "none"
        self._denoiser: Denoiser | None = None
        self._restart = False
        self.dropped = 0  # chunks lost because the filter fell QUEUED chunks behind
        self.set_filter(audio_filter)

    @property
    def audio_filter(self) -> str:
        return self._wanted

    def set_filter(self, audio_filter: str) -> None:
        """Switch the filter from the next chunk delivered on. Off the loop and the filter thread: a
        suppressor is built here (DeepFilterNet's process takes about 0.4 s to start)."""
        self.check_filter(audio_filter)
        spec = SUPPRESSORS.get(audio_filter)
        self._queue.put(_Switch(audio_filter, Denoiser(self.format.channels, audio_filter) if spec else None))
        self._wanted = audio_filter
        self.description = self.inner.description + (f", denoised ({spec.label})" if spec else "")

    def check_filter(self, audio_filter: str) -> None:
        """A UserError naming the field and the fix when this stream cannot run `audio_filter`."""
        if audio_filter not in AUDIO_FILTERS:
            raise UserError(f"audio_filter = {audio_filter!r}: one of {', '.join(AUDIO_FILTERS)}")
        spec = SUPPRESSORS.get(audio_filter)
        if spec is not None:
            if self.format.rate != RATE:
                raise UserError(
                    f"audio_filter = {audio_filter!r}: this stream's sound is {self.format.rate} Hz and its "
                    f"outputs were opened for that; {spec.label} needs {RATE} Hz, so start livefuse with "
                    f"--audio-filter {audio_filter} to have it resampled"
                )
            spec.check()

    def start(self, deliver: Deliver) -> None:
        self._deliver = deliver
        self._worker = threading.Thread(target=self._work, name="audio-filter", daemon=True)
        self._worker.start()
        self.inner.start(self._on_chunk)

    def _on_chunk(self, chunk: AudioChunk) -> None:
        """The capture or decode thread's chunk, queued for the filter thread; dropped (and counted) only
        when the filter is QUEUED chunks behind, i.e. it cannot keep up at all."""
        if self._queue.qsize() >= QUEUED:
            self.dropped += 1
            if self.dropped == 1:
                log.error("audio filter %s fell %d chunks behind: dropping sound", self._wanted, QUEUED)
            return
        self._queue.put(chunk)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            if isinstance(item, AudioChunk):
                self._send(self._filtered(self._resampled(item)))
            elif isinstance(item, _Switch):
                self._send(self._end_denoiser())
                self._active, self._denoiser, self._restart = item.name, item.denoiser, False
                log.info("audio filter: %s", item.name)
            else:  # flush(): the denoiser's tail out, and everything before it
                self._send(self._end_denoiser())
                self._restart = self._active in SUPPRESSORS  # sound after the end (a looped file) starts afresh
                item.set()

    def _send(self, chunks: list[AudioChunk]) -> None:
        assert self._deliver is not None
        for chunk in chunks:
            self._deliver(chunk)

    def _end_denoiser(self) -> list[AudioChunk]:
        """What the running denoiser still holds; it is closed."""
        if self._denoiser is None:
            return []
        tail = self._denoiser.flush()
        self._denoiser.close()
        self._denoiser = None
        return tail

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
        if self._restart:
            self._denoiser, self._restart = Denoiser(self.format.channels, self._active), False
        if chunk.samples.shape[1] == 0:
            return []
        if self._denoiser is None:
            return [chunk]
        return self._denoiser.push(chunk)

    def video_capture_ns(self, now_ns: int) -> int | None:
        return self.inner.video_capture_ns(now_ns)

    def on_video(self, capture_ns: int) -> None:
        self.inner.on_video(capture_ns)

    def flush(self) -> None:
        """The source ended: its last sound, then what the denoiser still holds, delivered before this returns."""
        self.inner.flush()
        if self._worker is not None:
            done = threading.Event()
            self._queue.put(done)
            done.wait(FLUSH_S)

    def close(self) -> None:
        self.inner.close()
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(FLUSH_S)
        if self._worker is None or not self._worker.is_alive():
            while not self._queue.empty():  # switches never taken: their suppressors
                item = self._queue.get_nowait()
                if isinstance(item, _Switch) and item.denoiser is not None:
                    item.denoiser.close()
            if self._denoiser is not None:
                self._denoiser.close()
                self._denoiser = None
