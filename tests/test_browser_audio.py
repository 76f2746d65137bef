"""Sound over WebRTC with real Chromium: a fake camera and a fake microphone in camera mode, and the
returned stream carries the microphone's sound (played muted by the page, so no one hears an echo)."""

from __future__ import annotations

import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from browser_fixtures import CHROMIUM, CHROMIUM_ARGS, daemons_fixture, demo_clip, http_json, web_presets_fixture

__all__ = ["daemons_fixture", "web_presets_fixture"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SIZE, FPS = (320, 240), 15


def write_wav(path: Path, seconds: float = 2.0, rate: int = 48000) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(tone.tobytes())
    return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: run `make browser` (apt-get install chromium)")
    folder = tmp_path_factory.mktemp("media")
    clip = demo_clip(folder / "face.y4m", SIZE, FPS, seconds=2.0)
    wav = write_wav(folder / "mic.wav")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                *CHROMIUM_ARGS,
                f"--use-file-for-fake-video-capture={clip}",
                f"--use-file-for-fake-audio-capture={wav}",
            ],
        )
        yield chromium
        chromium.close()


def test_camera_mode_returns_the_microphone_muted(web_presets: Path, daemons: Any, browser: Any) -> None:
    daemon = daemons("passthrough", size=SIZE, fps=FPS).start()
    page = browser.new_page()
    try:
        page.goto(daemon.url + "/?mode=camera")
        page.wait_for_function("window.livefuse.frames > 10", timeout=40_000)
        first = page.evaluate("window.livefuse.audioPackets()")
        time.sleep(2.0)
        later = page.evaluate("window.livefuse.audioPackets()")
        has_audio = page.evaluate("window.livefuse.audio")
        muted = page.evaluate("document.getElementById('video').muted")
        shown = page.evaluate("document.getElementById('stat-sound').textContent")
        tracks = page.evaluate("document.getElementById('video').srcObject.getTracks().map(t => t.kind).sort()")
        peers = http_json("GET", daemon.url + "/api/status")[1]["peers"]
    finally:
        page.close()
    print(f"browser: returned tracks {tracks}, sound packets {first} then {later} two seconds on")
    assert [p["mode"] for p in peers] == ["camera"]
    assert tracks == ["audio", "video"] and has_audio and shown == "yes (muted)"
    assert muted, "the returned sound must start muted (it is the user's own microphone)"
    assert later - first >= 50, "Opus packets of the microphone's sound should keep arriving (50 a second)"
