"""WHIP/WHEP sessions against a live daemon, with real aiortc peers: a stream in, its filtered stream back.

Each session runs a preset of its own; WHEP viewers watch a session or the daemon's stream; DELETE
ends a session and leaves nothing behind; past its latency budget the daemon refuses new sessions.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import threading
import time
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import aiohttp
import av
import numpy as np
import onnxruntime as ort
import psutil
import pytest
from aiortc import RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from browser_fixtures import TAG_BOX, LiveDaemon, daemons_fixture, processed_locally, web_presets_fixture
from conftest import CliRunner
from privacy_check import HAS_JUDGES, independent_faces
from prometheus_client.parser import text_string_to_metric_families

from livefuse.web.whip_client import StillCamera, WhipClient, astronaut_frame

__all__ = ["daemons_fixture", "web_presets_fixture"]  # the `daemons` and `web_presets` fixtures

pytestmark = pytest.mark.slow

SIZE, FPS = (320, 240), 15


def square(image: np.ndarray) -> float:
    """The mean of the tag stage's square (its value: which preset made the frame)."""
    return float(image[6 : TAG_BOX - 6, 6 : TAG_BOX - 6].mean())


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        return await response.json()


def leftovers() -> tuple[Counter[str], int, int]:
    """Python threads by name (the loops' default executors aside: pools that keep idle threads), other
    (native: onnxruntime, codecs) threads, and open file descriptors, of this process (daemon and clients)."""
    python = [t for t in threading.enumerate() if not t.name.startswith("asyncio")]
    native = len(os.listdir("/proc/self/task")) - len(threading.enumerate())
    return Counter(t.name for t in python), native, len(os.listdir("/proc/self/fd"))


def no_more_than(now: tuple[Counter[str], int, int], before: tuple[Counter[str], int, int]) -> bool:
    return not (now[0] - before[0]) and now[1] <= before[1] and now[2] <= before[2]


async def round_trip(http: aiohttp.ClientSession, daemon: LiveDaemon) -> dict[str, Any]:
    """A session on tag-b (the daemon runs tag-a), a WHEP viewer of it and one of the daemon; then DELETE."""
    client = WhipClient(daemon.url, StillCamera(astronaut_frame(SIZE), FPS))
    assert await client.publish(http, "/whip?preset=tag-b") == 201, client.error
    viewer, main_viewer = WhipClient(daemon.url), WhipClient(daemon.url)
    assert await viewer.publish(http, f"/whep/{client.id}") == 201, viewer.error
    assert await main_viewer.publish(http, "/whep/main") == 201, main_viewer.error
    got = await asyncio.gather(client.wait_frames(20), viewer.wait_frames(10), main_viewer.wait_frames(10))
    await asyncio.sleep(0.5)
    listed = await get_json(http, daemon.url + "/api/sessions")
    result = {
        "got": got,
        "client": client.last,
        "viewer": viewer.last,
        "main": main_viewer.last,
        "location": client.location,
        "viewer_location": viewer.location,
        "accept_patch": client.accept_patch,
        "listed": listed,
        "deleted": await client.delete(http),
        "deleted_again": await client.delete(http),
    }
    await asyncio.sleep(0.3)
    result["viewer_after"] = await viewer.delete(http)  # ended with its session
    result["main_viewer_deleted"] = await main_viewer.delete(http)
    await asyncio.gather(client.close(), viewer.close(), main_viewer.close())
    return result


def test_a_whep_viewer_hears_at_once_that_its_stream_ended(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    """The WHEP draft's server-sent events: the viewer's answer links its event stream; POSTing the events
    wanted gives its location; the stream says `active`, then `inactive` and ends the moment the session
    is deleted (a third-party player would otherwise wait ~8 s for ICE consent). The token guards the
    POST; the stream's secret path stands in for it (an EventSource sends no header); bad bodies get 400."""
    token = "whep-events-token-0123456789"
    daemon = daemons("tag-a", size=SIZE, fps=FPS, token=token).start()
    auth = {"Authorization": f"Bearer {token}"}

    async def scenario() -> dict[str, Any]:
        async with aiohttp.ClientSession() as http:
            client = WhipClient(daemon.url, StillCamera(astronaut_frame(SIZE), FPS), token=token)
            assert await client.publish(http, "/whip") == 201, client.error
            viewer = WhipClient(daemon.url, token=token)
            assert await viewer.publish(http, f"/whep/{client.id}") == 201, viewer.error
            [link] = [x for x in viewer.links if "server-sent-events" in x]
            events_url = daemon.url + link[1 : link.index(">")]
            out: dict[str, Any] = {"link": link}
            async with http.post(events_url, json=["active", "inactive", "layers"]) as response:
                out["without_token"] = response.status
            for body in (b"{", b'{"a": 1}', b"[1]", b"[" + b'"x",' * 400 + b'"x"]'):
                async with http.post(events_url, data=body, headers=auth) as response:
                    out.setdefault("bad", []).append(response.status)
            async with http.post(events_url, json=["active", "inactive", "layers"], headers=auth) as response:
                out["subscribed"] = response.status
                stream_url = daemon.url + response.headers["Location"]
            out["wrong_secret"] = []
            for wrong in (stream_url + "x", stream_url + "%C3%A9", stream_url + "%ED%A0%80"):
                async with http.get(wrong) as response:
                    out["wrong_secret"].append(response.status)
            async with http.get(stream_url) as response:  # no token: the secret path is the capability
                out["type"] = response.headers["Content-Type"]
                out["first"] = (await response.content.readuntil(b"\n\n")).decode()
                ending = time.monotonic()
                assert await client.delete(http) == 200
                out["rest"] = (await asyncio.wait_for(response.content.read(), 5)).decode()
                out["told_after_s"] = time.monotonic() - ending
            async with http.get(stream_url) as response:
                out["reopened"] = response.status
            await asyncio.gather(client.close(), viewer.close())
        return out

    out = asyncio.run(scenario())
    print(f"the WHEP viewer's event stream said inactive {1000 * out['told_after_s']:.0f} ms after the DELETE")
    assert 'rel="urn:ietf:params:whep:ext:core:server-sent-events"' in out["link"]
    assert 'events="active,inactive"' in out["link"]
    assert out["without_token"] == 401 and out["bad"] == [400, 400, 400, 413] and out["subscribed"] == 201
    assert out["wrong_secret"] == [404, 404, 404] and out["reopened"] == 404
    assert out["type"].startswith("text/event-stream")
    assert out["first"] == "event: active\ndata: {}\n\n"
    assert out["rest"] == "event: inactive\ndata: {}\n\n" and out["told_after_s"] < 1.0
    assert daemon.server is not None and daemon.server.whep_events.streams == {}


def test_whip_session_round_trip_whep_viewers_and_delete_leaves_nothing(
    web_presets: Path, daemons: type[LiveDaemon]
) -> None:
    daemon = daemons("tag-a", size=SIZE, fps=5.0).start()

    async def scenario() -> tuple[dict[str, Any], dict[str, Any], Any, Any]:
        async with aiohttp.ClientSession() as http:
            await round_trip(http, daemon)  # the first starts what stays (the loops' executors, codec libraries)
            await asyncio.sleep(1.5)
            gc.collect()
            before = leftovers()
            result = await round_trip(http, daemon)
            deadline = asyncio.get_running_loop().time() + 15
            while not no_more_than(leftovers(), before) and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.2)
                gc.collect()
            sessions = await get_json(http, daemon.url + "/api/sessions")
        return result, sessions, before, leftovers()

    result, sessions, before, after = asyncio.run(scenario())
    assert result["got"] == [True, True, True]
    assert result["location"].startswith("/whip/") and result["accept_patch"] == "application/trickle-ice-sdpfrag"
    session_id = result["location"].rsplit("/", 1)[1]
    assert result["viewer_location"].startswith(f"/whep/{session_id}/")
    # the session runs its own preset: tag-b's square comes back, to its sender and to its WHEP viewer
    assert abs(square(result["client"]) - 220) < 12 and abs(square(result["viewer"]) - 220) < 12
    # the daemon's own stream, by WHEP, is still tag-a's; and the sender's picture is what it sent elsewhere
    assert abs(square(result["main"]) - 40) < 12
    sent = astronaut_frame(SIZE).astype(np.float32)
    assert float(np.abs(result["client"][TAG_BOX:].astype(np.float32) - sent[TAG_BOX:]).mean()) < 10
    [listed] = result["listed"]["sessions"]
    assert listed["id"] == session_id and listed["preset"] == "tag-b" and listed["viewers"] == 1
    assert listed["frames_out"] >= 20 and listed["fps"] > 0 and listed["latency_ms"]["p95"] > 0
    assert result["deleted"] == 200 and result["deleted_again"] == 404 and result["viewer_after"] == 404
    assert result["main_viewer_deleted"] == 200
    assert daemon.server is not None and daemon.runtime is not None
    assert sessions["sessions"] == [] and daemon.server.peers.peers == {}
    assert no_more_than(after, before), f"left over after DELETE: {after} (before the session: {before})"
    assert daemon.runtime.preset.name == "tag-a"


