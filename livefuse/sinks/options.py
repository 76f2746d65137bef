"""Quality settings of encoded outputs, from an output's query string: `file:out.mp4?crf=18`.

Recordings default to visually transparent quality (constant quality, CRF 18 for H.264); pushes
default to what streaming platforms ask for: constant bitrate with maxrate and bufsize, a keyframe
every 2 s, 48 kHz AAC. Every value is checked when the output is parsed, before any model loads,
and a bad one is reported by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from livefuse.errors import OutputError

X264_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow")
WEBM_CODECS = {"vp8": "libvpx", "vp9": "libvpx-vp9"}
OPTION_NAMES = ("crf", "bitrate", "keyint", "preset", "audio_bitrate", "codec")
OPTIONS_HELP = (
    "crf=N (H.264 0-51, VP8/VP9 4-63), bitrate=4500k, keyint=SECONDS, preset=NAME (H.264: "
    + ", ".join(X264_PRESETS)
    + "), audio_bitrate=160k, codec=vp8|vp9 (.webm)"
)
_RATE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")

RECORDING_CRF = 18
RECORDING_PRESET = "faster"  # measured: 0.99 of a face's detail at CRF 18, where veryfast keeps 0.95
PUSH_BITRATE = 4_500_000
AUDIO_BITRATE = 160_000
AUDIO_RATE = 48_000


@dataclass(frozen=True)
class EncodeOptions:
    """What an encoded output was asked for; None: the output kind's default."""

    crf: int | None = None
    bitrate: int | None = None
    keyint_s: float = 2.0
    preset: str | None = None  # recordings: faster (keeps a face's detail at CRF 18), pushes: veryfast
    audio_bitrate: int = AUDIO_BITRATE
    codec: str | None = None  # .webm only: vp8 or vp9


def _rate(name: str, text: str, low: int, high: int) -> int:
    match = _RATE.match(text.strip())
    if match is None:
        raise OutputError(f"output option {name}={text!r} is not a bit rate: write e.g. {name}=4500k or 4.5M")
    value = float(match.group(1)) * {"": 1, "k": 1e3, "m": 1e6}[match.group(2).lower()]
    if not low <= value <= high:
        raise OutputError(f"output option {name}={text} is out of range: give {low // 1000}k to {high // 1000}k")
    return int(value)


def split_options(target: str, *, passthrough: bool) -> tuple[str, dict[str, str]]:
    """(target without livefuse's options, those options). With `passthrough` (a push URL), query keys
    that are not livefuse options stay in the URL for the protocol; otherwise (a file) they are an error."""
    base, sep, query = target.partition("?")
    if not sep:
        return target, {}
    ours: dict[str, str] = {}
    theirs: list[tuple[str, str]] = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in OPTION_NAMES:
            ours[key] = value
        elif passthrough:
            theirs.append((key, value))
        else:
            raise OutputError(f"unknown output option {key!r} in {target!r}: expected {OPTIONS_HELP}")
    return (f"{base}?{urlencode(theirs)}" if theirs else base), ours


def parse_options(raw: dict[str, str], *, video_codec: str) -> EncodeOptions:
    """Checked options for an output encoding with `video_codec` (libx264, libvpx or libvpx-vp9 family)."""
    h264 = video_codec == "libx264"
    kwargs: dict[str, object] = {}
    if "codec" in raw:
        wanted = raw["codec"].lower()
        if h264 or wanted not in WEBM_CODECS:
            raise OutputError(
                f"output option codec={raw['codec']!r} is not supported here: .webm takes vp8 or vp9, "
                ".mp4 and .mkv record H.264"
            )
        kwargs["codec"] = wanted
    if "crf" in raw:
        low, high = (0, 51) if h264 else (4, 63)
        try:
            crf = int(raw["crf"])
        except ValueError:
            raise OutputError(
                f"output option crf={raw['crf']!r} is not a whole number: give {low} to {high} "
                "(lower is better quality)"
            ) from None
        if not low <= crf <= high:
            raise OutputError(f"output option crf={crf} is out of range: give {low} to {high} (lower is better)")
        kwargs["crf"] = crf
    if "bitrate" in raw:
        kwargs["bitrate"] = _rate("bitrate", raw["bitrate"], 100_000, 100_000_000)
    if "audio_bitrate" in raw:
        kwargs["audio_bitrate"] = _rate("audio_bitrate", raw["audio_bitrate"], 16_000, 512_000)
    if "keyint" in raw:
        try:
            keyint = float(raw["keyint"])
        except ValueError:
            keyint = float("nan")
        if not 0.1 <= keyint <= 20.0:  # NaN fails this too
            raise OutputError(
                f"output option keyint={raw['keyint']!r} is out of range: give the seconds "
                "between keyframes, 0.1 to 20 (platforms ask for 2)"
            )
        kwargs["keyint_s"] = keyint
    if "preset" in raw:
        if not h264:
            raise OutputError(
                f"output option preset={raw['preset']!r} applies to H.264 outputs (.mp4, .mkv, pushes) only"
            )
        if raw["preset"] not in X264_PRESETS:
            raise OutputError(
                f"output option preset={raw['preset']!r} is not an x264 preset: give one of " + ", ".join(X264_PRESETS)
            )
        kwargs["preset"] = raw["preset"]
    return EncodeOptions(**kwargs)  # type: ignore[arg-type]


def video_codec_options(codec: str, fps: float, options: EncodeOptions, *, push: bool) -> dict[str, str]:
    """FFmpeg codec options: no B-frames and real-time speed; constant quality for recordings unless a
    bitrate is asked, constant bitrate (maxrate = bitrate, bufsize one second) for pushes."""
    gop = str(max(1, round(fps * options.keyint_s)))
    # H.264 outputs force their keyframes by time (EncoderSink): the encoder's own GOP is only a backstop,
    # long enough never to add one just after a forced one
    backstop = str(max(1, round(2 * fps * options.keyint_s)))
    bitrate = options.bitrate or (PUSH_BITRATE if push and options.crf is None else None)
    if codec == "libx264":
        preset = options.preset or ("veryfast" if push else RECORDING_PRESET)
        settings = {
            "preset": preset,
            "tune": "zerolatency",
            "g": backstop,
            "bf": "0",
            "forced-idr": "1",
            "sc_threshold": "0",
        }
        if bitrate is not None and options.crf is None:
            rate = str(bitrate)
            settings.update({"b": rate, "maxrate": rate, "bufsize": rate, "x264-params": "nal-hrd=cbr"})
        else:
            settings["crf"] = str(options.crf if options.crf is not None else RECORDING_CRF)
        return settings
    if codec in ("libvpx", "libvpx-vp9"):
        settings = {"deadline": "realtime", "cpu-used": "8", "lag-in-frames": "0", "g": gop, "row-mt": "1"}
        if options.crf is not None:  # constant quality: VP9 unbounded, VP8 needs a ceiling
            ceiling = bitrate or (0 if codec == "libvpx-vp9" else 8_000_000)
            settings.update({"crf": str(options.crf), "b": str(ceiling)})
        else:
            settings["b"] = str(bitrate or 2_000_000)
        return settings
    return {"g": gop}
