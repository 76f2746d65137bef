"""`livefuse doctor`: what it reports, and its exit code when the default `livefuse run` would not work."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import onnxruntime as ort
import pytest
from conftest import CliRunner

from livefuse import devices, doctor

AREAS = {"onnxruntime", "provider", "gpu", "camera", "virtualcam", "audio", "port", "preset", "models", "folders"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_doctor_json_covers_every_area_and_passes_here(cli: CliRunner) -> None:
    done = cli("doctor", "--json", "--port", str(free_port()))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert {c["area"] for c in report["checks"]} == AREAS
    by_area = {c["area"]: c for c in report["checks"]}
    assert by_area["preset"]["status"] == "ok" and by_area["preset"]["data"]["preset"] == "background-blur"
    assert any(
        c["area"] == "provider" and c["status"] == "ok" and c["data"]["provider"] == "CPUExecutionProvider"
        for c in report["checks"]
    )
    assert by_area["models"]["data"]["models"]["selfie_segmentation@0.10.14"] == "ok"
    assert report["versions"]["av"] and report["versions"]["aiortc"]
    assert not any(c["status"] == "fail" for c in report["checks"])
    assert "provider fallback" not in done.stderr  # folded into the provider lines, not logged as well


@pytest.mark.skipif("CUDAExecutionProvider" not in ort.get_available_providers(), reason="no CUDA in this build")
def test_a_gpu_provider_that_does_not_load_is_a_warning_with_its_fix(cli: CliRunner) -> None:
    report = json.loads(cli("doctor", "--json", "--port", str(free_port())).stdout)
    cuda = next(c for c in report["checks"] if c["data"].get("provider") == "CUDAExecutionProvider")
    if cuda["status"] == "ok":
        pytest.skip("CUDA loads here")
    assert cuda["status"] == "warn" and cuda["message"].startswith("CUDA: ")
    assert "livefuse[cuda]" in cuda["fix"] or "driver" in cuda["fix"] + cuda["message"]


def test_a_busy_port_fails_the_default_run(cli: CliRunner) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = cli("doctor", "--port", str(port))
    assert done.returncode == 1, done.stdout
    assert f"FAIL port        127.0.0.1:{port} is not free" in done.stdout
    assert "fix: stop what uses it, or run with --port N" in done.stdout
    assert "the default `livefuse run` would not work: 1 problem(s)" in done.stdout


def test_a_broken_default_preset_fails_with_its_reason(cli: CliRunner, tmp_path: Path) -> None:
    mine = tmp_path / "config" / "presets"
    mine.mkdir(parents=True)
    (mine / "background-blur.toml").write_text(
        'name = "background-blur"\ndescription = "x"\n[[stages]]\ntype = "background"\nstrength = 7\n'
    )
    env = {**os.environ, "HOME": str(tmp_path / "home"), "LIVEFUSE_CONFIG_DIR": str(tmp_path / "config")}
    env.pop("LIVEFUSE_PRESETS", None)
    done = subprocess.run(
        [sys.executable, "-m", "livefuse", "doctor", "--json", "--port", str(free_port())],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    preset = next(c for c in report["checks"] if c["area"] == "preset")
    assert report["ok"] is False and preset["status"] == "fail"
    assert "background-blur does not build" in preset["message"] and "strength" in preset["message"]


def test_a_webcam_default_without_a_working_camera_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "cameras", list)
    assert doctor.check_cameras("webcam").status == "fail"
    assert doctor.check_cameras("demo").status == "info"
    camera = devices.Device("camera", "/dev/video0", "USB Camera", "v4l2", ["mjpeg 1280x720", "yuyv422 640x480"])
    monkeypatch.setattr(devices, "cameras", lambda: [camera])
    ok = doctor.check_cameras("webcam")
    assert ok.status == "ok" and "/dev/video0 USB Camera (2 modes, e.g. mjpeg 1280x720, yuyv422 640x480)" in ok.message


# What FFmpeg logs for a camera (no camera here: these are its log lines, as the three device inputs print them).


def test_v4l2_formats_become_modes() -> None:
    lines = [
        "Compressed:       mjpeg :          Motion-JPEG : 640x480 1280x720 1920x1080",
        "Raw       :     yuyv422 :           YUYV 4:2:2 : 640x480 1280x720",
        "Cannot open video device /dev/video9: No such file or directory",
    ]
    assert devices.v4l2_modes(lines) == [
        "mjpeg 640x480",
        "mjpeg 1280x720",
        "mjpeg 1920x1080",
        "yuyv422 640x480",
        "yuyv422 1280x720",
    ]


def test_directshow_devices_and_options_are_read() -> None:
    listing = [
        '"Integrated Camera" (video)',
        '  Alternative name "@device_pnp_\\\\?\\usb#vid"',
        '"Microphone (Realtek(R) Audio)" (audio)',
    ]
    assert devices.listed_devices(listing) == {
        "video": ["Integrated Camera"],
        "audio": ["Microphone (Realtek(R) Audio)"],
    }
    options = [
        "  vcodec=mjpeg  min s=1280x720 fps=30 max s=1280x720 fps=30",
        "  vcodec=mjpeg  min s=1280x720 fps=30 max s=1280x720 fps=30",
        "  pixel_format=yuyv422  min s=640x480 fps=30 max s=640x480 fps=30",
    ]
    assert devices.dshow_modes(options) == ["mjpeg 1280x720@30", "yuyv422 640x480@30"]


def test_avfoundation_devices_and_modes_are_read() -> None:
    listing = [
        "AVFoundation video devices:",
        "[0] FaceTime HD Camera",
        "[1] Capture screen 0",
        "AVFoundation audio devices:",
        "[0] MacBook Pro Microphone",
    ]
    assert devices.listed_devices(listing) == {
        "video": ["FaceTime HD Camera", "Capture screen 0"],
        "audio": ["MacBook Pro Microphone"],
    }
    modes = [
        "Selected video size (1x1) is not supported by the device.",
        "Supported modes:",
        "  640x480@[1.000000 30.000000]fps",
        "  1280x720@[1.000000 30.000000]fps",
    ]
    assert devices.avfoundation_modes(modes) == ["640x480@30", "1280x720@30"]


def test_alsa_capture_devices_are_read() -> None:
    pcm = (
        "00-00: ALC897 Analog : ALC897 Analog : playback 1 : capture 1\n"
        "00-01: ALC897 Digital : ALC897 Digital : playback 1\n"
        "01-00: USB Audio : USB Audio : capture 1\n"
    )
    assert [(d.spec, d.name) for d in devices.alsa_captures(pcm)] == [
        ("alsa:hw:0,0", "ALC897 Analog"),
        ("alsa:hw:1,0", "USB Audio"),
    ]


def test_version_names_the_engine_media_and_webrtc_libraries(cli: CliRunner) -> None:
    done = cli("--version")
    assert done.returncode == 0
    text = done.stdout
    assert text.startswith("livefuse 0.")
    assert f"onnxruntime{'-gpu' if 'CUDAExecutionProvider' in ort.get_available_providers() else ''} " in text
    assert "(providers: " in text and "cpu" in text.split("(providers: ")[1]
    assert "PyAV " in text and "aiortc " in text