class Tone(AudioStreamTrack):
    """A microphone playing a 440 Hz tone at half scale (aiortc's paced 20 ms frames, not silence)."""

    async def recv(self) -> av.AudioFrame:
        frame = await super().recv()
        assert isinstance(frame, av.AudioFrame) and frame.pts is not None  # aiortc types it a plain Frame
        t = (frame.pts + np.arange(frame.samples)) / frame.sample_rate
        frame.planes[0].update((0.5 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16).tobytes())
        return frame


def test_whep_viewers_of_a_session_hear_its_sound(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    """A WHIP client with a microphone: its sound comes back to it in sync, and a WHEP viewer of its
    session hears it too."""
    daemon = daemons("tag-a", size=(160, 120), fps=10.0).start()

    async def scenario() -> tuple[int, float, int, float, int]:
        async with aiohttp.ClientSession() as http:
            client = WhipClient(daemon.url, StillCamera(astronaut_frame((160, 120)), 10), audio=Tone())
            assert await client.publish(http) == 201, client.error
            viewer = WhipClient(daemon.url, hear=True)
            assert await viewer.publish(http, f"/whep/{client.id}") == 201, viewer.error
            assert await viewer.wait_frames(10)
            await asyncio.sleep(2.0)
            heard = (client.audio_frames, client.loudest, viewer.audio_frames, viewer.loudest, viewer.frames)
            await asyncio.gather(viewer.delete(http), client.delete(http))
            await asyncio.gather(viewer.close(), client.close())
        return heard

    sent_back, loud_back, heard, loud, frames = asyncio.run(scenario())
    print(
        f"sound: {sent_back} frames back to the sender (peak {loud_back:.2f}), {heard} to the WHEP viewer "
        f"(peak {loud:.2f}) beside {frames} video frames"
    )
    assert sent_back > 50 and heard > 50  # Opus in 20 ms frames: 50 a second
    assert 0.3 < loud_back < 0.7 and 0.3 < loud < 0.7  # the half-scale tone, not silence


def test_whip_protocol_errors_trickle_and_options(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    daemon = daemons("tag-a", size=(160, 120), fps=5.0).start()

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with aiohttp.ClientSession() as http:
            url = daemon.url
            async with http.options(url + "/whip") as response:
                out["options"] = (response.status, response.headers.get("Accept-Post"))
            async with http.post(url + "/whip", json={"sdp": "v=0"}) as response:
                out["json_body"] = response.status
            async with http.post(url + "/whip", data="", headers={"Content-Type": "application/sdp"}) as response:
                out["empty"] = response.status
            async with http.post(
                url + "/whip", data="v=0\r\nnonsense", headers={"Content-Type": "application/sdp"}
            ) as response:
                out["malformed"] = (response.status, (await response.json())["error"])
            still = astronaut_frame((160, 120))
            for query in ("?preset=no-such", "?budget_ms=0", "?budget_ms=nan"):
                client = WhipClient(url, StillCamera(still, FPS))
                out[query] = (await client.publish(http, "/whip" + query), client.error)
                await client.close()
            nothing = WhipClient(url)
            out["whep_nothing"] = await nothing.publish(http, "/whep/nosuch")
            await nothing.close()
            client = WhipClient(url, StillCamera(still, FPS))
            assert await client.publish(http, "/whip", trickle=True) == 201  # its candidates come by PATCH
            frag = client.trickled
            patch = {"Content-Type": "application/trickle-ice-sdpfrag"}
            resource = url + client.location
            async with http.patch(resource, data=frag, headers={**patch, "If-Match": client.etag}) as response:
                out["trickle"] = response.status
            out["trickled"] = frag.count("a=candidate:")
            restart = "a=ice-ufrag:newufrag\r\na=ice-pwd:newpasswordnewpassword\r\na=mid:" + frag.split("a=mid:", 1)[1]
            async with http.patch(resource, data=restart, headers=patch) as response:
                out["restart_ufrag"] = response.status
            async with http.patch(resource, data=frag, headers={"Content-Type": "text/plain"}) as response:
                out["trickle_type"] = response.status
            async with http.patch(resource, data=frag, headers={**patch, "If-Match": '"other"'}) as response:
                out["trickle_etag"] = response.status
            async with http.patch(resource, data=frag, headers={**patch, "If-Match": "*"}) as response:
                out["restart"] = response.status
            bad = "a=mid:0\r\na=candidate:oops\r\n"
            async with http.patch(resource, data=bad, headers=patch) as response:
                out["bad_candidate"] = response.status
            async with http.patch(url + "/whip/nosuch", data=frag, headers=patch) as response:
                out["patch_nothing"] = response.status
            out["frames"] = await client.wait_frames(5)
            out["delete"] = await client.delete(http)
            await client.close()
        return out

    out = asyncio.run(scenario())
    assert out["options"] == (204, "application/sdp")
    assert out["json_body"] == 415 and out["empty"] == 400
    assert out["malformed"][0] == 400 and out["malformed"][1]
    assert out["?preset=no-such"][0] == 404 and "unknown preset" in out["?preset=no-such"][1]
    assert out["?budget_ms=0"][0] == 400 and "budget_ms" in out["?budget_ms=0"][1]
    assert out["?budget_ms=nan"][0] == 400
    assert out["whep_nothing"] == 404
    assert out["trickled"] >= 1 and out["trickle"] == 204
    assert out["trickle_type"] == 415 and out["trickle_etag"] == 412
    assert out["restart"] == 422 and out["restart_ufrag"] == 422
    assert out["bad_candidate"] == 400 and out["patch_nothing"] == 404
    assert out["frames"] and out["delete"] == 200


def test_whip_needs_the_bearer_token_off_loopback(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    daemon = daemons("tag-a", size=(160, 120), fps=5.0, host="0.0.0.0").start()

    async def scenario() -> tuple[int, int, int]:
        async with aiohttp.ClientSession() as http:
            still = astronaut_frame((160, 120))
            anonymous, wrong, right = (
                WhipClient(daemon.url, StillCamera(still, FPS), token=t) for t in (None, "wrong", daemon.token)
            )
            statuses = (await anonymous.publish(http), await wrong.publish(http), await right.publish(http))
            assert await right.wait_frames(3)
            assert await right.delete(http) == 200
            await asyncio.gather(anonymous.close(), wrong.close(), right.close())
        return statuses

    assert asyncio.run(scenario()) == (401, 401, 201)


def test_admission_refuses_a_session_past_the_budget(
    web_presets: Path, daemons: type[LiveDaemon], caplog: pytest.LogCaptureFixture
) -> None:
    daemon = daemons("tag-a", size=(160, 120), fps=5.0).start()
    assert daemon.server is not None
    daemon.server.sessions.budget_ms = 0.01  # the operator's --session-budget-ms: no stream can keep it

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with aiohttp.ClientSession() as http:
            still = astronaut_frame((160, 120))
            first = WhipClient(daemon.url, StillCamera(still, FPS))
            # once the first session is measured past the operator's budget, there is no room for another
            assert await first.publish(http) == 201, first.error
            assert await first.wait_frames(20)
            second = WhipClient(daemon.url, StillCamera(still, FPS))
            headers = {"Content-Type": "application/sdp"}
            await second.pc.setLocalDescription(await second.pc.createOffer())
            async with http.post(daemon.url + "/whip", data=second.pc.localDescription.sdp, headers=headers) as r:
                out["refused"] = (r.status, r.headers.get("Retry-After"), (await r.json())["error"])
            out["listed"] = await get_json(http, daemon.url + "/api/sessions")
            assert daemon.server is not None
            watch, deadline = daemon.server.sessions.watch, asyncio.get_running_loop().time() + 10
            while not watch.over and asyncio.get_running_loop().time() < deadline:  # the daemon notices, too
                await asyncio.sleep(0.2)
            assert await first.delete(http) == 200
            third = WhipClient(daemon.url, StillCamera(still, FPS))
            out["after"] = await third.publish(http)
            out["third_frames"] = await third.wait_frames(5)
            await third.delete(http)
            await asyncio.gather(first.close(), second.close(), third.close())
        return out

    out = asyncio.run(scenario())
    status, retry_after, error = out["refused"]
    assert status == 503 and retry_after is not None and int(retry_after) > 0
    assert "budget" in error and "at capacity" in out["listed"]["capacity"]
    [listed] = out["listed"]["sessions"]
    assert listed["budget_ms"] == 0.01 and listed["over_budget"] is True
    assert out["after"] == 201 and out["third_frames"]  # with the slow session gone there is room again
    assert any("over its 0.01 ms latency budget" in r.getMessage() for r in caplog.records)  # and it was said


def test_a_client_budget_cannot_lock_the_others_out(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    """Issue 29: `POST /whip?budget_ms=0.001` made every later `POST /whip` answer 503. A client's budget is
    its own (listed, flagged over budget), but admission never judges by one tighter than the operator's."""
    daemon = daemons("tag-a", size=(160, 120), fps=5.0).start()

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with aiohttp.ClientSession() as http:
            still = astronaut_frame((160, 120))
            greedy = WhipClient(daemon.url, StillCamera(still, FPS))
            assert await greedy.publish(http, "/whip?budget_ms=0.001") == 201, greedy.error
            assert await greedy.wait_frames(20)
            await asyncio.sleep(0.5)
            other = WhipClient(daemon.url, StillCamera(still, FPS))
            out["other"] = await other.publish(http)
            out["listed"] = await get_json(http, daemon.url + "/api/sessions")
            for client in (greedy, other):
                await client.delete(http)
            await asyncio.gather(greedy.close(), other.close())
        return out

    out = asyncio.run(scenario())
    assert out["other"] == 201
    greedy = next(s for s in out["listed"]["sessions"] if s["budget_ms"] == 0.001)
    assert greedy["over_budget"] is True


def live_inference_sessions() -> int:
    """onnxruntime sessions alive in this process, counted from the garbage collector (not from livefuse)."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is ort.InferenceSession)  # type(): no lazy module wakes up


def test_three_sessions_share_one_model_session(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    size = (160, 120)
    daemon = daemons("tag-a", size=size, fps=5.0).start()

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {"sessions": [live_inference_sessions()], "rss_mb": []}
        process = psutil.Process()
        out["rss_mb"].append(process.memory_info().rss / 2**20)
        async with aiohttp.ClientSession() as http:
            clients = []
            for _ in range(3):
                client = WhipClient(daemon.url, StillCamera(astronaut_frame(size), 10))
                assert await client.publish(http, "/whip?preset=background-blur") == 201, client.error
                assert await client.wait_frames(10)
                clients.append(client)
                out["sessions"].append(live_inference_sessions())
                out["rss_mb"].append(process.memory_info().rss / 2**20)
            for client in clients:
                await client.delete(http)
            await asyncio.gather(*(c.close() for c in clients))
        return out

    out = asyncio.run(scenario())
    rss = out["rss_mb"]
    print(
        f"onnxruntime sessions with 0..3 sessions: {out['sessions']}; RSS MB: {[round(r, 1) for r in rss]}; "
        f"added per session: {[round(b - a, 1) for a, b in pairwise(rss)]}"
    )
    before, one, two, three = out["sessions"]
    assert one > before, "background-blur loaded no model: the count would prove nothing"
    assert one == two == three, f"models loaded again for later sessions: {out['sessions']}"


@pytest.mark.skipif(not HAS_JUDGES, reason="needs ../shared/models (independent detector)")
def test_two_sessions_each_with_its_own_filter(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    daemon = daemons("passthrough", size=SIZE, fps=5.0).start()
    original = astronaut_frame(SIZE)

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with aiohttp.ClientSession() as http:
            blur = WhipClient(daemon.url, StillCamera(original, FPS))
            anon = WhipClient(daemon.url, StillCamera(original, FPS))
            assert await blur.publish(http, "/whip?preset=background-blur") == 201, blur.error
            assert await anon.publish(http, "/whip?preset=anonymise") == 201, anon.error
            assert all(await asyncio.gather(blur.wait_frames(30), anon.wait_frames(30)))
            viewer = WhipClient(daemon.url)
            assert await viewer.publish(http, f"/whep/{anon.id}") == 201
            assert await viewer.wait_frames(6)
            out["anon"], out["viewer"] = [], []
            for _ in range(3):
                await asyncio.sleep(0.4)
                out["anon"].append(anon.last)
                out["viewer"].append(viewer.last)
            out["blur"] = blur.last
            out["before"] = await get_json(http, f"{daemon.url}/api/sessions/{blur.id}/preset")
            change = {"stage": "anonymise", "params": {"strength": 0.3}}
            async with http.patch(f"{daemon.url}/api/sessions/{anon.id}/params", json=change) as response:
                out["patched"] = (response.status, await response.json())
            bad = {"stage": "anonymise", "params": {"strength": 7}}
            async with http.patch(f"{daemon.url}/api/sessions/{anon.id}/params", json=bad) as response:
                out["bad"] = (response.status, await response.json())
            async with http.patch(f"{daemon.url}/api/sessions/nosuch/params", json=change) as response:
                out["nosuch"] = response.status
            out["after"] = await get_json(http, f"{daemon.url}/api/sessions/{blur.id}/preset")
            out["anon_preset"] = await get_json(http, f"{daemon.url}/api/sessions/{anon.id}/preset")
            out["ids"] = (blur.id, anon.id)
            async with http.get(daemon.url + "/metrics") as response:
                out["metrics"] = await response.text()
            for client in (blur, anon, viewer):
                await client.delete(http)
            await asyncio.gather(blur.close(), anon.close(), viewer.close())
        return out

    out = asyncio.run(scenario())
    assert independent_faces(original) >= 1, "the astronaut must be found in what was sent: a useless check"
    # anonymise: no face in what its sender gets back, nor in what its WHEP viewer sees
    assert [independent_faces(image) for image in out["anon"] + out["viewer"]] == [0] * 6
    # background-blur: the face is kept, the background is blurred as the preset does it here
    assert independent_faces(out["blur"]) >= 1
    expected = processed_locally("background-blur", original, FPS)
    changed = np.abs(expected.astype(np.float32) - original.astype(np.float32)).mean(axis=2) > 12
    assert changed.mean() > 0.05, "background-blur hardly changes the frame: a useless check"
    blur = out["blur"].astype(np.float32)
    to_expected = float(np.abs(blur - expected.astype(np.float32))[changed].mean())
    to_original = float(np.abs(blur - original.astype(np.float32))[changed].mean())
    assert to_expected < 0.5 * to_original, (to_expected, to_original)
    # one session's parameters change; the other's (and the daemon's) stay
    assert out["patched"][0] == 200 and out["patched"][1]["params"]["strength"] == 0.3
    assert out["anon_preset"]["stages"][1]["params"]["strength"] == 0.3
    assert out["before"] == out["after"]
    assert out["bad"][0] == 400 and "strength" in out["bad"][1]["error"]  # the checks of /api/preset/params
    assert out["nosuch"] == 404
    # per-session figures in /metrics
    families = {f.name: f for f in text_string_to_metric_families(out["metrics"])}
    frames = {s.labels["session"]: s.value for s in families["livefuse_session_frames_out"].samples}
    assert set(out["ids"]) <= set(frames) and min(frames[i] for i in out["ids"]) >= 30
    presets = {s.labels["session"]: s.labels["preset"] for s in families["livefuse_session_fps"].samples}
    assert presets[out["ids"][0]] == "background-blur" and presets[out["ids"][1]] == "anonymise"
    lag = {s.name: s.value for s in families["livefuse_loop_lag_seconds"].samples}
    assert lag["livefuse_loop_lag_seconds_count"] > 0


def test_session_options_are_checked_on_the_command_line(cli: CliRunner) -> None:
    for flag, value in (
        ("--session-budget-ms", "0"),
        ("--session-budget-ms", "inf"),
        ("--batch-delay-ms", "-1"),
        ("--batch-delay-ms", "soon"),
    ):
        done = cli("run", "--source", "demo", "--output", "null", "--frames", "1", flag, value)
        assert done.returncode == 2, (flag, value, done.stderr)
        assert flag in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_session_is_recorded_on_demand(web_presets: Path, daemons: type[LiveDaemon], tmp_path: Path) -> None:
    import av

    daemon = daemons("tag-a", size=(160, 120), fps=5.0).start()
    assert daemon.server is not None
    daemon.server.session_api.recordings = tmp_path / "recordings"

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with aiohttp.ClientSession() as http:
            client = WhipClient(daemon.url, StillCamera(astronaut_frame((160, 120)), FPS))
            assert await client.publish(http, "/whip?preset=tag-b") == 201
            assert await client.wait_frames(5)
            outputs = f"{daemon.url}/api/sessions/{client.id}/outputs"
            for name, body in (
                ("ok", {"output": "file:talk.mp4?crf=20"}),
                ("again", {"output": "file:talk.mp4"}),
                ("path", {"output": "file:../talk.mp4"}),
                ("abs", {"output": "file:/tmp/x.mp4"}),
                ("preview", {"output": "preview"}),
                ("junk", {"output": "nonsense"}),
                ("empty", {}),
            ):
                async with http.post(outputs, json=body) as response:
                    out[name] = (response.status, await response.json())
            frames = client.frames
            await client.wait_frames(frames + 30)
            out["status"] = await get_json(http, f"{daemon.url}/api/sessions/{client.id}")
            assert await client.delete(http) == 200  # ending the session finishes the recording
            await client.close()
        return out

    out = asyncio.run(scenario())
    assert out["ok"][0] == 201 and out["again"][0] == 409
    assert [out[k][0] for k in ("path", "abs", "preview", "junk", "empty")] == [400] * 5
    assert "file name" in out["path"][1]["error"]
    recording = tmp_path / "recordings" / "talk.mp4"
    assert out["status"]["stats"]["outputs"][f"file:{recording}"]["frames"] > 0
    with av.open(str(recording)) as container:
        images = [f.to_ndarray(format="bgr24") for f in container.decode(video=0)]
    assert len(images) >= 10
    assert abs(square(images[-1]) - 220) < 12  # the session's own filter, recorded


def test_admission_judges_the_cpu_one_more_session_would_take() -> None:
    """Admission goes by what each running session costs, times one more: two sessions using 68 % of the
    core leave no room for a third (about 102 %), one at 36 % leaves room for a second. The cost comes from
    the last sample in which every session was settled; before there was one, a session that just started
    counts for the part of the CPU sample it ran, so it is not taken for a cheap one. The daemon's own
    stream (its share with no session) is not charged to the sessions."""
    from types import SimpleNamespace

    from livefuse.web.sessions import Sessions
    from livefuse.web.signalling import Peer

    now = time.monotonic()

    def sessions_of(*ages: float) -> Sessions:
        peers = {
            f"s{k}": Peer(id=f"s{k}", mode="camera", pc=None, runtime=stub_runtime(), started=now - age)  # type: ignore[arg-type]
            for k, age in enumerate(ages)
        }
        return Sessions(SimpleNamespace(peers=peers))  # type: ignore[arg-type]

    two = sessions_of(10.0, 10.0)
    two.cpu.share = 0.68
    assert two.share_with_one_more(list(two)) == pytest.approx(1.02)
    assert "one more session would take the daemon to about 102 %" in (two.refusal() or "")
    one = sessions_of(10.0)
    one.cpu.share = 0.36
    assert one.share_with_one_more(list(one)) == pytest.approx(0.72) and one.refusal() is None
    # the second started half a second into a 2 s sample: 0.36 + 0.25 * 0.36 of CPU, the same cost each
    young = sessions_of(10.0, 0.5)
    young.cpu.share = 0.45
    assert young.share_with_one_more(list(young)) == pytest.approx(1.08, rel=0.01) and young.refusal()
    # the share was measured 1.5 s ago, before the second session started 0.5 s ago: it cost nothing
    # in that sample, and the first one's cost counts for both (not a cheap second one)
    late = sessions_of(10.0, 0.5)
    late.cpu.share, late.cpu.sampled_at = 0.36, now - 1.5
    assert late.share_with_one_more(list(late)) == pytest.approx(1.08)
    fresh = sessions_of(0.2)  # too new for a cost per session: only the measured share counts
    fresh.cpu.share = 0.3
    assert fresh.share_with_one_more(list(fresh)) is None and fresh.refusal() is None
    # the daemon's own stream takes 40 % with no session: a session costing 10 % leaves room for two more
    busy = sessions_of(10.0)
    busy.cpu.baseline, busy.cpu.share = 0.4, 0.5
    assert busy.share_with_one_more(list(busy)) == pytest.approx(0.6) and busy.refusal() is None
    # once the CPU marks had every session past its first second, that cost per session is what counts: a
    # third session's setup (ICE, DTLS, codecs opening) in later marks does not make the running ones look dearer
    ramp = sessions_of(10.0, 10.0)
    clock = marks_at(ramp, now - 2.0, 0.5, seconds=2.0)
    assert ramp.settled_cost == pytest.approx(0.25) and ramp.cpu.share == pytest.approx(0.5)
    ramp.peers.peers["s9"] = Peer(id="s9", mode="camera", pc=None, runtime=stub_runtime(), started=now)  # type: ignore[arg-type]
    clock = marks_at(ramp, clock, 0.9, seconds=0.75)  # not settled: the cost stays
    assert ramp.settled_cost == pytest.approx(0.25)
    assert ramp.share_with_one_more(list(ramp)) == pytest.approx(1.0)  # four sessions at 25 %: no room
    # the marks before a session ended, its setup among them, are not charged to those left
    del ramp.peers.peers["s9"]
    clock = marks_at(ramp, clock, 0.6, seconds=1.0)
    assert ramp.settled_cost == pytest.approx(0.3)
    # peers that stopped sending cost little until they resume or are closed: what they used since their
    # last frame is not taken for a session's cost, and the cost stays what it was while they streamed
    clock = marks_at(ramp, clock, 0.1, seconds=3.0, sending=False)
    assert ramp.settled_cost == pytest.approx(0.3)
    assert ramp.share_with_one_more(list(ramp)) == pytest.approx(0.9)
    clock = marks_at(ramp, clock, 0.4, seconds=2.0)  # streaming again, at 20 % each: the dearer cost is recent
    assert ramp.settled_cost == pytest.approx(0.3)
    marks_at(ramp, clock, 0.4, seconds=12.0)
    assert ramp.settled_cost == pytest.approx(0.2)


def stub_runtime() -> Any:
    """What admission reads of a session's runtime: its frame count and latency samples."""
    from types import SimpleNamespace

    return SimpleNamespace(
        pipeline=SimpleNamespace(stats=SimpleNamespace(frames_in=0, latency=SimpleNamespace(samples=[])))
    )


def marks_at(sessions: Any, start: float, share: float, seconds: float, sending: bool = True) -> float:
    """Feed `sessions`' CPU load a mark every step from `start` for `seconds`, using `share` of its cores
    in between, each session receiving frames if `sending`; returns the time of the last mark."""
    from livefuse.web.sessions import STEP_S

    load = sessions.cpu
    if not load._marks:
        load.mark(start, 0.0)
    at, used = load._marks[-1]
    at = max(at, start)
    for _ in range(round(seconds / STEP_S)):
        at += STEP_S
        used += share * load.cores * STEP_S
        for peer in sessions.peers.peers.values():
            peer.runtime.pipeline.stats.frames_in += 8 if sending else 0
        load.mark(at, used)
    return float(at)


def test_a_stream_joining_soon_after_another_is_judged_by_their_settled_cost() -> None:
    """Streams asking 1.5 s apart on a fresh daemon: each costs 25 % of the core once settled, 50 % in its
    first second. The third is judged by the stretches after each settled, each by its whole length (25 %
    a stream: room for a third), though the last two seconds' share, holding the second's setup, is 0.56."""
    from types import SimpleNamespace

    from livefuse.web.sessions import Sessions
    from livefuse.web.signalling import Peer

    now = time.monotonic()
    sessions = Sessions(SimpleNamespace(peers={}))  # type: ignore[arg-type]

    def join(name: str, at: float) -> None:
        sessions.peers.peers[name] = Peer(id=name, mode="camera", pc=None, runtime=stub_runtime(), started=at)  # type: ignore[arg-type]

    join("a", now)
    clock = marks_at(sessions, now, 0.5, seconds=1.0)  # a's setup
    clock = marks_at(sessions, clock, 0.4, seconds=0.25)
    assert sessions.settled_cost == pytest.approx(0.4)
    clock = marks_at(sessions, clock, 0.1, seconds=0.25)  # the same stretch, longer: 25 % over its half second
    assert sessions.settled_cost == pytest.approx(0.25)
    join("b", clock)
    clock = marks_at(sessions, clock, 0.75, seconds=1.0)  # b's setup beside a
    clock = marks_at(sessions, clock, 0.5, seconds=0.5)
    assert sessions.cpu.share == pytest.approx(0.5625)
    assert sessions.settled_cost == pytest.approx(0.25)
    assert sessions.share_with_one_more(list(sessions)) == pytest.approx(0.75) and sessions.refusal() is None


def test_the_cpu_baseline_is_what_the_daemon_uses_with_no_session() -> None:
    """The baseline is the share over a whole window that began after the last mark with a session; the
    marks are the process's own CPU time."""
    from livefuse.web.sessions import CPU_SAMPLE_S, CpuLoad

    running = [1]
    load = CpuLoad(lambda: running[0])
    load.mark(time.monotonic(), time.process_time())
    busy_until = time.monotonic() + 0.2
    while time.monotonic() < busy_until:
        pass
    load.tick(0)
    assert load.share > 0.25 / load.cores and load.baseline == 0.0  # a session ran: not a baseline
    running[0] = 0
    t, used = load._marks[-1]
    for _ in range(round(CPU_SAMPLE_S / 0.25)):
        t, used = t + 0.25, used + 0.1 * load.cores * 0.25
        load.mark(t, used)
        assert load.baseline == 0.0  # the window still holds the session's last work
    t, used = t + 0.25, used + 0.1 * load.cores * 0.25
    load.mark(t, used)
    assert load.baseline == pytest.approx(0.1) and load.share == pytest.approx(0.1)

    async def started() -> list[float]:
        """A daemon's first CPU_SAMPLE_S seconds (its first frames) are not its baseline either."""
        fresh = CpuLoad(lambda: 0)
        fresh.start()
        t, used = fresh._marks[-1]
        baselines = []
        for _ in range(round(2 * CPU_SAMPLE_S / 0.25) + 1):
            t, used = t + 0.25, used + 0.1 * fresh.cores * 0.25
            fresh.mark(t, used)
            baselines.append(fresh.baseline)
        await fresh.stop()
        return baselines

    baselines = asyncio.run(started())
    assert baselines[round(2 * CPU_SAMPLE_S / 0.25) - 1] == 0.0 and baselines[-1] == pytest.approx(0.1)


def test_admission_refuses_a_session_when_the_daemon_has_no_cpu_left(
    web_presets: Path, daemons: type[LiveDaemon]
) -> None:
    daemon = daemons("tag-a", size=(160, 120), fps=5.0).start()
    assert daemon.server is not None
    sessions = daemon.server.sessions
    sessions.max_cpu_share = 0.0  # a CPU share no daemon stays under: any measured use means "full"

    async def scenario() -> tuple[int, float, int, str]:
        async with aiohttp.ClientSession() as http:
            still = astronaut_frame((160, 120))
            first = WhipClient(daemon.url, StillCamera(still, FPS))
            assert await first.publish(http) == 201  # no session yet: nothing to protect
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 15
            while sessions.cpu.share == 0 and loop.time() < deadline:
                await asyncio.sleep(0.2)
            second = WhipClient(daemon.url, StillCamera(still, FPS))
            refused = await second.publish(http)
            assert await first.delete(http) == 200
            await asyncio.gather(first.close(), second.close())
        return refused, sessions.cpu.share, len(list(sessions)), second.error

    refused, share, left, error = asyncio.run(scenario())
    assert share > 0 and refused == 503 and "CPU" in error, (share, refused, error)
    assert left == 0


def test_session_outputs_are_opt_in_bounded_plain_and_removable(
    web_presets: Path, daemons: type[LiveDaemon], tmp_path: Path
) -> None:
    """Issue 29: pushes only where --allow-push allows and with no option that binds; names are plain
    (a NUL is a 400 that leaks no file and no encoder thread); a recording never overwrites a file nor
    follows a symlink; a few outputs per session, each removable with DELETE."""
    import av

    daemon = daemons("tag-a", size=(160, 120), fps=5.0).start()
    assert daemon.server is not None
    api = daemon.server.session_api
    recordings = tmp_path / "recordings"
    recordings.mkdir()
    api.recordings = recordings
    (recordings / "taken.mp4").write_bytes(b"keep me")
    victim = tmp_path / "victim.mp4"
    victim.write_bytes(b"not yours")
    (recordings / "link.mp4").symlink_to(victim)
    (recordings / "dangling.mp4").symlink_to(tmp_path / "created-through-link.mp4")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink_socket:  # a UDP port nobody reads
        sink_socket.bind(("127.0.0.1", 0))
        udp = f"udp://127.0.0.1:{sink_socket.getsockname()[1]}"

        async def scenario() -> dict[str, Any]:
            out: dict[str, Any] = {}
            async with aiohttp.ClientSession() as http:
                client = WhipClient(daemon.url, StillCamera(astronaut_frame((160, 120)), FPS))
                assert await client.publish(http, "/whip?preset=tag-b") == 201
                assert await client.wait_frames(5)
                outputs = f"{daemon.url}/api/sessions/{client.id}/outputs"

                async def post(body: dict[str, Any]) -> tuple[int, Any]:
                    async with http.post(outputs, json=body) as response:
                        return response.status, await response.json()

                out["push_off"] = await post({"output": f"{udp}?pkt_size=1316"})
                api.allow_push = ("udp://127.0.0.1:*",)
                out["elsewhere"] = await post({"output": "udp://127.0.0.2:9"})
                out["localport"] = await post({"output": f"{udp}?localport=4999"})
                out["listen"] = await post({"output": f"{udp}?listen=1"})
                fds, threads = len(os.listdir("/proc/self/fd")), threading.active_count()
                out["nul"] = [await post({"output": "file:a\u0000b.mp4"}) for _ in range(5)]
                out["leak"] = (len(os.listdir("/proc/self/fd")) - fds, threading.active_count() - threads)
                out["taken"] = await post({"output": "file:taken.mp4"})
                out["link"] = await post({"output": "file:link.mp4"})
                out["dangling"] = await post({"output": "file:dangling.mp4"})
                out["push"] = await post({"output": f"{udp}?pkt_size=1316&bitrate=300k"})
                out["added"] = [await post({"output": f"file:rec{k}.mp4"}) for k in range(4)]
                await client.wait_frames(client.frames + 10)  # the recordings get frames before one is removed
                out["delete"] = []
                for number in (2, 2, 99, "x"):
                    async with http.delete(f"{outputs}/{number}") as response:
                        out["delete"].append(response.status)
                out["again"] = await post({"output": "file:rec9.mp4"})
                out["status"] = await get_json(http, f"{daemon.url}/api/sessions/{client.id}")
                for number in (1, 3, 4, 5):  # all of them gone, six asked at once: the cap still holds
                    async with http.delete(f"{outputs}/{number}") as response:
                        assert response.status == 204
                out["at_once"] = sorted(
                    s for s, _ in await asyncio.gather(*(post({"output": f"file:together{k}.mp4"}) for k in range(6)))
                )
                assert await client.delete(http) == 200
                await client.close()
            return out

        out = asyncio.run(scenario())
    assert out["push_off"][0] == 403 and "--allow-push" in out["push_off"][1]["error"]
    assert out["elsewhere"][0] == 403 and "not allowed" in out["elsewhere"][1]["error"]
    assert out["localport"][0] == 403 and "'localport'" in out["localport"][1]["error"]
    assert out["listen"][0] == 403
    assert [status for status, _ in out["nul"]] == [400] * 5 and "control characters" in out["nul"][0][1]["error"]
    assert out["leak"] == (0, 0), out["leak"]
    assert out["taken"][0] == 400 and "exists already" in out["taken"][1]["error"]
    assert (recordings / "taken.mp4").read_bytes() == b"keep me"
    assert out["link"][0] == 400 and out["dangling"][0] == 400
    assert victim.read_bytes() == b"not yours" and not (tmp_path / "created-through-link.mp4").exists()
    assert out["push"][0] == 201 and out["push"][1]["index"] == 1
    assert [status for status, _ in out["added"]] == [201, 201, 201, 409]
    assert "most it may have" in out["added"][3][1]["error"]
    assert out["delete"] == [204, 404, 404, 404]
    assert out["again"][0] == 201 and out["again"][1]["index"] == 5
    assert out["at_once"] == [201] * 4 + [409] * 2, out["at_once"]
    assert "file:" + str(recordings / "rec0.mp4") not in out["status"]["stats"]["outputs"]  # number 2: removed
    with av.open(str(recordings / "rec0.mp4")) as container:  # finalised when it was removed
        assert sum(1 for _ in container.decode(video=0)) >= 1


def many_sections_offer(base: str, sections: int, *, setup: bool = True) -> str:
    """A real offer's session part followed by `sections` small audio m-sections (about 60 kB in all)."""
    head = base.split("\r\nm=")[0]
    shared = [ln for ln in base.split("\r\n") if ln.startswith(("a=ice-ufrag:", "a=ice-pwd:", "a=fingerprint:"))]
    shared += ["a=setup:actpass"] if setup else []
    head += "".join(f"\r\n{ln}" for ln in dict.fromkeys(shared))  # session-level: every section gets them
    media = "".join(
        f"\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\nc=IN IP4 0.0.0.0\r\na=mid:{k}\r\na=sendonly\r\n"
        "a=rtcp-mux\r\na=rtpmap:0 PCMU/8000"
        for k in range(sections)
    )
    return head + media + "\r\n"


def test_huge_offers_and_candidate_floods_are_refused_without_stalling(
    web_presets: Path, daemons: type[LiveDaemon]
) -> None:
    """Issue 29: 15 offers of 600 m-sections silenced the loop for 11-14 s; 100 trickled candidates sent
    524 STUN packets to ports the caller chose."""
    daemon = daemons("tag-a", size=(160, 120), fps=5.0, max_peers=20).start()

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with aiohttp.ClientSession() as http:
            client = WhipClient(daemon.url, StillCamera(astronaut_frame((160, 120)), FPS))
            await client.pc.setLocalDescription(await client.pc.createOffer())
            offer = many_sections_offer(client.pc.localDescription.sdp, 500)
            assert len(offer) < 64 * 1024
            lags: list[float] = []
            done = asyncio.Event()

            async def probe() -> None:
                while not done.is_set():
                    start = time.monotonic()
                    async with http.get(daemon.url + "/healthz") as response:
                        await response.read()
                    lags.append(time.monotonic() - start)
                    await asyncio.sleep(0.02)

            async def post() -> tuple[int, str]:
                async with http.post(
                    daemon.url + "/whip", data=offer, headers={"Content-Type": "application/sdp"}
                ) as response:
                    return response.status, await response.text()

            prober = asyncio.create_task(probe())
            started = time.monotonic()
            out["offers"] = await asyncio.gather(*(post() for _ in range(15)))
            out["took"] = time.monotonic() - started
            done.set()
            async with http.post(
                daemon.url + "/whip",
                data=many_sections_offer(client.pc.localDescription.sdp, 2, setup=False),
                headers={"Content-Type": "application/sdp"},
            ) as response:
                out["no_setup"] = (response.status, await response.text())
            await prober
            out["lag"] = max(lags)
            await client.close()
            # trickle: a real session, then a flood of candidates to ports of the caller's choosing
            trickler = WhipClient(daemon.url, StillCamera(astronaut_frame((160, 120)), FPS))
            assert await trickler.publish(http, "/whip", trickle=True) == 201
            resource = daemon.url + trickler.location
            patch = {"Content-Type": "application/trickle-ice-sdpfrag", "If-Match": trickler.etag}
            flood = "a=mid:0\r\n" + "".join(
                f"a=candidate:{k} 1 udp 2130706431 127.0.0.1 {20000 + k} typ host\r\n" for k in range(100)
            )
            async with http.patch(resource, data=flood, headers=patch) as response:
                out["flood"] = (response.status, await response.text())
            async with http.patch(resource, data=trickler.trickled, headers=patch) as response:
                out["own"] = response.status
            assert await trickler.wait_frames(3)
            await trickler.delete(http)
            await trickler.close()
            assert daemon.server is not None
            out["peers"] = len(daemon.server.peers.peers)
        return out

    out = asyncio.run(scenario())
    print(
        f"\n15 offers of 500 m-sections: {sorted({s for s, _ in out['offers']})} in {out['took']:.2f} s, "
        f"/healthz worst {out['lag'] * 1000:.0f} ms"
    )
    assert all(status == 400 and "media sections" in text for status, text in out["offers"]), out["offers"][0]
    assert out["lag"] < 0.5 and out["took"] < 2.0
    assert out["no_setup"][0] == 400 and "malformed offer" in out["no_setup"][1]  # was a 500
    assert out["flood"][0] == 422 and "at most 50" in out["flood"][1]
    assert out["own"] == 204
    assert out["peers"] == 0


def test_whip_and_whep_speak_cors_links_and_rfc9725_headers(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    """Issue 29: from a page of another origin, third-party WHIP/WHEP clients failed: the preflight got 403
    (401 with a token) and no Access-Control-* headers; Allow-Methods never listed PATCH; the trickle 204
    carried an ETag (RFC 9725 §4.3.1: it must not); configured ICE servers must come in Link headers."""
    from livefuse.web.ice_servers import parse_ice_server

    app = "http://app.example.test:3000"
    daemon = daemons(
        "tag-a",
        size=(160, 120),
        fps=5.0,
        token="cors-token-0123456789",
        cors_origins=(app,),
        ice_servers=(
            parse_ice_server("stun:stun.example.test:3478"),
            parse_ice_server("turn:alice:pw@turn.example.test:3478?transport=udp"),
        ),
    ).start()

    async def scenario() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with aiohttp.ClientSession() as http:
            preflight = {
                "Origin": app,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            }
            async with http.options(daemon.url + "/whip", headers=preflight) as response:  # no token: none is sent
                out["preflight"] = (response.status, dict(response.headers))
            async with http.options(daemon.url + "/whip", headers={**preflight, "Origin": "http://evil.test"}) as r:
                out["preflight_evil"] = (r.status, r.headers.get("Access-Control-Allow-Origin"))
            auth = {"Authorization": f"Bearer {daemon.token}"}
            async with http.options(daemon.url + "/whip", headers=auth) as response:
                out["options"] = (response.status, response.headers.getall("Link", []), response.headers["Allow"])
            client = WhipClient(daemon.url, StillCamera(astronaut_frame((160, 120)), FPS), token=daemon.token)
            client.headers["Origin"] = app
            await client.pc.setLocalDescription(await client.pc.createOffer())
            async with http.post(
                daemon.url + "/whip",
                data=client.pc.localDescription.sdp,
                headers={**client.headers, "Content-Type": "application/sdp"},
            ) as response:
                out["post"] = (response.status, dict(response.headers), response.headers.getall("Link", []))
                location = response.headers["Location"]
                await client.pc.setRemoteDescription(RTCSessionDescription(await response.text(), "answer"))
            resource = daemon.url + location
            async with http.options(resource, headers={**preflight, "Access-Control-Request-Method": "PATCH"}) as r:
                out["preflight_resource"] = (r.status, r.headers.get("Access-Control-Allow-Methods"))
            candidate = "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
            async with http.patch(
                resource,
                data=candidate,
                headers={**auth, "Origin": app, "Content-Type": "application/trickle-ice-sdpfrag"},
            ) as response:
                out["trickle"] = (
                    response.status,
                    response.headers.get("ETag"),
                    response.headers.get("Access-Control-Allow-Origin"),
                )
            async with http.post(
                daemon.url + "/whip",
                data="v=0",
                headers={**auth, "Origin": "http://evil.test", "Content-Type": "application/sdp"},
            ) as response:
                out["post_evil"] = response.status
            async with http.delete(resource, headers={**auth, "Origin": app}) as response:
                out["delete"] = (response.status, response.headers.get("Access-Control-Allow-Origin"))
            await client.close()
        return out

    out = asyncio.run(scenario())
    status, headers = out["preflight"]
    assert status == 204 and headers["Access-Control-Allow-Origin"] == app, out["preflight"]
    assert {"POST", "OPTIONS"} <= {m.strip() for m in headers["Access-Control-Allow-Methods"].split(",")}
    assert "authorization" in headers["Access-Control-Allow-Headers"].lower()
    assert out["preflight_evil"][0] == 403 and out["preflight_evil"][1] is None
    assert out["options"][0] == 204 and out["options"][2] == "OPTIONS, POST"
    assert out["options"][1] == [
        '<stun:stun.example.test:3478>; rel="ice-server"',
        '<turn:turn.example.test:3478?transport=udp>; rel="ice-server"; username="alice"; '
        'credential="pw"; credential-type="password"',
    ]
    status, headers, links = out["post"]
    assert status == 201 and headers["Access-Control-Allow-Origin"] == app
    assert {"Location", "ETag", "Link", "Accept-Patch"} <= {
        h.strip() for h in headers["Access-Control-Expose-Headers"].split(",")
    }
    assert links == out["options"][1]
    assert (
        out["preflight_resource"][0] == 204
        and "PATCH" in out["preflight_resource"][1]
        and "DELETE" in out["preflight_resource"][1]
    )
    assert out["trickle"] == (204, None, app)
    assert out["post_evil"] == 403
    assert out["delete"] == (200, app)


def test_a_callers_offer_is_parsed_off_the_event_loop(
    web_presets: Path, daemons: type[LiveDaemon], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 29: every decode of caller data runs off the loop. The daemon parses a WHIP offer in a worker
    thread, and aiortc takes that parse instead of parsing it again on the loop; its own answer it may parse
    where it likes."""
    from livefuse.web import offers

    parsed: list[tuple[int, str]] = []
    real = offers._aiortc_parse

    def recorded(text: str) -> Any:
        parsed.append((threading.get_ident(), str(text)))
        return real(text)

    monkeypatch.setattr(offers, "_aiortc_parse", recorded)
    daemon = daemons("tag-a", size=(160, 120), fps=5.0).start()

    async def scenario() -> str:
        async with aiohttp.ClientSession() as http:
            client = WhipClient(daemon.url, StillCamera(astronaut_frame((160, 120)), FPS))
            assert await client.publish(http, "/whip") == 201, client.error
            assert await client.wait_frames(3)
            sent = client.pc.localDescription.sdp
            await client.delete(http)
            await client.close()
        return str(sent)

    sent = asyncio.run(scenario())
    loop_thread = daemon._thread.ident
    where = [ident for ident, text in parsed if text == sent]
    assert where, "the offer never reached the parser"
    assert loop_thread not in where and threading.get_ident() not in where, (where, loop_thread)
