"""A third-party WHIP/WHEP client (npm `whip-whep`, vendored in tests/vendor) in real Chromium, on a page of
another origin: it publishes the fake camera, plays the filtered stream back over WHEP and unpublishes.
`--cors-origin` allows that page's origin; from an origin not allowed, the publish is refused (issue 29)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from browser_fixtures import (
    TAG_BOX,
    LiveDaemon,
    daemons_fixture,
    demo_clip,
    http_json,
    launch_chromium,
    web_presets_fixture,
)

__all__ = ["daemons_fixture", "web_presets_fixture"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]

VENDOR = Path(__file__).resolve().parent / "vendor" / "whip-whep"
PAGE = """<!doctype html><meta charset="utf-8"><title>third-party WHIP/WHEP</title>
<video id="out" autoplay muted playsinline></video><canvas id="grab"></canvas>
<script type="module">
import { WHIPClient } from "./whip.js";
import { WHEPClient } from "./whep.js";
// The client follows the answer's server-sent-events Link by itself and opens an EventSource; the page
// hears the draft's events on it from its first moment.
window.heard = [];
const NativeEventSource = window.EventSource;
window.EventSource = class extends NativeEventSource {
  constructor(url, options) {
    super(url, options);
    for (const name of ["active", "inactive"])
      this.addEventListener(name, () => window.heard.push([name, performance.now()]));
  }
};
window.run = async (daemon, token) => {
  const result = {};
  try {
    const camera = await navigator.mediaDevices.getUserMedia({ video: true });
    const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    for (const track of camera.getTracks()) pc.addTransceiver(track, { direction: "sendonly" });
    const whip = window.whip = new WHIPClient();
    await whip.publish(pc, daemon + "/whip?preset=tag-b", token);
    result.resource = whip.resourceURL.pathname;
    const viewer = window.viewer = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
    viewer.addTransceiver("video", { direction: "recvonly" });
    const video = document.getElementById("out");
    viewer.ontrack = (event) => { video.srcObject = event.streams[0] || new MediaStream([event.track]); };
    const whep = window.whep = new WHEPClient();
    await whep.view(viewer, daemon + "/whep/" + result.resource.split("/").pop(), token);
    result.viewing = whep.resourceURL.pathname;

  } catch (error) {
    result.error = String(error);
  }
  return result;
};
window.corner = () => {  // the mean of the tag square's middle in the WHEP video, or null before a frame
  const video = document.getElementById("out");
  if (!video.videoWidth) return null;
  const canvas = document.getElementById("grab");
  canvas.width = video.videoWidth; canvas.height = video.videoHeight;
  const context = canvas.getContext("2d");
  context.drawImage(video, 0, 0);
  const data = context.getImageData(8, 8, 24, 24).data;
  let sum = 0;
  for (let i = 0; i < data.length; i += 4) sum += (data[i] + data[i + 1] + data[i + 2]) / 3;
  return sum / (data.length / 4);
};
</script>"""


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without a log line per request."""

    def log_message(self, format: str, *args: Any) -> None:
        pass


class PageServer:
    """The page and the vendored client on 127.0.0.1:<port>: an origin other than the daemon's."""

    def __init__(self, folder: Path) -> None:
        handler = partial(QuietHandler, directory=str(folder))
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def pages(tmp_path: Path) -> Iterator[tuple[PageServer, PageServer]]:
    folder = tmp_path / "site"
    folder.mkdir()
    for name in ("whip.js", "whep.js"):
        (folder / name).write_bytes((VENDOR / name).read_bytes())
    (folder / "index.html").write_text(PAGE)
    allowed, other = PageServer(folder), PageServer(folder)
    yield allowed, other
    allowed.close()
    other.close()


def test_a_third_party_whip_whep_client_publishes_and_plays_from_an_allowed_origin(
    web_presets: Path, daemons: type[LiveDaemon], pages: tuple[PageServer, PageServer], tmp_path: Path
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    allowed, other = pages
    token = "browser-token-0123456789"
    daemon = daemons("tag-a", size=(320, 240), fps=15.0, token=token, cors_origins=(allowed.origin,)).start()
    clip = demo_clip(tmp_path / "face.y4m", (320, 240), 15, seconds=2.0)
    auth = {"Authorization": f"Bearer {token}"}
    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright, clip)
        try:
            page = chromium.new_page()
            page.goto(allowed.origin + "/index.html")
            result = page.evaluate("([daemon, token]) => window.run(daemon, token)", [daemon.url, token])
            assert "error" not in result, result
            session = result["resource"].rsplit("/", 1)[1]
            listed = http_json("GET", daemon.url + "/api/sessions", headers=auth)[1]["sessions"]
            assert [s["id"] for s in listed] == [session] and listed[0]["preset"] == "tag-b"
            deadline, corner = time.monotonic() + 30, None
            while time.monotonic() < deadline:  # the WHEP player shows the session's filtered frames
                corner = page.evaluate("window.corner()")
                if corner is not None and abs(corner - 220) < 12:
                    break
                time.sleep(0.2)
            assert corner is not None and abs(corner - 220) < 12, corner
            # the client opens its event stream on its own time, after the answer: wait for its first event
            page.wait_for_function("window.heard.length > 0", timeout=10_000, polling=100)
            assert page.evaluate("window.heard.map((e) => e[0])") == ["active"]
            unpublished = page.evaluate("performance.now()")
            page.evaluate("window.whip.stop()")  # unpublish: the client's DELETE ends the session
            deadline = time.monotonic() + 15
            while (
                http_json("GET", daemon.url + "/api/sessions", headers=auth)[1]["sessions"]
                and time.monotonic() < deadline
            ):
                time.sleep(0.2)
            assert http_json("GET", daemon.url + "/api/sessions", headers=auth)[1]["sessions"] == []
            # the WHEP player is told at once, by the event stream its client opened (ICE consent takes ~8 s)
            page.wait_for_function("window.heard.some((e) => e[0] === 'inactive')", timeout=5_000, polling=100)
            told = page.evaluate("window.heard.find((e) => e[0] === 'inactive')[1]") - unpublished
            print(f"\nthe third-party WHEP player heard 'inactive' {told:.0f} ms after the unpublish")
            assert told < 2_000, told
            # the same page from an origin --cors-origin does not name: the browser is refused
            refused = chromium.new_page()
            refused.goto(other.origin + "/index.html")
            result = refused.evaluate("([daemon, token]) => window.run(daemon, token)", [daemon.url, token])
            assert "error" in result and "resource" not in result, result
            assert http_json("GET", daemon.url + "/api/sessions", headers=auth)[1]["sessions"] == []
        finally:
            chromium.close()
    assert TAG_BOX > 32  # the square read above lies inside the tag
