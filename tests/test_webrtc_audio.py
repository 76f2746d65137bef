"""The preview's sound over WebRTC with a real aiortc viewer: a file's audio arrives as Opus, whole."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiohttp
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError
from av_sync import make_clip

from livefuse.audio.inputs import open_audio
from livefuse.chain import Chain
from livefuse.daemon import Served
from livefuse.engine import Engine
from livefuse.pipeline import Pipeline
from livefuse.presets import load_preset
from livefuse.runtime import Runtime
from livefuse.sources.av_source import open_file
from livefuse.stage import StageContext
from livefuse.web.control import WebControl
from livefuse.web.server import WebOptions

SIZE = (320, 180)


async def view(url: str, seconds: float) -> tuple[int, int, np.ndarray]:
    """(video frames, audio frames, the sound as mono samples) a viewer receives in `seconds`."""
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    counts = {"video": 0, "audio": 0}
    sound: list[np.ndarray] = []
    rates: set[tuple[int, str, str]] = set()

    async def receive(track) -> None:  # type: ignore[no-untyped-def]
        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                counts[track.kind] += 1
                if track.kind == "audio":
                    rates.add((frame.sample_rate, frame.format.name, frame.layout.name))
                    sound.append(frame.to_ndarray().reshape(-1, frame.layout.nb_channels)[:, 0] / 32768.0)

    tasks: list[asyncio.Task[None]] = []
    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(receive(track))))
    await pc.setLocalDescription(await pc.createOffer())
    async with aiohttp.ClientSession() as session:
        offer = {"sdp": pc.localDescription.sdp, "type": "offer", "mode": "preview"}
        async with session.post(url + "/api/offer", json=offer) as response:
            answer = await response.json()
    await pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], answer["type"]))
    await asyncio.sleep(seconds)
    await pc.close()
    for task in tasks:
        task.cancel()
    assert rates <= {(48000, "s16", "stereo")}, rates  # Opus (G.711 would decode to 8 kHz mono)
    return counts["video"], counts["audio"], np.concatenate(sound) if sound else np.zeros(0)


@pytest.mark.slow
def test_preview_sends_the_sources_sound(tmp_path: Path) -> None:
    clip = tmp_path / "clip.mp4"
    make_clip(clip, seconds=6.0, size=SIZE)

    async def main() -> tuple[int, int, np.ndarray]:
        source = open_file(clip, SIZE, 30.0, loop=False)
        audio = open_audio("auto", source, source.description)
        assert audio is not None
        control = WebControl(WebOptions(host="127.0.0.1", port=0), no_auth=True)
        pipeline = Pipeline(
            source, Chain("none", []), [control.preview_sink(audio.format)], fps=30.0, audio=audio, duration=6.0
        )
        engine = Engine(provider="cpu")
        preset = load_preset("passthrough")
        context = StageContext(engine=engine, size=SIZE, fps=30.0, preset_dir=preset.path.parent)
        runtime = Runtime(pipeline, preset, context, engine)
        async with control.serving(Served(engine, SIZE, 30.0, lambda: preset, runtime)) as server:
            run = asyncio.create_task(pipeline.run())
            await asyncio.sleep(0.5)
            result = await view(f"http://127.0.0.1:{server.port}", 4.0)
            pipeline.stop()
            await run
        return result

    video, audio_frames, sound = asyncio.run(asyncio.wait_for(main(), 60))
    loud = np.flatnonzero(np.abs(sound) > 0.3)
    clicks = 1 + int(np.count_nonzero(np.diff(loud) > 48000 // 2)) if loud.size else 0
    print(
        f"preview: {video} video frames, {audio_frames} audio frames ({sound.size / 48000:.2f} s), "
        f"{clicks} clicks heard"
    )
    assert video > 30
    assert audio_frames > 100  # 20 ms Opus frames: about 50 a second
    assert clicks >= 3  # the clip's once-a-second click came through, every second
    gaps = np.diff(loud)[np.diff(loud) > 48000 // 2] / 48000
    assert all(abs(gap - 1.0) <= 0.01 for gap in gaps), f"clicks {gaps} s apart: sound lost or added"
