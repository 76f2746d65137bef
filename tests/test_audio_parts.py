"""The audio path's parts: the media clock, the lossless feed, gap filling, the virtual camera's delay line."""

from __future__ import annotations

import io

import av
import numpy as np

from livefuse.audio.chunk import AudioChunk, AudioFormat
from livefuse.audio.clock import MediaClock
from livefuse.audio.encode import AudioTrack
from livefuse.audio.feed import AudioFeed
from livefuse.audio.inputs import SourceAudio
from livefuse.stats import OutputStats, PipelineStats
from livefuse.status import status_line

MS = 1_000_000


def test_clock_ignores_late_frames_and_restarts_on_a_jump() -> None:
    clock = MediaClock(window=10)
    clock.anchor(0, 1000 * MS)
    clock.anchor(33 * MS, 1073 * MS)  # delivered 40 ms late
    assert clock.capture_ns(66 * MS) == 1066 * MS
    clock.anchor(0, 9000 * MS)  # a file looped: media time starts again
    assert clock.capture_ns(33 * MS) == 9033 * MS
    clock.anchor(2000 * MS, 11000 * MS)
    clock.anchor(0, 11033 * MS)  # a 2 s clip looped (the offset moved by its length only)
    assert clock.capture_ns(33 * MS) == 11066 * MS


def test_feed_keeps_every_chunk_and_reports_an_output_that_stopped() -> None:
    feed = AudioFeed(AudioFormat(48000, 1), max_backlog_ns=100 * MS)
    chunk = AudioChunk(np.zeros((1, 960), np.float32), 48000, 0)  # 20 ms
    assert all(feed.put(chunk) for _ in range(5))
    assert not feed.put(chunk) and feed.overflowed
    assert len(feed.take_all()) == 5 and feed.take_all() == []


def test_a_gap_in_capture_times_is_filled_with_silence_and_nothing_is_dropped() -> None:
    buffer = io.BytesIO()
    container = av.open(buffer, "w", format="matroska")
    track = AudioTrack(container, "aac", AudioFormat(48000, 1), rate=48000, bitrate=96_000)
    container.start_encoding()
    tone = np.full((1, 4800), 0.5, np.float32)  # 100 ms
    track.write(AudioChunk(tone, 48000, 0), 0)
    track.write(AudioChunk(tone, 48000, 100 * MS), 0)  # back to back
    track.write(AudioChunk(tone, 48000, 300 * MS), 0)  # after a 100 ms gap
    track.write(AudioChunk(tone, 48000, 390 * MS), 0)  # 10 ms early: written after the previous anyway
    track.close()
    container.close()
    assert track.gaps == 1 and track.overlaps == 0
    assert abs(track.samples_written - 48000 * 0.5) <= 1024  # 400 ms of sound + 100 ms of silence


def test_virtualcam_delay_in_the_status_line_and_snapshot() -> None:
    stats = PipelineStats()
    assert "sync offset" not in status_line(stats) and "virtualcam_video_delay_ms" not in stats.snapshot()
    cam = stats.outputs["virtualcam:/dev/video9"] = OutputStats()
    for ms in (40, 42, 44):
        cam.latency.add(ms * MS)
    assert "video delay 42 ms: set it as the mic's sync offset in OBS" in status_line(stats)
    snapshot = stats.snapshot()
    assert snapshot["virtualcam_video_delay_ms"] == 42.0
    assert "42 ms" in str(snapshot["virtualcam_hint"])


class ScriptedStream:
    """A live stream's demuxer as `SourceAudio` sees it: the video frame just read and the sound demuxed with it."""

    def __init__(self) -> None:
        self.audio_format: AudioFormat | None = AudioFormat(48000, 1)
        self.video_slot_ns: int | None = None
        self.live = True
        self.fps = 30.0
        self.loop_end_ns: int | None = None
        self.video_media_ns = 0
        self.sound: list[tuple[int, av.AudioFrame]] = []

    def enable_audio(self) -> None:
        pass

    def take_audio(self) -> list[tuple[int, av.AudioFrame]]:
        taken, self.sound = self.sound, []
        return taken


def test_a_live_stream_starts_in_sync_when_its_first_frames_come_late() -> None:
    """Opening a stream gives a burst of old frames; then each frame arrives up to 60 ms late (a loaded
    sender), the first ones latest. Every picture that goes on must carry the capture time its sound gets."""
    stream = ScriptedStream()
    audio = SourceAudio(stream, "stream")
    chunks: list[AudioChunk] = []
    audio.start(chunks.append)
    frame_ns, floor_ns = 1_000_000_000 // 30, 5_000_000_000
    lateness_ms = [66, 43, 15, 15, 15, 15] + [(37 * n) % 60 for n in range(60)]
    arrivals = [floor_ns + n * 1_000_000 for n in range(24)]  # the backlog: 24 frames in 24 ms
    arrivals += [floor_ns + (24 + n) * frame_ns + late * 1_000_000 for n, late in enumerate(lateness_ms)]
    stamped: list[tuple[int, int]] = []  # (media, capture) of each picture that went on
    for n, arrived in enumerate(arrivals):
        stream.video_media_ns = n * frame_ns
        marked = np.full((1, 1600), n / 1000, np.float32)  # which instant a delivered chunk is the sound of
        sound = av.AudioFrame.from_ndarray(marked, format="fltp", layout="mono")
        sound.sample_rate = 48000
        stream.sound.append((n * frame_ns, sound))  # 1/30 s of sound with each picture
        capture = audio.video_capture_ns(arrived)
        if capture is not None:
            stamped.append((n * frame_ns, capture))
            audio.on_video(capture)
    assert len(stamped) >= 40 and stamped[0][0] >= 24 * frame_ns  # the backlog and the settling are skipped
    sound_offsets = {chunk.capture_ns - round(float(chunk.samples[0, 0]) * 1000) * frame_ns for chunk in chunks}
    assert len(chunks) >= 40 and len(sound_offsets) == 1  # one clock for the whole sound
    sound_offset = sound_offsets.pop()
    worst_ms = max(abs(capture - media - sound_offset) for media, capture in stamped) / 1e6
    assert worst_ms <= 5, worst_ms  # a picture shows with its sound (the old start put the first 66 ms late)
