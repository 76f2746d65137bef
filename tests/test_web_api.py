"""The control API, its security and /metrics, against a live daemon (real server, real pipeline)."""

from __future__ import annotations

import io
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import psutil
import pytest
from browser_fixtures import LiveDaemon, TagStage, daemons_fixture, http, http_json, web_presets_fixture
from conftest import CliRunner, cli_env, stop_with_sigint
from prometheus_client.parser import text_string_to_metric_families

__all__ = ["daemons_fixture", "web_presets_fixture"]  # the `daemons` and `web_presets` fixtures


def png_bytes(size: tuple[int, int] = (64, 64)) -> bytes:
    ok, encoded = cv2.imencode(".png", np.full((size[1], size[0], 3), 90, np.uint8))
    assert ok
    return encoded.tobytes()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def tag_stage(daemon: LiveDaemon) -> TagStage:
    """The daemon's first stage: the test presets' tag stage."""
    assert daemon.runtime is not None
    stage = daemon.runtime.pipeline.chain.stages[0][1]
    assert isinstance(stage, TagStage)
    return stage


def test_no_auth_on_loopback_serves_page_status_and_health(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    daemon = daemons("tag-a", no_auth=True).start()
    status, page = http_json("GET", daemon.url + "/api/status")
    assert status == 200
    assert page["preset"] == "tag-a" and {"tag-a", "tag-b", "backdrop", "passthrough"} <= set(page["presets"])
    assert page["preset_path"] == "tag-a.toml"  # not where the machine keeps it (issue 29: absolute paths)
    stage = page["preset_info"]["stages"][0]
    assert stage["label"] == "test_tag" and stage["params"]["value"] == 40
    assert {"name": "value", "type": "int", "min": 0, "max": 255, "live": True}.items() <= stage["specs"][0].items()
    code, headers, body = http("GET", daemon.url + "/")
    assert code == 200 and b"/static/app.js" in body and "Access-Control-Allow-Origin" not in headers
    assert http("GET", daemon.url + "/static/app.js")[0] == 200
    assert http_json("GET", daemon.url + "/healthz")[1]["ok"] is True
    assert daemon.token is None


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_the_daemon_requires_its_token_exposed_and_on_loopback(
    web_presets: Path, daemons: type[LiveDaemon], host: str
) -> None:
    """Issue 29: on loopback, any local user could switch to passthrough and watch the raw face."""
    daemon = daemons("tag-a", host=host, no_auth=False).start()
    token = daemon.token
    assert token and len(token) >= 24
    for method, path in (
        ("GET", "/api/status"),
        ("GET", "/"),
        ("GET", "/metrics"),
        ("PUT", "/api/preset"),
        ("POST", "/api/offer"),
        ("GET", "/static/app.js"),
    ):
        assert http(method, daemon.url + path, {})[0] == 401, path
        assert http(method, daemon.url + path, {}, headers={"Authorization": "Bearer wrong"})[0] == 401, path
    assert http("GET", daemon.url + "/api/status", headers={"Authorization": f"Bearer {token}"})[0] == 200
    assert http("GET", daemon.url + "/healthz")[0] == 200  # liveness probes need no token
    # the page: ?token= once, then the cookie carries it for the page's own requests
    code, headers, _ = http("GET", f"{daemon.url}/?token={token}")
    assert code == 200
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "HttpOnly" in headers["Set-Cookie"]
    assert http("GET", daemon.url + "/api/status", headers={"Cookie": cookie})[0] == 200
    assert http("GET", daemon.url + "/api/status", headers={"Cookie": "livefuse_token=nope"})[0] == 401
    # no other site may frame the page
    assert headers["Content-Security-Policy"] == "frame-ancestors 'none'" and headers["X-Frame-Options"] == "DENY"


def test_given_token_is_used(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    daemon = daemons("tag-a", host="0.0.0.0", token="s3cret-token").start()
    assert daemon.token == "s3cret-token"
    assert http("GET", daemon.url + "/metrics", headers={"Authorization": "Bearer s3cret-token"})[0] == 200


def test_cross_site_requests_are_refused(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    daemon = daemons("tag-a").start()
    evil = {"Origin": "http://evil.example"}
    assert http("PUT", daemon.url + "/api/preset", {"name": "tag-b"}, headers=evil)[0] == 403
    assert http("GET", daemon.url + "/api/status", headers={"Host": "rebound.example:8080"})[0] == 403
    own = {"Origin": daemon.url}
    assert http("PUT", daemon.url + "/api/preset", {"name": "tag-b"}, headers=own)[0] == 200


def test_switching_presets_loses_no_frame(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    daemon = daemons("tag-a", fps=20.0).start()
    assert wait_for(lambda: len(daemon.emitted) >= 10)
    status, body = http_json("PUT", daemon.url + "/api/preset", {"name": "tag-b"})
    assert status == 200 and body["name"] == "tag-b"
    assert http_json("GET", daemon.url + "/api/preset")[1]["name"] == "tag-b"
    assert wait_for(lambda: [tag for *_, tag in daemon.emitted[-5:]] == [220] * 5)
    frames = list(daemon.emitted)
    tags = [tag for *_, tag in frames]
    last_old = max(i for i, tag in enumerate(tags) if tag == 40)
    first_new = tags.index(220)
    assert first_new == last_old + 1, "frames of the two presets interleaved"
    (seq_old, t_old, _), (seq_new, t_new, _) = frames[last_old], frames[first_new]
    interval_ns = 1e9 / daemon.fps
    assert seq_new == seq_old + 1, "a captured frame was lost in the switch"
    assert t_new - t_old <= 1.25 * interval_ns, f"gap {(t_new - t_old) / 1e6:.1f} ms"
    assert daemon.pipeline is not None
    assert daemon.pipeline.stats.frames_processed >= len(frames)
    # the old preset's stages are closed, the new one is reported
    assert http_json("GET", daemon.url + "/api/status")[1]["preset"] == "tag-b"
    assert http_json("PUT", daemon.url + "/api/preset", {"name": "no-such"})[0] == 404
    assert http_json("PUT", daemon.url + "/api/preset", {"nom": "tag-a"})[0] == 400


def test_live_parameters_are_validated_and_applied(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    daemon = daemons("tag-a").start()
    url = daemon.url + "/api/preset/params"
    assert wait_for(lambda: len(daemon.emitted) > 2)
    status, body = http_json("PATCH", url, {"stage": "test_tag", "params": {"value": 99}})
    assert (status, body) == (200, {"stage": "test_tag", "params": {"value": 99, "fixed": 0}})
    assert wait_for(lambda: daemon.emitted[-1][2] == 99)
    cases = [
        ({"stage": "test_tag", "params": {"value": 300}}, "out of range"),
        ({"stage": "test_tag", "params": {"value": "high"}}, "not allowed"),
        ({"stage": "test_tag", "params": {"fixed": 1}}, "cannot change while streaming"),
        ({"stage": "test_tag", "params": {"colour": 1}}, "unknown key"),
        ({"stage": "nope", "params": {"value": 1}}, "no stage 'nope'"),
        ({"stage": "test_tag"}, "expected"),
        ([1, 2], "JSON object"),
    ]
    for payload, message in cases:
        status, body = http_json("PATCH", url, payload)
        assert status == 400 and message in body["error"], (payload, body)
    code, _, raw = http("PATCH", url, data=b"{not json", headers={"Content-Type": "application/json"})
    assert code == 400 and b"malformed JSON" in raw
    assert daemon.runtime is not None
    assert daemon.runtime.preset.stages[0].params["value"] == 99
    assert http_json("GET", daemon.url + "/healthz")[1]["ok"]


def test_source_face_upload_is_checked_and_reaches_the_swap_stage(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    daemon = daemons("tag-a").start()
    url = daemon.url + "/api/source-face"
    status, body = http_json("POST", url, data=png_bytes((80, 60)), headers={"Content-Type": "image/png"})
    assert (status, body["width"], body["height"], body["applied_to"]) == (200, 80, 60, ["test_tag"])
    stage = tag_stage(daemon)
    assert stage.source_faces == [(60, 80, 3)]
    # multipart, as a browser form sends it
    boundary = "livefuse-test"
    form = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="f.png"\r\n'
            f"Content-Type: image/png\r\n\r\n"
        ).encode()
        + png_bytes()
        + f"\r\n--{boundary}--\r\n".encode()
    )
    multipart = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    assert http_json("POST", url, data=form, headers=multipart)[0] == 200
    big = b"\x89PNG" + bytes(6 * 1024 * 1024)
    assert http("POST", url, data=big, headers={"Content-Type": "image/png"})[0] == 413
    big_form = form.replace(png_bytes(), big)
    assert http("POST", url, data=big_form, headers=multipart)[0] == 413
    status, body = http_json("POST", url, data=b"\x89PNG not really", headers={"Content-Type": "image/png"})
    assert status == 400 and "does not decode" in body["error"]
    assert http_json("POST", url, data=b"hello", headers={"Content-Type": "text/plain"})[0] == 415
    assert len(stage.source_faces) == 2
    # the image is kept for presets switched to later
    assert http_json("PUT", daemon.url + "/api/preset", {"name": "tag-b"})[0] == 200
    assert tag_stage(daemon).source_faces == [(64, 64, 3)]


def png_bomb(width: int, height: int) -> bytes:
    """A 1-bit PNG of zeros: a few tens of kB that declare width x height pixels (BGR: 3 bytes each)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = bytes(1 + (width + 7) // 8)
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


def test_an_image_bomb_is_refused_from_its_header_and_the_loop_never_waits(
    web_presets: Path, daemons: type[LiveDaemon]
) -> None:
    """Issue 29: a 48 KB PNG of 20000 x 20000 pixels took 2.7 GB and silenced the loop for 6 s."""
    daemon = daemons("tag-a", size=(160, 120), fps=10.0).start()
    url = daemon.url + "/api/source-face"
    bomb = png_bomb(20000, 20000)
    assert len(bomb) < 100_000
    process = psutil.Process()
    rss = process.memory_info().rss
    lags: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            start = time.monotonic()
            http("GET", daemon.url + "/healthz", timeout=30)
            lags.append(time.monotonic() - start)
            time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        started = time.monotonic()
        status, body = http_json("POST", url, data=bomb, headers={"Content-Type": "image/png"})
        took = time.monotonic() - started
    finally:
        stop.set()
        prober.join()
    grown = (process.memory_info().rss - rss) / 2**20
    print(
        f"\nbomb of {len(bomb)} bytes: {status} in {took * 1000:.0f} ms, RSS +{grown:.0f} MB, "
        f"/healthz worst {max(lags) * 1000:.0f} ms"
    )
    assert status == 413 and "20000x20000" in body["error"] and "megapixels" in body["error"], body
    assert took < 1.0 and grown < 100 and max(lags) < 0.5
    assert tag_stage(daemon).source_faces == []
    # a large, legitimate photo still goes through (decoded off the loop)
    status, body = http_json("POST", url, data=png_bytes((4000, 3000)), headers={"Content-Type": "image/png"})
    assert (status, body["width"], body["height"]) == (200, 4000, 3000), body


def test_malformed_offers_are_refused_and_the_daemon_carries_on(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    daemon = daemons("tag-a", max_peers=1).start()
    url = daemon.url + "/api/offer"
    for payload in (
        {"sdp": "v=0\r\nthis is not sdp\r\n", "type": "offer"},
        {"sdp": "", "type": "offer"},
        {"sdp": "v=0", "type": "answer"},
        {"sdp": "v=0", "type": "offer", "mode": "karaoke"},
        {"type": "offer"},
    ):
        status, body = http_json("POST", url, payload)
        assert status == 400 and body["error"], payload
    assert http("POST", url, data=b"\x00\xff", headers={"Content-Type": "application/json"})[0] == 400
    assert http_json("GET", daemon.url + "/api/status")[1]["peers"] == []
    pipeline = daemon.pipeline
    assert pipeline is not None
    count = pipeline.stats.frames_out
    assert wait_for(lambda: pipeline.stats.frames_out > count + 3)


def test_metrics_parse_and_move(web_presets: Path, daemons: type[LiveDaemon]) -> None:
    daemon = daemons("tag-a").start()
    time.sleep(0.5)

    def scrape() -> dict[str, float]:
        code, headers, raw = http("GET", daemon.url + "/metrics")
        assert code == 200 and headers["Content-Type"].startswith("text/plain")
        return {
            s.name + repr(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(raw.decode())
            for s in family.samples
        }

    first = scrape()
    time.sleep(0.6)
    second = scrape()
    for name in (
        "livefuse_frames_in_total[]",
        "livefuse_frames_processed_total[]",
        "livefuse_frame_latency_seconds_count[]",
        "livefuse_stage_seconds_count[('stage', 'test_tag')]",
        "livefuse_output_frames_total[('output', 'preview')]",
    ):
        assert second[name] > first[name] > 0, name
    assert daemon.runtime is not None and daemon.pipeline is not None
    assert second[f"livefuse_provider_info[('provider', '{daemon.runtime.engine.provider}')]"] == 1
    assert second["livefuse_frames_dropped_total[]"] >= 0
    assert "livefuse_copies_per_frame[('direction', 'h2d')]" in second
    assert second["livefuse_webrtc_peers[]"] == 0
    # one histogram observation per emitted frame, not more
    assert second["livefuse_frame_latency_seconds_count[]"] <= daemon.pipeline.stats.frames_processed


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_cli_prints_a_token_when_exposed(tmp_path: Path) -> None:
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "livefuse",
            "run",
            "--source",
            "demo",
            "--preset",
            "passthrough",
            "--output",
            "preview",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--size",
            "160x120",
            "--fps",
            "10",
            "--max-peers",
            "2",
            "--duration",
            "60",
        ],
        cwd=tmp_path,
        env=cli_env(home),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        token = None
        lines = io.StringIO()
        deadline = time.monotonic() + 60
        while token is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.write(line)
            match = re.search(r"token: (\S+)", line)
            token = match[1] if match else None
        assert token, lines.getvalue()
        base = f"http://127.0.0.1:{port}"
        assert http("GET", base + "/api/status")[0] == 401
        status, body = http_json("GET", base + "/api/status", headers={"Authorization": f"Bearer {token}"})
        assert status == 200 and body["preset"] == "passthrough" and body["max_peers"] == 2
    finally:
        stop_with_sigint(proc, "livefuse run")
    assert proc.returncode == 0


def test_cli_token_from_a_file_url_printed_secrets_redacted_changes_logged(tmp_path: Path) -> None:
    """Issue 29: a token on loopback too, read from a file (never in `ps`), the URL that carries it printed
    for the page; a push's stream key and password never in /api/status, /metrics or the log; every
    change logged with who, what and when."""
    port, push_port = free_port(), free_port()
    home = tmp_path / "home"
    home.mkdir()
    token = "file-token-0123456789abcdef"
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    push = f"rtmp://user:hunter2@127.0.0.1:{push_port}/live/SECRETKEY"  # nothing listens: it keeps retrying
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "livefuse",
            "run",
            "--source",
            "demo",
            "--preset",
            "passthrough",
            "--output",
            "preview",
            "--output",
            push,
            "--port",
            str(port),
            "--size",
            "160x120",
            "--fps",
            "10",
            "--token-file",
            str(token_file),
            "--duration",
            "60",
        ],
        cwd=tmp_path,
        env=cli_env(home),
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    try:
        stderr = proc.stderr
        assert stderr is not None
        reader = threading.Thread(target=lambda: lines.extend(iter(stderr.readline, "")), daemon=True)
        reader.start()
        base = f"http://127.0.0.1:{port}"
        assert wait_for(lambda: any(f"open {base}/?token={token}" in line for line in lines), 60), lines
        assert token not in Path(f"/proc/{proc.pid}/cmdline").read_bytes().decode(errors="replace")
        assert http("GET", base + "/api/status")[0] == 401  # loopback: the token is needed all the same
        code, headers, _ = http("GET", f"{base}/?token={token}")  # the printed URL opens the page
        assert code == 200
        cookie = {"Cookie": headers["Set-Cookie"].split(";")[0]}
        assert wait_for(lambda: "retrying" in json_of(http("GET", base + "/api/status", headers=cookie)[2]), 30)
        status_text = http("GET", base + "/api/status", headers=cookie)[2].decode()
        metrics_text = http("GET", base + "/metrics", headers=cookie)[2].decode()
        assert (
            http(
                "PUT", base + "/api/preset", {"name": "passthrough"}, headers={**cookie, "User-Agent": "issue29-test"}
            )[0]
            == 200
        )
        assert http("PUT", base + "/api/preset", {"name": "passthrough"})[0] == 401
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    log = "".join(lines)
    for text in (status_text, metrics_text, log.replace(token, "TOKEN")):
        assert "SECRETKEY" not in text and "hunter2" not in text
    assert f"rtmp://***@127.0.0.1:{push_port}/live/***" in status_text
    assert f"rtmp://***@127.0.0.1:{push_port}/live/***" in metrics_text
    changes = [line for line in lines if " PUT /api/preset " in line]
    assert len(changes) == 2 and "127.0.0.1" in changes[0] and "-> 200 (issue29-test)" in changes[0], changes
    assert "-> 401" in changes[1] and re.search(r"access 20\d\d-\d\d-\d\dT", changes[0]), changes
    assert proc.returncode == 0


def test_cli_security_options_are_checked(cli: CliRunner) -> None:
    for args, words in (
        (("--no-auth", "--host", "0.0.0.0"), "--no-auth is for a loopback --host only"),
        (("--token", "short"), "at least 16"),
        (("--token-file", "/no/such/file"), "--token-file /no/such/file: cannot read it"),
        (("--no-auth", "--token", "0123456789abcdef0"), "not allowed with argument"),
        (("--cors-origin", "https://app.example.com/"), "no path, no trailing slash"),
        (("--cors-origin", "*"), "--cors-origin '*'"),
        (("--ice-server", "http://stun.example.com"), "expected stun:HOST"),
        (("--ice-server", "stun:u:p@stun.example.com"), "expected stun:HOST"),
    ):
        done = cli("run", "--source", "demo", "--output", "null", "--frames", "1", *args)
        assert done.returncode == 2 and words in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    done = cli("run", "--source", "demo", "--output", "null", "--frames", "1", "--token", "0123456789abcdef0")
    assert done.returncode == 0 and "--token is visible to every user of this machine (ps)" in done.stderr


def json_of(raw: bytes) -> str:
    return raw.decode(errors="replace")
