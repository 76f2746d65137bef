"""A/V sync test media: a clip whose frames show their number in big blocks, with a white flash on the
picture and a click on the sound at the same instant once a second; and the measurements read back.

Written and decoded with PyAV (real AAC in MP4), so the encoders' and muxers' own delays are in play.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

CODE_BITS = 10
BLOCK = 16  # px: a code block, big enough for any blur to leave its centre readable
CLICK_S = 0.004
LOUD = 0.3  # a click's (or a spoken marker's) first sample above this is its time


def code_region(size: tuple[int, int]) -> tuple[slice, slice]:
    return slice(0, BLOCK), slice(0, BLOCK * (CODE_BITS + 2))


def draw_number(image: np.ndarray, number: int) -> None:
    """A white start block, CODE_BITS bit blocks (white = 1), a black end block, along the top edge."""
    bits = [1] + [(number >> i) & 1 for i in range(CODE_BITS)] + [0]
    for i, bit in enumerate(bits):
        image[:BLOCK, i * BLOCK : (i + 1) * BLOCK] = 235 if bit else 16


def read_number(image: np.ndarray) -> int | None:
    """The frame number drawn by `draw_number`, or None when the code is unreadable."""
    centres = image[BLOCK // 2 - 2 : BLOCK // 2 + 2].mean(axis=(0, 2))
    levels = [centres[i * BLOCK + BLOCK // 2 - 2 : i * BLOCK + BLOCK // 2 + 2].mean() for i in range(CODE_BITS + 2)]
    if levels[0] < 170 or levels[-1] > 80:
        return None
    if any(80 < level < 170 for level in levels):
        return None
    return sum(1 << i for i, level in enumerate(levels[1:-1]) if level >= 170)


def is_flash(image: np.ndarray) -> bool:
    return float(image[BLOCK * 2 :].mean()) > 200


def background(size: tuple[int, int]) -> np.ndarray:
    import cv2
    from skimage.data import astronaut

    return cv2.resize(astronaut()[:, :, ::-1], (size[0] + 40, size[1]), interpolation=cv2.INTER_AREA)


def make_clip(
    path: Path,
    *,
    seconds: float = 4.0,
    fps: int = 30,
    size: tuple[int, int] = (320, 180),
    rate: int = 44100,
    channels: int = 2,
    spoken: bool = False,
) -> None:
    """The sync clip: frame n at n/fps shows n; frames at whole seconds flash white; clicks at whole seconds
    (`spoken`: a spoken "ta" whose first loud sample is at the whole second, which noise removal keeps)."""
    base = background(size)
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.options = {"crf": "12", "bf": "0", "preset": "veryfast"}
        audio = out.add_stream("aac", rate=rate)
        audio.layout = "stereo" if channels == 2 else "mono"
        frames = int(seconds * fps)
        for n in range(frames):
            shift = n % 40
            image = np.ascontiguousarray(base[:, shift : shift + size[0]])
            if n % fps == 0:
                image[:] = 255
            draw_number(image, n)
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = n
            frame.time_base = Fraction(1, fps)
            for packet in video.encode(frame):
                out.mux(packet)
        signal = click_track(frames / fps, rate, channels, speech_marker(rate) if spoken else None)
        step = 1024
        for start in range(0, signal.shape[1], step):
            part = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(signal[:, start : start + step]), format="fltp", layout=audio.layout.name
            )
            part.sample_rate = rate
            part.pts = start
            part.time_base = Fraction(1, rate)
            for packet in audio.encode(part):
                out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                out.mux(packet)


def speech_marker(rate: int) -> np.ndarray:
    """espeak-ng saying "ta" (tests/assets/speech_ta.wav, 22.05 kHz), at `rate`: a click is not speech, so
    noise removal takes it out, while a syllable's onset it keeps to the sample."""
    import wave

    with wave.open(str(Path(__file__).parent / "assets" / "speech_ta.wav")) as file:
        native = file.getframerate()
        samples = np.frombuffer(file.readframes(file.getnframes()), np.int16).astype(np.float32) / 32768.0
    times = np.arange(round(samples.size * rate / native)) / rate
    return np.interp(times, np.arange(samples.size) / native, samples).astype(np.float32)


