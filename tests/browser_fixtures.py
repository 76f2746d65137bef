"""Helpers for the web tests: a live daemon on a thread, tiny test stages, a y4m clip, HTTP, Chromium.

The daemon is the real thing (DemoSource → Pipeline → the preview output, with the web
server's aiohttp app and aiortc peers) on its own event loop, so tests can drive it from plain
code, from Playwright, or from their own asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from livefuse.audio.inputs import AudioInput
from livefuse.daemon import Served
from livefuse.frame import Frame
from livefuse.pipeline import Pipeline
from livefuse.presets import load_preset
from livefuse.runtime import Runtime
from livefuse.sources.demo import DemoSource, _person_mask, astronaut_bgr
from livefuse.stage import Param, Stage, StageContext, StageSpec, TakesSourceFace
from livefuse.stages.registry import STAGES, register
from livefuse.web.auth import is_loopback
from livefuse.web.control import WebControl
from livefuse.web.server import WebOptions, WebServer
from livefuse.wiring import assemble

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
TAG_BOX = 48  # the tag stage paints this many pixels square in the top-left corner


# -- test stages ----------------------------------------------------------------------------------


class TagStage(TakesSourceFace):
    """Marks each frame with its `value` (in frame.meta and as a grey square) and takes source faces."""

    name = "test_tag"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.value = int(params["value"])
        self.source_faces: list[tuple[int, ...]] = []

    def process(self, frame: Frame) -> None:
        frame.meta["tag"] = self.value
        frame.image[:TAG_BOX, :TAG_BOX] = self.value

    def update(self, params: dict[str, Any]) -> None:
        self.value = int(params.get("value", self.value))

    def set_source_face(self, image: np.ndarray) -> None:
        self.source_faces.append(image.shape)

    def close(self) -> None:
        pass


def demo_person_alpha(size: tuple[int, int], t: float = 0.0, motion: float = 0.0) -> np.ndarray:
    """Where DemoSource draws the person at time t, 0..1 (the ground truth a segmenter should find)."""
    source = DemoSource(size, 15, paced=False, motion=motion)
    mask = cv2.warpAffine(_person_mask(astronaut_bgr()), source.transform(t), size, flags=cv2.INTER_LINEAR)
    return mask.astype(np.float32) / 255.0


class ListsStage(Stage):
    """Keeps the list parameters it is given (the page's list controls are checked against it)."""

    name = "test_lists"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.params = dict(params)

    def process(self, frame: Frame) -> None:
        pass

    def update(self, params: dict[str, Any]) -> None:
        self.params.update(params)

    def close(self) -> None:
        pass


class BackdropStage(Stage):
    """Stand-in for background replacement when the real preset is not there: flat grey outside the person.

    It knows where the person is because the test's clip is DemoSource with no motion.
    """

    name = "test_backdrop"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.alpha = demo_person_alpha(context.size)[..., None]
        self.grey = float(params["grey"])

    def process(self, frame: Frame) -> None:
        frame.image[:] = (frame.image * self.alpha + self.grey * (1 - self.alpha)).astype(np.uint8)

    def update(self, params: dict[str, Any]) -> None:
        self.grey = float(params.get("grey", self.grey))

    def close(self) -> None:
        pass


def register_test_stages() -> None:
    if "test_tag" not in STAGES:
        register(
            StageSpec(
                "test_tag",
                "marks frames (tests)",
                (Param("value", int, 0, min=0, max=255), Param("fixed", int, 0, live=False)),
                TagStage,
            )
        )
    if "test_lists" not in STAGES:  # list parameters as swap's keep_regions and mask_padding are
        register(
            StageSpec(
                "test_lists",
                "list parameters (tests)",
                (
                    Param("keep", list, [], items=("eyes", "brows", "mouth", "nose")),
                    Param("padding", list, [0, 0, 0, 0], min=0.0, max=50.0, length=4),
                ),
                ListsStage,
            )
        )
    if "test_backdrop" not in STAGES:
        register(
            StageSpec(
                "test_backdrop", "flat background (tests)", (Param("grey", int, 128, min=0, max=255),), BackdropStage
            )
        )


def write_test_presets(folder: Path) -> Path:
    """tag-a, tag-b (tag values 40 and 220) and backdrop, in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, value in (("tag-a", 40), ("tag-b", 220)):
        (folder / f"{name}.toml").write_text(f'name = "{name}"\n[[stages]]\ntype = "test_tag"\nvalue = {value}\n')
    (folder / "lists.toml").write_text('name = "lists"\n[[stages]]\ntype = "test_lists"\n')
    (folder / "backdrop.toml").write_text('name = "backdrop"\n[[stages]]\ntype = "test_backdrop"\ngrey = 128\n')
    return folder


@pytest.fixture(name="web_presets")
def web_presets_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    register_test_stages()
    folder = write_test_presets(tmp_path / "presets")
    monkeypatch.setenv("LIVEFUSE_PRESETS", str(folder))
    return folder


# -- the daemon ------------------------------------------------------------------------------------


class LiveDaemon:
    """`livefuse run --source demo --output preview` in-process, on a thread with its own loop."""

    def __init__(
        self,
        preset: str,
        *,
        size: tuple[int, int] = (320, 240),
        fps: float = 15.0,
        host: str = "127.0.0.1",
        token: str | None = None,
        max_peers: int = 16,
        motion: float = 1.0,
        sleep_after: float | None = None,
        no_auth: bool | None = None,
        audio: AudioInput | None = None,
        **web: Any,
    ) -> None:
        """`no_auth`: as `livefuse run --no-auth` (default: on loopback without a token, so that a test's plain
        requests need none; the token tests pass `no_auth=False` or a token)."""
        self.preset_name = preset
        self.sleep_after = sleep_after
        self.audio = audio  # the daemon's sound (--audio), none by default
        self.source: DemoSource | None = None
        self.size = size
        self.fps = fps
        self.host = host
        self.token = token
        self.no_auth = token is None and is_loopback(host) if no_auth is None else no_auth
        self.web = web  # more of the server's options (WebOptions): cors_origins, ice_servers, allow_push
        self.max_peers = max_peers
        self.motion = motion
        self.emitted: list[tuple[int, int, Any]] = []  # (seq, capture_ns, frame.meta["tag"]) per emitted frame
        self.loop: asyncio.AbstractEventLoop | None = None
        self.control: WebControl | None = None
        self.server: WebServer | None = None
        self.pipeline: Pipeline | None = None
        self.runtime: Runtime | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="test-daemon", daemon=True)

    def start(self) -> LiveDaemon:
        self._thread.start()
        if not self._ready.wait(60):
            raise TimeoutError("daemon did not start")
        if self._error is not None:
            raise self._error
        return self

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread
            self._error = exc
            self._ready.set()

    async def _run(self) -> None:
        from livefuse.engine import Engine

        self.loop = asyncio.get_running_loop()
        preset = load_preset(self.preset_name)
        engine = Engine(provider="cpu")
        assembly = assemble(preset, engine, self.size, self.fps)  # as livefuse/daemon.py wires it
        options = WebOptions(host=self.host, port=0, token=self.token, max_peers=self.max_peers, **self.web)
        control = self.control = WebControl(options, no_auth=self.no_auth)
        self.token = control.token
        source = self.source = DemoSource(self.size, self.fps, motion=self.motion)
        sound = self.audio.format if self.audio is not None else None
        runtime = self.runtime = Runtime.wire(
            assembly,
            source,
            [control.preview_sink(sound)],
            sleep_after=self.sleep_after,
            audio=self.audio,
            settings={"source": "demo", "size": list(self.size), "fps": self.fps},
        )
        self.pipeline = runtime.pipeline
        self.pipeline.frame_listeners.append(lambda f: self.emitted.append((f.seq, f.capture_ns, f.meta.get("tag"))))
        try:
            async with control.serving(Served(engine, self.size, self.fps, lambda: runtime.preset, runtime)) as server:
                self.server = server
                # admission by CPU is off: this process is the daemon and the test's own peers together
                server.sessions.max_cpu_share = math.inf
                self._ready.set()
                await self.pipeline.run()
        finally:
            self.pipeline.chain.close()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30.0) -> Any:
        """Run a coroutine on the daemon's loop and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        if self.pipeline is not None and self._thread.is_alive():
            with contextlib.suppress(RuntimeError):  # its loop finished meanwhile
                self.pipeline.stop()
        self._thread.join(20)
        assert not self._thread.is_alive(), "daemon did not stop"


@pytest.fixture(name="daemons")
def daemons_fixture() -> Iterator[type[LiveDaemon]]:
    """Start daemons with `daemons(preset, ...).start()`; all are stopped at the end."""
    started: list[LiveDaemon] = []

    class Tracked(LiveDaemon):
        def start(self) -> LiveDaemon:
            started.append(self)
            return super().start()

    yield Tracked
    for daemon in started:
        daemon.stop()


def processed_locally(preset_name: str, image: np.ndarray, fps: float = 15.0, frames: int = 8) -> np.ndarray:
    """What a preset makes of a still frame, run here a few times so smoothing settles (the expected output)."""
    from livefuse.engine import Engine

    preset = load_preset(preset_name)
    size = (image.shape[1], image.shape[0])
    chain = assemble(preset, Engine(provider="cpu"), size, fps).chain
    try:
        for ticket in range(frames):
            frame = Frame(seq=ticket, capture_ns=time.monotonic_ns(), image=image.copy())
            chain.run(frame, chain.admit())
        return frame.image
    finally:
        chain.close()


# -- HTTP ------------------------------------------------------------------------------------------


def http(
    method: str,
    url: str,
    body: Any = None,
    *,
    headers: dict[str, str] | None = None,
    data: bytes | None = None,
    timeout: float = 30.0,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) for a request; `body` is sent as JSON, `data` as is."""
    headers = dict(headers or {})
    if body is not None:
        data = json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def http_json(method: str, url: str, body: Any = None, **kwargs: Any) -> tuple[int, Any]:
    status, _, raw = http(method, url, body, **kwargs)
    return status, json.loads(raw) if raw else None


# -- the browser's camera --------------------------------------------------------------------------


def write_y4m(path: Path, frames: list[np.ndarray], fps: int) -> Path:
    """A YUV4MPEG2 (4:2:0) clip, the format Chromium's fake camera plays (looping)."""
    height, width = frames[0].shape[:2]
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{width} H{height} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for bgr in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes())
    return path


def demo_clip(
    path: Path, size: tuple[int, int] = (320, 240), fps: int = 15, seconds: float = 2.0, motion: float = 0.0
) -> Path:
    """DemoSource's real face as a clip; with motion 0 every frame is the same, so output can be checked."""
    source = DemoSource(size, fps, paced=False, motion=motion)
    return write_y4m(path, [source.read() for _ in range(int(seconds * fps))], fps)


def launch_chromium(playwright: Any, clip: Path) -> Any:
    """Debian's chromium with a fake camera playing `clip`; skips where it is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: run `make browser` (apt-get install chromium)")
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=[*CHROMIUM_ARGS, f"--use-file-for-fake-video-capture={clip}"]
    )


def decode_data_url(url: str) -> np.ndarray:
    """A `data:image/png;base64,...` URL (from the page's grab()) as a BGR image."""
    import base64

    raw = base64.b64decode(url.split(",", 1)[1])
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "the page returned no image"
    return image
