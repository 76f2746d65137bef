"""Noise removal (RNNoise through pyrnnoise's library): its delay is measured and taken off the stamps, any
chunking gives the same sound, nothing is lost, gaps stay gaps, and the filter switches live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from av_sync import speech_marker
from browser_fixtures import daemons_fixture, http, http_json

from livefuse.audio import denoise
from livefuse.audio.chunk import AudioChunk, AudioFormat
from livefuse.audio.denoise import DELAY, RATE, Denoiser
from livefuse.audio.filtered import FilteredAudio
from livefuse.errors import PresetError, UserError
from livefuse.presets import parse_preset

__all__ = ["daemons_fixture"]

NS = 1_000_000_000


def speech(seconds: float = 3.0) -> np.ndarray:
    """The spoken marker twice a second over silence: speech RNNoise keeps."""
    marker = speech_marker(RATE)
    out = np.zeros(int(seconds * RATE), np.float32)
    for start in range(RATE // 4, out.size - marker.size, RATE // 2):
        out[start : start + marker.size] = marker
    return out


def noisy(clean: np.ndarray, level: float = 0.02) -> np.ndarray:
    return clean + np.random.default_rng(5).standard_normal(clean.size).astype(np.float32) * level


def run(samples: np.ndarray, sizes: list[int], start_ns: int = NS) -> list[AudioChunk]:
    denoiser = Denoiser(samples.shape[0])
    out: list[AudioChunk] = []
    pos, i = 0, 0
    while pos < samples.shape[1]:
        n = sizes[i % len(sizes)]
        out += denoiser.push(AudioChunk(samples[:, pos : pos + n].copy(), RATE, start_ns + pos * NS // RATE))
        pos, i = pos + n, i + 1
    out += denoiser.flush()
    denoiser.close()
    return out


def joined(chunks: list[AudioChunk]) -> np.ndarray:
    return np.concatenate([c.samples for c in chunks], axis=1)


def test_the_delay_is_taken_off_the_stamps() -> None:
    """Cross-correlation of the denoised sound with the clean speech peaks at lag 0 once DELAY (960
    samples, 20 ms: two RNNoise frames) is taken off; stamps follow the samples exactly."""
    clean = speech()
    chunks = run(noisy(clean)[None], [1024])
    out = joined(chunks)[0]
    assert out.size == clean.size
    spectrum = np.fft.rfft(out, 2 * out.size) * np.conj(np.fft.rfft(clean, 2 * out.size))
    lag = int(np.argmax(np.fft.irfft(spectrum)))
    lag = lag if lag < out.size else lag - 2 * out.size
    assert lag == 0, lag
    assert DELAY == 960
    position = 0
    for chunk in chunks:
        assert abs(chunk.capture_ns - (NS + position * NS // RATE)) <= 1
        position += chunk.samples.shape[1]


def test_any_chunking_gives_the_same_sound_and_loses_nothing() -> None:
    stereo = np.stack([noisy(speech(1.5)), noisy(speech(1.5), 0.05)])
    a, b = joined(run(stereo, [480])), joined(run(stereo, [1024, 333, 2048, 7]))
    assert a.shape == b.shape == stereo.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1])  # one state a channel


def test_noise_goes_and_speech_stays() -> None:
    clean = speech()
    out = joined(run(noisy(clean)[None], [960]))[0]
    pause = slice(int(0.05 * RATE), int(0.24 * RATE))  # before the first syllable (after RNNoise's start)
    before = float(np.sqrt(np.mean(noisy(clean)[pause] ** 2)))
    after = float(np.sqrt(np.mean(out[pause] ** 2)))
    print(f"noise rms in a pause {before:.4f} -> {after:.4f}")
    assert after < 0.1 * before, (before, after)  # measured: 0.0202 -> under 0.0001
    words = np.abs(clean) > 0.05
    assert np.corrcoef(out[words], clean[words])[0, 1] > 0.9


def test_a_gap_between_chunks_stays_a_gap() -> None:
    denoiser = Denoiser(1)
    first = noisy(speech(0.5))[None]
    out = denoiser.push(AudioChunk(first, RATE, NS))
    out += denoiser.push(AudioChunk(first.copy(), RATE, 5 * NS))  # the source came back 4.5 s later
    out += denoiser.flush()
    stamps = [(c.capture_ns, c.samples.shape[1]) for c in out]
    assert sum(n for _, n in stamps) == 2 * first.shape[1]
    assert any(ns >= 5 * NS for ns, _ in stamps)
    for ns, n in stamps:  # no chunk straddles the gap
        assert ns + n * NS // RATE <= NS + first.shape[1] * NS // RATE + 1 or ns >= 5 * NS


class FakeDevice:
    """A capture device (none here): the test hands chunks to `deliver` itself."""

    description = "fake microphone"

    def __init__(self, rate: int = RATE) -> None:
        self.format = AudioFormat(rate, 1)
        self.deliver = None
        self.closed = False

    def start(self, deliver):  # type: ignore[no-untyped-def]
        self.deliver = deliver

    def video_capture_ns(self, now_ns: int) -> int:
        return now_ns

    def on_video(self, capture_ns: int) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_the_filter_switches_live_without_losing_or_shifting_sound() -> None:
    device = FakeDevice()
    audio = FilteredAudio(device, "none")
    got: list[AudioChunk] = []
    audio.start(got.append)
    sound = noisy(speech(1.0))
    step = 1024
    for i, pos in enumerate(range(0, sound.size, step)):
        if i == 10:
            audio.set_filter("denoise")
        if i == 30:
            audio.set_filter("none")
        chunk = AudioChunk(sound[None, pos : pos + step].copy(), RATE, NS + pos * NS // RATE)
        device.deliver(chunk)  # type: ignore[misc]
        if i < 10:
            assert got[-1] is chunk  # "none" passes the very chunk on
    audio.flush()
    assert sum(c.samples.shape[1] for c in got) == sound.size
    position = 0
    for chunk in got:  # continuous: each chunk starts where the sound before it ended
        assert abs(chunk.capture_ns - (NS + position * NS // RATE)) <= 1
        position += chunk.samples.shape[1]
    assert "denoised" not in audio.description
    audio.close()
    assert device.closed


def test_denoise_on_other_rates_needs_it_from_the_start() -> None:
    late = FilteredAudio(FakeDevice(44100), "none")
    with pytest.raises(UserError, match=r"44100 Hz.*--audio-filter denoise"):
        late.set_filter("denoise")
    early = FilteredAudio(FakeDevice(44100), "denoise")
    assert early.format.rate == RATE and "denoised (RNNoise)" in early.description


def test_without_pyrnnoise_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    denoise._library.cache_clear()
    monkeypatch.setattr(denoise.importlib.util, "find_spec", lambda name: None)
    try:
        with pytest.raises(UserError, match="pip install pyrnnoise"):
            FilteredAudio(FakeDevice(), "denoise")
    finally:
        denoise._library.cache_clear()


def test_a_preset_names_its_audio_filter(tmp_path: Path) -> None:
    preset = parse_preset('name = "x"\ndescription = "x"\naudio_filter = "denoise"\n', tmp_path / "x.toml")
    assert preset.audio_filter == "denoise"
    assert parse_preset('name = "x"\n', tmp_path / "x.toml").audio_filter is None
    with pytest.raises(PresetError, match=r"audio_filter = 'rnnoise' is not allowed; expected one of 'none', "):
        parse_preset('audio_filter = "rnnoise"\n', tmp_path / "x.toml")


def test_a_bad_audio_filter_argument_exits_2(cli) -> None:  # type: ignore[no-untyped-def]
    proc = cli("run", "--source", "demo", "--audio-filter", "loud", "--frames", "1")
    assert proc.returncode == 2
    assert "--audio-filter" in proc.stderr and "denoise" in proc.stderr


def test_loading_a_preset_switches_the_filter_or_refuses_before_anything_changes(tmp_path: Path) -> None:
    import asyncio

    from livefuse.engine import Engine
    from livefuse.presets import load_preset
    from livefuse.runtime import Runtime
    from livefuse.sources.demo import DemoSource
    from livefuse.wiring import assemble

    quiet = tmp_path / "quiet.toml"
    quiet.write_text('name = "quiet"\ndescription = "x"\naudio_filter = "denoise"\nstages = []\n')
    plain = tmp_path / "plain.toml"
    plain.write_text('name = "plain"\ndescription = "x"\nstages = []\n')
    engine = Engine(provider="cpu", cache_dir=tmp_path / "cache")
    for rate, switches in ((RATE, True), (44100, False)):
        audio = FilteredAudio(FakeDevice(rate), "none")
        assembly = assemble(load_preset(str(plain)), engine, (64, 36), 30.0)
        runtime = Runtime.wire(assembly, DemoSource((64, 36), 30.0, paced=False), [], settings={}, audio=audio)
        if switches:
            assert asyncio.run(runtime.switch_preset(str(quiet))).name == "quiet"
            assert audio.audio_filter == "denoise" and "denoised" in runtime.pipeline.stats.audio
            asyncio.run(runtime.switch_preset(str(plain)))  # no audio_filter key: left as it is
            assert audio.audio_filter == "denoise"
        else:
            with pytest.raises(UserError, match="44100 Hz"):
                asyncio.run(runtime.switch_preset(str(quiet)))
            assert runtime.preset.name == "plain" and audio.audio_filter == "none"
        runtime.pipeline.chain.close()


def test_the_page_switches_the_filter_and_status_and_metrics_show_it(daemons: Any) -> None:
    """`PUT /api/audio-filter` (the page's sound menu) switches it live; status and /metrics say which runs;
    a bad name or a daemon with no sound gets a 400 naming the field and the fix."""
    audio = FilteredAudio(FakeDevice(RATE), "none")
    daemon = daemons("passthrough", audio=audio).start()
    status, body = http_json("PUT", f"{daemon.url}/api/audio-filter", {"filter": "denoise"})
    assert (status, body) == (200, {"audio_filter": "denoise"}) and audio.audio_filter == "denoise"
    status, body = http_json("GET", f"{daemon.url}/api/status")
    assert body["stats"]["audio"]["filter"] == "denoise" and body["audio_filters"] == ["none", "denoise"]
    metrics = http("GET", f"{daemon.url}/metrics")[2].decode()
    assert 'livefuse_audio_filter_info{filter="denoise"} 1.0' in metrics
    assert "livefuse_sleeping 0.0" in metrics  # sleep's state: the daemons here are always on
    status, body = http_json("PUT", f"{daemon.url}/api/audio-filter", {"filter": "rnnoise"})
    assert status == 400 and "audio_filter = 'rnnoise': one of none, denoise" in body["error"]
    assert audio.audio_filter == "denoise"
    status, body = http_json("PUT", f"{daemon.url}/api/audio-filter", {"filter": 1})
    assert status == 400 and '{"filter": "<none|denoise>"}' in body["error"]
    silent = daemons("passthrough").start()
    status, body = http_json("PUT", f"{silent.url}/api/audio-filter", {"filter": "denoise"})
    assert status == 400 and "no sound to filter" in body["error"] and "--audio" in body["error"]
