"""The cameras and microphones this machine has, with the modes a camera offers, asked of FFmpeg through PyAV.

FFmpeg's device inputs list what they see in their log (v4l2 `list_formats`, AVFoundation and DirectShow
`list_devices`, DirectShow `list_options`, AVFoundation's "Supported modes" on a refused size); that log is
captured and read here. ALSA capture devices come from /proc/asound/pcm, PulseAudio's from `pactl` (bounded).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import av
import av.logging


@dataclass
class Device:
    kind: str  # camera or audio
    spec: str  # what --source / --audio takes: /dev/video0, webcam:0, alsa:hw:0,0, pulse:NAME, ...
    name: str
    backend: str  # v4l2, avfoundation, dshow, alsa, pulse
    modes: list[str] = field(default_factory=list)  # "mjpeg 1280x720", "yuyv422 640x480@30", ...


def ffmpeg_log(fmt: str, url: str, options: dict[str, str]) -> list[str]:
    """What FFmpeg's `fmt` input logs while opening `url` with `options` (the open itself may fail)."""
    previous = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        with av.logging.Capture() as logs:
            try:
                av.open(url, format=fmt, options=options, timeout=5.0).close()
            except (av.FFmpegError, OSError, ValueError):
                pass  # listing options make the open fail on purpose
    finally:
        av.logging.set_level(previous)
    return [line for _, _, message in logs for line in str(message).splitlines()]


# v4l2: "Compressed:       mjpeg :          Motion-JPEG : 640x480 1280x720"
_V4L2_FORMAT = re.compile(r"^(?:Raw|Compressed)\s*:\s*(\S+)\s*:.*?:\s*(.+)$")
# dshow list_options: "vcodec=mjpeg  min s=1280x720 fps=5 max s=1280x720 fps=30"
_DSHOW_MODE = re.compile(r"(?:vcodec|pixel_format)=(\S+)\s+min s=\S+ fps=\S+ max s=(\d+x\d+) fps=([\d.]+)")
# avfoundation: "  1280x720@[1.000000 30.000000]fps"
_AVF_MODE = re.compile(r"^\s*(\d+x\d+)@\[[\d.]+ ([\d.]+)\]fps")
_INDEXED = re.compile(r"\[(\d+)\] (.+)$")
_DSHOW_DEVICE = re.compile(r'"(.+)" \((video|audio)\)')


def v4l2_modes(lines: list[str]) -> list[str]:
    modes = []
    for line in lines:
        match = _V4L2_FORMAT.match(line.strip())
        if match:
            modes += [f"{match[1]} {size}" for size in match[2].split() if re.fullmatch(r"\d+x\d+", size)]
    return modes


def dshow_modes(lines: list[str]) -> list[str]:
    seen: list[str] = []
    for line in lines:
        for codec, size, fps in _DSHOW_MODE.findall(line):
            mode = f"{codec} {size}@{float(fps):g}"
            if mode not in seen:
                seen.append(mode)
    return seen


def avfoundation_modes(lines: list[str]) -> list[str]:
    return [f"{m[1]}@{float(m[2]):g}" for line in lines if (m := _AVF_MODE.match(line))]


def listed_devices(lines: list[str]) -> dict[str, list[str]]:
    """AVFoundation's or DirectShow's `list_devices` log -> {"video": [names], "audio": [names]}."""
    found: dict[str, list[str]] = {"video": [], "audio": []}
    section = ""
    for line in lines:
        if "video devices" in line.lower():
            section = "video"
        elif "audio devices" in line.lower():
            section = "audio"
        elif match := _DSHOW_DEVICE.search(line):
            found[match[2]].append(match[1])
        elif section and (match := _INDEXED.search(line)):
            found[section].append(match[2].strip())
    return found


def _linux_cameras() -> list[Device]:
    cameras = []
    for node in sorted(Path("/dev").glob("video*"), key=lambda p: (len(p.name), p.name)):
        sys_name = Path("/sys/class/video4linux") / node.name / "name"
        try:
            name = sys_name.read_text(encoding="utf-8", errors="replace").strip()[:120]
        except OSError:
            name = node.name
        modes = v4l2_modes(ffmpeg_log("v4l2", str(node), {"list_formats": "all"}))
        if modes:  # a node that lists no format is a camera's metadata node or an idle loopback
            cameras.append(Device("camera", str(node), name, "v4l2", modes))
    return cameras


def cameras() -> list[Device]:
    """The cameras found, each with the modes it offers."""
    if sys.platform.startswith("linux"):
        return _linux_cameras()
    if sys.platform == "darwin":
        names = listed_devices(ffmpeg_log("avfoundation", "", {"list_devices": "true"}))["video"]
        return [
            Device(
                "camera",
                f"webcam:{i}",
                name,
                "avfoundation",
                avfoundation_modes(ffmpeg_log("avfoundation", str(i), {"video_size": "1x1"})),
            )
            for i, name in enumerate(names)
            if not name.lower().startswith("capture screen")
        ]
    if sys.platform == "win32":
        names = listed_devices(ffmpeg_log("dshow", "dummy", {"list_devices": "true"}))["video"]
        return [
            Device(
                "camera",
                f"webcam:video={name}",
                name,
                "dshow",
                dshow_modes(ffmpeg_log("dshow", f"video={name}", {"list_options": "true"})),
            )
            for name in names
        ]
    return []


def alsa_captures(pcm: str) -> list[Device]:
    """/proc/asound/pcm's capture devices ("00-00: ALC897 Analog : ALC897 Analog : playback 1 : capture 1")."""
    found = []
    for line in pcm.splitlines():
        parts = [p.strip() for p in line.split(":")]
        if len(parts) >= 3 and any(p.startswith("capture") for p in parts[3:]):
            card, _, device = parts[0].partition("-")
            if card.isdigit() and device.isdigit():
                found.append(Device("audio", f"alsa:hw:{int(card)},{int(device)}", parts[1], "alsa"))
    return found


def pulse_sources(timeout: float = 3.0) -> list[Device]:
    pactl = shutil.which("pactl")
    if pactl is None:
        return []
    try:
        done = subprocess.run([pactl, "list", "short", "sources"], capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return []
    names = [line.split("\t")[1] for line in done.stdout.splitlines() if line.count("\t") >= 1]
    return [Device("audio", f"pulse:{n}", n, "pulse") for n in names if not n.endswith(".monitor")]


def audio_devices() -> list[Device]:
    """The microphones and other capture devices found (what --audio takes)."""
    if sys.platform.startswith("linux"):
        try:
            pcm = Path("/proc/asound/pcm").read_text(encoding="utf-8", errors="replace")[:65536]
        except OSError:
            pcm = ""
        return pulse_sources() + alsa_captures(pcm)
    if sys.platform == "darwin":
        names = listed_devices(ffmpeg_log("avfoundation", "", {"list_devices": "true"}))["audio"]
        return [Device("audio", f"avfoundation::{i}", n, "avfoundation") for i, n in enumerate(names)]
    if sys.platform == "win32":
        names = listed_devices(ffmpeg_log("dshow", "dummy", {"list_devices": "true"}))["audio"]
        return [Device("audio", f"dshow:audio={n}", n, "dshow") for n in names]
    return []
