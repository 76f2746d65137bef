"""Noise removal (`--audio-filter denoise`: RNNoise; `deepfilternet`: DeepFilterNet 3): PESQ and STOI before and
after each, in the same run, with each one's delay and CPU cost.

    .venv/bin/python benchmarks/denoise_quality.py

Needs `espeak-ng` (apt-get install espeak-ng) and the `pesq` and `pystoi` packages. The clean speech is
espeak-ng reading five sentences (two voices). The noises are made here, since only package registries are
reachable from this machine (no noise corpus could be fetched):
- fan: pink noise plus a motor hum (100 Hz and its harmonics) and a blade-rate swell (4 Hz);
- keyboard: key clicks (3 ms decaying broadband bursts, 5-12 a second, random strength) on a quiet floor;
- babble: six other espeak-ng voices saying other sentences at once, level-matched.
Each is mixed at 0, 5 and 10 dB SNR; PESQ (wide band, at 16 kHz) and STOI are against the clean speech, the
denoised sound aligned by the delay livefuse takes off its stamps. CPU is the process time (every thread)
per second of sound, one channel, on this machine.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from livefuse.audio.chunk import AudioChunk  # noqa: E402
from livefuse.audio.denoise import RATE, SUPPRESSORS, Denoiser  # noqa: E402

SENTENCES = (
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Please send the quarterly report to the whole team before Friday afternoon.",
    "Noise removal should keep every word clear while the fan keeps running.",
    "We will meet again next week to talk about the new camera settings.",
    "Streaming from home is easier when the microphone only hears your voice.",
)
BABBLE = (
    "Can you hear me now, the line was breaking up a moment ago.",
    "I think the budget for the next quarter needs another look.",
    "The weather has been wonderful all week, hasn't it?",
    "Turn left at the second light and then keep going straight.",
    "My sister bought a new bicycle for the summer holidays.",
    "Remember to water the plants while I am away on the trip.",
)
SNRS = (0, 5, 10)
CHUNK = 1024  # samples a push, as a capture device delivers


def say(text: str, voice: str, folder: Path) -> np.ndarray:
    """espeak-ng's speech at 48 kHz mono float32."""
    path = folder / "say.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True)
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=RATE)
    with av.open(str(path)) as container:
        parts = [f.to_ndarray() for frame in container.decode(audio=0) for f in resampler.resample(frame)]
    return np.concatenate(parts, axis=1)[0].astype(np.float32)


def fan(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    spectrum /= np.sqrt(np.maximum(np.arange(spectrum.size), 1))  # 1/f power: pink
    pink = np.fft.irfft(spectrum, n)
    t = np.arange(n) / RATE
    hum = sum(np.sin(2 * np.pi * 100 * k * t + k) / k for k in range(1, 6))
    swell = 1.0 + 0.3 * np.sin(2 * np.pi * 4 * t)
    return ((pink / pink.std() + 0.5 * hum) * swell).astype(np.float32)


def keyboard(n: int, rng: np.random.Generator) -> np.ndarray:
    out = rng.standard_normal(n) * 0.01
    click = int(0.003 * RATE)
    decay = np.exp(-np.arange(click) / (0.0008 * RATE))
    pos = 0
    while True:
        pos += int(RATE / rng.uniform(5, 12))
        if pos + click >= n:
            break
        out[pos : pos + click] += rng.standard_normal(click) * decay * rng.uniform(0.5, 1.0)
    return out.astype(np.float32)


def babble(n: int, folder: Path) -> np.ndarray:
    out = np.zeros(n, np.float32)
    for i, text in enumerate(BABBLE):
        voice = ("en-us", "en", "en+f3", "en+m3", "en-us+f2", "en+m7")[i]
        talk = say(text, voice, folder)
        talk = np.tile(talk, n // talk.size + 1)[:n]
        out += np.roll(talk, i * RATE // 3) / (talk.std() + 1e-9)
    return out


def mix(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    gain = np.sqrt(np.mean(clean**2) / (np.mean(noise**2) * 10 ** (snr_db / 10)))
    return (clean + noise * gain).astype(np.float32)


def denoised(sound: np.ndarray, suppressor: str) -> tuple[np.ndarray, float]:
    """(denoised sound, CPU seconds spent) in CHUNK pushes as a live input gives them."""
    denoiser = Denoiser(1, suppressor)
    start = time.process_time()
    out = []
    for pos in range(0, sound.size, CHUNK):
        out += denoiser.push(AudioChunk(sound[None, pos : pos + CHUNK].copy(), RATE, pos))
    out += denoiser.flush()
    cpu = time.process_time() - start
    denoiser.close()
    return np.concatenate([c.samples[0] for c in out]), cpu


def scores(clean: np.ndarray, test: np.ndarray) -> tuple[float, float]:
    from pesq import pesq
    from pystoi import stoi

    def to16k(x: np.ndarray) -> np.ndarray:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=16000)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None]), format="fltp", layout="mono")
        frame.sample_rate = RATE
        parts = [f.to_ndarray()[0] for f in [*resampler.resample(frame), *resampler.resample(None)]]
        return np.concatenate(parts)

    a, b = to16k(clean), to16k(test)
    n = min(a.size, b.size)
    return float(pesq(16000, a[:n], b[:n], "wb")), float(stoi(clean, test, RATE, extended=False))


def main() -> None:
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed: apt-get install -y espeak-ng")
    rng = np.random.default_rng(2026)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        pause = np.zeros(RATE // 3, np.float32)
        parts = []
        for i, text in enumerate(SENTENCES):
            parts += [say(text, "en-us" if i % 2 else "en", folder), pause]
        clean = np.concatenate(parts)
        clean *= 0.3 / np.abs(clean).max()
        noises = {
            "fan": fan(clean.size, rng),
            "keyboard": keyboard(clean.size, rng),
            "babble": babble(clean.size, folder),
        }
    seconds = clean.size / RATE
    names = list(SUPPRESSORS)
    print(f"{seconds:.1f} s of espeak-ng speech, 48 kHz mono; the delay each takes off the stamps:")
    for name in names:
        spec = SUPPRESSORS[name]
        print(f"  {name}: {spec.label}, {spec.delay} samples = {spec.delay / RATE * 1000:.0f} ms")
    after = " ".join(f"{name:>13}" for name in names)
    print(f"{'noise':9} {'SNR':>4} {'PESQ before':>12} {after} {'STOI before':>12} {after}")
    cpu_total = dict.fromkeys(names, 0.0)
    for noise_name, noise in noises.items():
        for snr in SNRS:
            noisy = mix(clean, noise, snr)
            pesq_before, stoi_before = scores(clean, noisy)
            pesqs, stois = [], []
            for name in names:
                out, cpu = denoised(noisy, name)
                cpu_total[name] += cpu
                pesq_after, stoi_after = scores(clean, out)
                pesqs.append(f"{pesq_after:13.2f}")
                stois.append(f"{stoi_after:13.3f}")
            row = f"{noise_name:9} {snr:4d} {pesq_before:12.2f} {' '.join(pesqs)}"
            print(f"{row} {stoi_before:12.3f} {' '.join(stois)}")
    runs = len(noises) * len(SNRS)
    for name in names:
        share = cpu_total[name] / runs / seconds
        print(f"CPU, {name}: {share * 1000:.1f} ms per second of sound per channel ({share * 100:.1f} % of one core)")


if __name__ == "__main__":
    main()