def click_track(seconds: float, rate: int, channels: int, marker: np.ndarray | None = None) -> np.ndarray:
    """Quiet noise with a loud click (or `marker`, its first loud sample on the second) at every whole second."""
    rng = np.random.default_rng(0)
    total = round(seconds * rate)
    signal = (rng.standard_normal((1, total)) * 0.003).astype(np.float32)
    length = int(CLICK_S * rate)
    for second in range(int(seconds) + 1):
        start = second * rate
        if marker is None:
            if start + length <= total:
                signal[0, start : start + length] = 0.8
            continue
        begin = start - int(np.argmax(np.abs(marker) > LOUD))
        part = marker[max(0, -begin) :]  # at 0 s the syllable's lead-in is cut: its onset stays on the second
        begin = max(0, begin)
        if begin + part.size <= total:
            signal[0, begin : begin + part.size] = part
    return np.repeat(signal, channels, axis=0)


@dataclass
class Decoded:
    images: list[np.ndarray]
    video_times: list[float]
    audio: np.ndarray  # mono
    audio_start: float
    rate: int

    @property
    def audio_duration(self) -> float:
        """Seconds of sound from the first click (the clip's first sample) to the end: an encoder's own
        leading samples that a container plays (AAC priming in FLV) are not the clip's sound."""
        return self.audio_start + self.audio.shape[0] / self.rate - self.clicks()[0]

    def clicks(self) -> list[float]:
        """Output times of the clicks: the first loud sample after a quiet half second."""
        loud = np.flatnonzero(np.abs(self.audio) > LOUD)
        onsets: list[float] = []
        last = -(10**9)
        for index in loud.tolist():
            if index - last > self.rate // 2:
                onsets.append(self.audio_start + index / self.rate)
            last = index
        return onsets

    def flashes(self) -> list[float]:
        """Output times of the first frame of each flash."""
        onsets: list[float] = []
        previous = False
        for image, time in zip(self.images, self.video_times, strict=True):
            flash = is_flash(image)
            if flash and not previous:
                onsets.append(time)
            previous = flash
        return onsets


def decode(path: Path | str, fmt: str | None = None) -> Decoded:
    images, times, chunks = [], [], []
    audio_start: float | None = None
    rate = 0
    with av.open(str(path), format=fmt) as container:
        streams = [container.streams.video[0], *list(container.streams.audio[:1])]
        for packet in container.demux(*streams):
            for frame in packet.decode():
                if isinstance(frame, av.AudioFrame):
                    if audio_start is None:
                        assert frame.time is not None
                        audio_start = float(frame.time)
                        rate = frame.sample_rate
                    chunks.append(
                        frame.to_ndarray().reshape(frame.layout.nb_channels, -1)[0]
                        if frame.format.is_planar
                        else frame.to_ndarray()[0, :: frame.layout.nb_channels]
                    )
                elif isinstance(frame, av.VideoFrame) and frame.time is not None:
                    images.append(frame.to_ndarray(format="bgr24"))
                    times.append(float(frame.time))
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if audio.dtype != np.float32 or (audio.size and np.abs(audio).max() > 2):
        audio = audio / 32768.0
    return Decoded(images, times, audio, audio_start or 0.0, rate)


def flash_click_offsets(decoded: Decoded) -> list[float]:
    """For each flash, its time minus the nearest click's (seconds)."""
    clicks = decoded.clicks()
    assert clicks, "no click found in the output's audio"
    return [flash - min(clicks, key=lambda c: abs(c - flash)) for flash in decoded.flashes()]


def frame_offsets(decoded: Decoded, fps: int) -> list[tuple[int, float]]:
    """(source frame, offset) for every output frame: its output time minus the output time of the
    audio for the same source instant (the nearest click's output time plus the distance in source time)."""
    clicks = decoded.clicks()
    assert clicks, "no click found in the output's audio"
    numbered = [(t, read_number(image)) for image, t in zip(decoded.images, decoded.video_times, strict=True)]
    near_first = min((item for item in numbered if item[1] is not None), key=lambda item: abs(item[0] - clicks[0]))
    assert near_first[1] is not None
    first_second = round(near_first[1] / fps)  # which source second the first click belongs to
    out: list[tuple[int, float]] = []
    for image, time in zip(decoded.images, decoded.video_times, strict=True):
        number = read_number(image)
        assert number is not None, f"unreadable frame number at {time:.3f} s"
        source_s = number / fps
        k = min(range(len(clicks)), key=lambda i: abs(clicks[i] - time))
        audio_s = clicks[k] + (source_s - (first_second + k))
        out.append((number, time - audio_s))
    return out
