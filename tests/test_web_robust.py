"""The control API under bad input and stage faults, against a live daemon (real server, real pipeline)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from browser_fixtures import daemons_fixture, demo_clip, http, http_json, launch_chromium, web_presets_fixture
from prometheus_client.parser import text_string_to_metric_families

from livefuse.frame import Frame
from livefuse.stage import Param, Stage, StageContext, StageSpec
from livefuse.stages.registry import STAGES, register

__all__ = ["daemons_fixture", "web_presets_fixture"]  # the `daemons` and `web_presets` fixtures

JSON = {"Content-Type": "application/json"}
FAULT = threading.Event()  # set: the faulty stage raises on every frame


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def patch_raw(daemon: Any, text: str) -> tuple[int, Any]:
    """PATCH /api/preset/params with this exact body text (json.dumps would never write NaN)."""
    return http_json("PATCH", daemon.url + "/api/preset/params", data=text.encode(), headers=JSON)


def test_the_nan_calls_are_refused_and_the_stages_keep_working(web_presets: Path, daemons: Any) -> None:
    daemon = daemons("anonymise", size=(320, 180), fps=10.0).start()
    assert wait_for(lambda: daemon.pipeline.stats.frames_out > 3)
    status, body = patch_raw(daemon, '{"stage": "anonymise", "params": {"strength": NaN}}')
    assert status == 400 and "NaN" in body["error"], body
    status, body = patch_raw(daemon, '{"stage": "anonymise", "params": {"strength": -Infinity}}')
    assert status == 400, body
    status, body = patch_raw(daemon, '{"stage": "anonymise", "params": {"strength": 1e999}}')
    assert status == 400 and "stage anonymise: strength = inf" in body["error"] and "from 0 to 1" in body["error"]
    status, body = patch_raw(daemon, '{"stage": "anonymise", "params": {"hold_frames": ' + "9" * 5000 + "}}")
    assert status == 400, body
    status, body = http_json(
        "PATCH", daemon.url + "/api/preset/params", {"stage": "anonymise", "params": {"colour": "#" + "a" * 5000}}
    )
    assert status == 400 and "at most 1024 characters" in body["error"] and len(body["error"]) < 300
    assert daemon.runtime.preset.stages[1].params["strength"] == 0.8

    assert http_json("PUT", daemon.url + "/api/preset", {"name": "background-blur"})[0] == 200
    status, body = patch_raw(daemon, '{"stage": "background", "params": {"strength": NaN}}')
    assert status == 400 and "NaN" in body["error"], body
    # a valid value still applies, and no frame ever failed in a stage
    assert (
        http_json("PATCH", daemon.url + "/api/preset/params", {"stage": "background", "params": {"strength": 0.9}})[0]
        == 200
    )
    count = daemon.pipeline.stats.frames_processed
    assert wait_for(lambda: daemon.pipeline.stats.frames_processed > count + 3)
    assert daemon.pipeline.stats.stage_errors == {}
    assert not any(h["disabled"] for h in daemon.pipeline.chain.health_report())


def test_a_file_parameter_cannot_reach_or_probe_outside_the_preset_folder(web_presets: Path, daemons: Any) -> None:
    daemon = daemons("background-blur", size=(320, 180), fps=10.0).start()
    url = daemon.url + "/api/preset/params"

    def answer(params: dict[str, Any]) -> tuple[int, str]:
        status, body = http_json("PATCH", url, {"stage": "background", "params": params})
        text = body.get("error") or ""
        for value in params.values():
            text = text.replace(repr(value), "VALUE")
        return status, text

    outside = [
        "../../../../etc/shadow",
        "../../../../etc/no-such-file",
        "/etc/passwd",
        "/no/such/file",
        "~/.bashrc",
        "../README.md",
        "../no-such.md",
    ]
    answers = {answer({"image": path}) for path in outside}  # mode blur: the image is not even opened
    answers |= {answer({"mode": "replace", "image": path}) for path in outside}
    assert len(answers) == 1, answers  # the same answer whatever the mode, whether the file exists or not
    status, text = answers.pop()
    assert status == 400 and "inside the preset's folder" in text
    assert daemon.runtime.preset.stages[0].params["mode"] == "blur"
    # a picture shipped in the preset's own folder is fine
    picture = next(
        p for p in (Path(daemon.runtime.preset.path).parent / "pictures").iterdir() if p.suffix in (".jpg", ".png")
    )
    status, body = http_json(
        "PATCH", url, {"stage": "background", "params": {"mode": "replace", "image": f"pictures/{picture.name}"}}
    )
    assert status == 200, body
    status, body = http_json("PATCH", url, {"stage": "background", "params": {"image": "pictures/none.jpg"}})
    assert status == 400 and "no such file" in body["error"]


# -- a stage switched off and back on ---------------------------------------------------------------


class FaultyStage(Stage):
    """Marks frames; raises on every frame while FAULT is set (a filter whose model went bad)."""

    name = "test_faulty"

    def __init__(self, params: dict[str, Any], context: StageContext) -> None:
        self.level = params["level"]

    def process(self, frame: Frame) -> None:
        if FAULT.is_set():
            raise RuntimeError("model output was empty")
        frame.meta["tag"] = self.level

    def update(self, params: dict[str, Any]) -> None:
        self.level = params.get("level", self.level)

    def close(self) -> None:
        pass


def faulty_preset(folder: Path) -> None:
    if "test_faulty" not in STAGES:
        register(
            StageSpec("test_faulty", "fails on demand (tests)", (Param("level", int, 1, min=0, max=9),), FaultyStage)
        )
    (folder / "faulty.toml").write_text('name = "faulty"\n[[stages]]\ntype = "test_faulty"\n')


def disabled_gauge(daemon: Any) -> float:
    raw = http("GET", daemon.url + "/metrics")[2].decode()
    for family in text_string_to_metric_families(raw):
        for sample in family.samples:
            if sample.name == "livefuse_stage_disabled" and sample.labels == {"stage": "test_faulty"}:
                return float(sample.value)
    raise AssertionError("no livefuse_stage_disabled{stage=test_faulty} in /metrics")


def stage_status(daemon: Any) -> dict[str, Any]:
    status = http_json("GET", daemon.url + "/api/status")[1]
    return next(s for s in status["stages"] if s["label"] == "test_faulty") | {"_off": status["disabled_stages"]}


def test_a_failing_stage_is_switched_off_shown_and_switched_back_on(web_presets: Path, daemons: Any) -> None:
    faulty_preset(web_presets)
    FAULT.clear()
    daemon = daemons("faulty", size=(160, 120), fps=20.0).start()
    chain = daemon.pipeline.chain
    chain.disable_after, chain.backoff = 3, (60.0,)  # only a parameter change can bring it back
    assert wait_for(lambda: daemon.emitted and daemon.emitted[-1][2] == 1)
    assert disabled_gauge(daemon) == 0.0
    FAULT.set()
    assert wait_for(lambda: stage_status(daemon)["disabled"])
    shown = stage_status(daemon)
    assert shown["_off"] == ["test_faulty"] and shown["last_error"] == "RuntimeError: model output was empty"
    assert 0 < shown["retry_in_s"] <= 60
    assert disabled_gauge(daemon) == 1.0
    # a parameter change switches it on at once
    FAULT.clear()
    assert (
        http_json("PATCH", daemon.url + "/api/preset/params", {"stage": "test_faulty", "params": {"level": 2}})[0]
        == 200
    )
    assert not stage_status(daemon)["disabled"] and disabled_gauge(daemon) == 0.0
    assert wait_for(lambda: daemon.emitted[-1][2] == 2)
    # and with a short backoff it comes back by itself once the fault clears
    chain.backoff = (0.3, 0.6)
    FAULT.set()
    assert wait_for(lambda: stage_status(daemon)["disabled"])
    time.sleep(1.0)  # a retry or two fail meanwhile
    assert stage_status(daemon)["disabled"] and disabled_gauge(daemon) == 1.0
    FAULT.clear()
    assert wait_for(lambda: not stage_status(daemon)["disabled"], timeout=5.0)
    assert disabled_gauge(daemon) == 0.0 and stage_status(daemon)["_off"] == []
    assert wait_for(lambda: daemon.emitted[-1][2] == 2)
    # loading a preset switches it on at once too (a new chain)
    FAULT.set()
    assert wait_for(lambda: stage_status(daemon)["disabled"])
    FAULT.clear()
    assert http_json("PUT", daemon.url + "/api/preset", {"name": "faulty"})[0] == 200
    assert not stage_status(daemon)["disabled"] and disabled_gauge(daemon) == 0.0


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_shows_a_switched_off_stage_with_its_error(web_presets: Path, daemons: Any, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    faulty_preset(web_presets)
    FAULT.clear()
    daemon = daemons("faulty", size=(160, 120), fps=10.0).start()
    daemon.pipeline.chain.disable_after, daemon.pipeline.chain.backoff = 3, (60.0,)
    clip = demo_clip(tmp_path / "face.y4m", (160, 120), 10, seconds=1.0)
    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright, clip)
        try:
            page = chromium.new_page()
            page.goto(daemon.url + "/")
            page.wait_for_selector('input[name="test_faulty.level"]')
            assert page.locator("#stage-alerts").is_hidden()
            FAULT.set()
            page.wait_for_function("window.livefuse.disabled.includes('test_faulty')", timeout=20_000)
            alert = page.locator("#stage-alerts").inner_text()
            note = page.locator('fieldset[data-stage="test_faulty"] .stage-off').inner_text()
            # the user switches it back on by moving its control
            FAULT.clear()
            page.evaluate("""() => { const input = document.querySelector('input[name="test_faulty.level"]');
                                     input.value = 4; input.dispatchEvent(new Event('input')); }""")
            page.wait_for_function("window.livefuse.disabled.length === 0", timeout=20_000)
            hidden = page.locator("#stage-alerts").is_hidden()
        finally:
            chromium.close()
    assert "test_faulty is switched off after errors (RuntimeError: model output was empty)" in alert, alert
    assert "pass through" in alert and "model output was empty" in note
    assert hidden and daemon.runtime.preset.stages[0].params["level"] == 4


def raw_request(daemon: Any, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """One HTTP/1.1 request written byte for byte (headers no client library would send); (status, body)."""
    import socket

    host, port = daemon.url.split("//")[1].rstrip("/").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        if body:
            head += b"Content-Length: %d\n" % len(body)
        if b"Authorization:" not in head and b"Cookie:" not in head:
            head += b"Authorization: Bearer " + TOKEN.encode() + b"\n"
        sock.sendall((head + b"Connection: close\n").replace(b"\n", b"\r\n") + b"\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


TOKEN = "s3cret-token"
MALFORMED = [  # (what, request head, body, words the 4xx must say): never a 500
    ("host", b"GET /api/status HTTP/1.1\nHost: [::1\n", b"", "malformed Host"),
    (
        "origin",
        b"PUT /api/preset HTTP/1.1\nHost: 127.0.0.1\nOrigin: http://[::1\nContent-Type: application/json\n",
        b"{}",
        "malformed Origin",
    ),
    (
        "authorization",
        "GET /api/status HTTP/1.1\nHost: 127.0.0.1\nAuthorization: Bearer t\u00f6k\u00e9n\n".encode(),
        b"",
        "token is required",
    ),
    (
        "authorization",
        b"GET /api/status HTTP/1.1\nHost: 127.0.0.1\nAuthorization: Bearer \xff\xfe\n",
        b"",
        "token is required",
    ),
    (
        "cookie",
        'GET /api/status HTTP/1.1\nHost: 127.0.0.1\nCookie: livefuse_token=\u00e9\u00e9; a="\xff\n'.encode(),
        b"",
        "token is required",
    ),
    (
        "cookie",
        b"GET /api/status HTTP/1.1\nHost: 127.0.0.1\nCookie: livefuse_token=\xff\xfe\n",
        b"",
        "token is required",
    ),
    (
        "charset",
        b"PUT /api/preset HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json; charset=bogus\n",
        b"{}",
        "bogus",
    ),
    (
        "charset",
        b"POST /whip HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/sdp; charset=bogus\n",
        b"v=0",
        "charset 'bogus' is unknown",
    ),
    (
        "surrogate",
        b"PUT /api/preset HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n",
        b'{"name": "\\ud800"}',
        "lone surrogate",
    ),
    (
        "surrogate",
        b"PATCH /api/preset/params HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n",
        b'{"stage": "anonymise", "params": {"colour": "\\ud800"}}',
        "lone surrogate",
    ),
    (
        "surrogate",
        b"PUT /api/preset HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/json\n",
        '{"name": "\udcff"}'.encode("utf-8", "surrogatepass"),
        "malformed JSON",
    ),
    ("expect", b"DELETE /whip/x HTTP/1.1\nHost: 127.0.0.1\nExpect: \xc2\n", b"", "unknown Expect"),
    (
        "surrogate",
        b"POST /whip?preset=%ED%A0%80 HTTP/1.1\nHost: 127.0.0.1\nContent-Type: application/sdp\n",
        b"v=0",
        "unknown preset",
    ),
]


def test_malformed_headers_and_text_are_4xx_never_500(web_presets: Path, daemons: Any) -> None:
    """Issue 29: a malformed Host or Origin, a non-ASCII Authorization or Cookie, `charset=bogus` and lone
    surrogates were 500s with tracebacks (some before the token check)."""
    daemon = daemons("anonymise", size=(160, 120), fps=10.0, token=TOKEN).start()
    answers = [(what, *raw_request(daemon, head, body), words) for what, head, body, words in MALFORMED]
    print("\n" + "\n".join(f"{what}: {status} {text[:120]!r}" for what, status, text, _ in answers))
    for what, status, text, words in answers:
        assert 400 <= status < 500 and words in json.loads(text)["error"], (what, status, text)
    assert http_json("GET", daemon.url + "/healthz")[0] == 200


def test_idle_connections_cannot_starve_the_daemon(tmp_path: Path, livefuse_env: dict[str, str]) -> None:
    """Issue 29: under `ulimit -n 256`, 250 idle connections made /healthz time out for 50 s, and asyncio
    logged 178 MB of tracebacks. Past the cap a connection is answered 503 at once; idle ones are closed."""
    import resource
    import socket
    import subprocess
    import sys

    from livefuse.web.connections import IDLE_TIMEOUT_S

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "daemon.log"
    with log.open("wb") as stderr:
        daemon = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "livefuse",
                "run",
                "--source",
                "demo",
                "--size",
                "160x120",
                "--fps",
                "10",
                "--preset",
                "passthrough",
                "--output",
                "preview",
                "--port",
                str(port),
            ],
            cwd=tmp_path,
            env=livefuse_env,
            stderr=stderr,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256)),
        )
    idle: list[socket.socket] = []
    try:
        assert wait_for(lambda: healthz(base) == 200, 40), "the daemon did not start"
        for _ in range(250):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        time.sleep(0.5)
        started = time.monotonic()
        busy = healthz(base)
        took = time.monotonic() - started
        recovered_at = time.monotonic()
        assert wait_for(lambda: healthz(base) == 200, IDLE_TIMEOUT_S + 10), "/healthz never came back"
        recovered = time.monotonic() - recovered_at
        print(
            f"\nwith 250 idle connections: /healthz {busy} in {took * 1000:.0f} ms, 200 again after "
            f"{recovered:.1f} s; log {log.stat().st_size} bytes"
        )
        assert busy in (200, 503) and took < 1.0
        assert recovered <= IDLE_TIMEOUT_S + 5
        assert log.stat().st_size < 100_000
        assert daemon.poll() is None
    finally:
        for sock in idle:
            sock.close()
        daemon.terminate()
        daemon.wait(30)


def healthz(base: str) -> int:
    try:
        return http("GET", base + "/healthz", timeout=2)[0]
    except OSError:
        return 0


def test_a_body_that_never_comes_is_answered_408(
    web_presets: Path, daemons: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request that promises a body and sends a tenth of it holds no handler past the body deadline."""
    import socket

    from livefuse.web import connections

    monkeypatch.setattr(connections, "BODY_TIMEOUT_S", 1.0)
    daemon = daemons("anonymise", size=(160, 120), fps=10.0).start()
    host, port = daemon.url.split("//")[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"PUT /api/preset HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"name":'
        )
        started = time.monotonic()
        answer = sock.recv(65536)
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408") and b"took more than 1 s" in answer, answer
    assert took < 5, took


HEADER_NAMES = [
    "Host",
    "Origin",
    "Authorization",
    "Cookie",
    "Content-Type",
    "If-Match",
    "User-Agent",
    "Access-Control-Request-Method",
    "Access-Control-Request-Headers",
    "Accept",
    "Range",
    "Transfer-Encoding",
    "Expect",
    "X-Forwarded-For",
    "Connection",
]
ENDPOINTS = [
    ("GET", "/"),
    ("GET", "/static/app.js"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
    ("GET", "/api/status"),
    ("GET", "/api/preset"),
    ("PUT", "/api/preset"),
    ("PATCH", "/api/preset/params"),
    ("POST", "/api/offer"),
    ("POST", "/api/source-face"),
    ("DELETE", "/api/peers/x"),
    ("GET", "/api/sessions"),
    ("GET", "/api/sessions/x"),
    ("PUT", "/api/sessions/x/preset"),
    ("PATCH", "/api/sessions/x/params"),
    ("POST", "/api/sessions/x/outputs"),
    ("DELETE", "/api/sessions/x/outputs/1"),
    ("OPTIONS", "/whip"),
    ("POST", "/whip"),
    ("OPTIONS", "/whip/x"),
    ("PATCH", "/whip/x"),
    ("DELETE", "/whip/x"),
    ("OPTIONS", "/whep/main"),
    ("POST", "/whep/main"),
    ("PATCH", "/whep/main/x"),
    ("DELETE", "/whep/main/x"),
    ("GET", "/nowhere"),
]
FUZZ_ORIGIN = "http://app.example.test:3000"


def sample_process(pid: int | None = None) -> dict[str, float]:
    import gc

    import psutil

    gc.collect()
    process = psutil.Process(pid)
    return {"fds": process.num_fds(), "threads": process.num_threads(), "rss_mb": process.memory_info().rss / 2**20}


def test_fuzzed_headers_on_every_endpoint_never_5xx_and_leave_nothing_behind(web_presets: Path, daemons: Any) -> None:
    """Issue 29: any header (bytes no client sends included) on any endpoint is a 2xx-4xx, and the daemon's
    descriptors, threads and memory come back to where they were. Hypothesis runs derandomized: CI sees the
    same requests each run."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    daemon = daemons("anonymise", size=(160, 120), fps=10.0, token=TOKEN, cors_origins=(FUZZ_ORIGIN,)).start()
    value_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")) | st.sampled_from(
        [
            b"[::1",
            b"http://[::1",
            b"Bearer " + TOKEN.encode(),
            b"Bearer \xff\xfe",
            b"livefuse_token=" + TOKEN.encode(),
            b"application/json; charset=bogus",
            b"application/sdp",
            b"application/trickle-ice-sdpfrag",
            b"*",
            b'"x"',
            FUZZ_ORIGIN.encode(),
            b"http://evil.test",
            b"127.0.0.1",
            b"chunked",
            b"100-continue",
            "t\u00f6k\u00e9n".encode(),
            b"\x00",
            b"a" * 9000,
        ]
    )
    headers = st.lists(
        st.tuples(st.sampled_from(HEADER_NAMES) | st.text("abcXYZ-", min_size=1, max_size=12).map(str), value_bytes),
        max_size=6,
    )
    bodies = st.sampled_from(
        [
            b"",
            b"{}",
            b'{"name": "passthrough"}',
            b"v=0\r\n",
            b"\xff\xfe",
            b"[" * 3000,
            b'{"output": "file:a\\u0000b.mp4"}',
            b'{"stage": "anonymise", "params": {}}',
        ]
    )
    answers: dict[int, int] = {}
    failures: list[tuple[Any, ...]] = []

    def send(method: str, path: str, extra: list[tuple[str, bytes]], body: bytes) -> int:
        head = f"{method} {path} HTTP/1.1\n".encode()
        names = {name.lower() for name, _ in extra}
        if "host" not in names:
            head += b"Host: 127.0.0.1\n"
        for name, value in extra:
            if name.lower() not in ("content-length", "connection"):  # raw_request sets both
                head += name.encode() + b": " + value + b"\n"
        try:
            status, _ = raw_request(daemon, head, body)
        except (OSError, ValueError, IndexError) as exc:  # a dropped connection or no status line
            failures.append((method, path, extra, body[:40], repr(exc)))
            return 0
        return status

    def warm_up() -> None:
        for method, path in ENDPOINTS:
            send(method, path, [("Authorization", f"Bearer {TOKEN}".encode())], b"{}")

    warm_up()
    sent: list[tuple[tuple[str, str], list[tuple[str, bytes]], bytes]] = []

    @settings(
        max_examples=1500, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.sampled_from(ENDPOINTS), headers, bodies)
    def one(endpoint: tuple[str, str], extra: list[tuple[str, bytes]], body: bytes) -> None:
        sent.append((endpoint, extra, body))
        status = send(*endpoint, extra, body)
        answers[status] = answers.get(status, 0) + 1
        if status >= 500 or status == 0:
            failures.append((*endpoint, extra, body[:40], status))

    started = time.monotonic()
    one()
    took = time.monotonic() - started
    # the same requests again, measured without Hypothesis's own memory: the daemon must come back to this
    time.sleep(1.0)
    base = sample_process()
    for endpoint, extra, body in sent:
        send(*endpoint, extra, body)
    time.sleep(2.0)  # connections closed, memory given back
    after = sample_process()
    print(
        f"\nheader fuzz: {sum(answers.values())} requests in {took:.1f} s, answers {dict(sorted(answers.items()))};"
        f" before {base}, after {after}"
    )
    assert not failures, failures[:5]
    assert after["fds"] <= base["fds"] + 2, (base, after)
    assert after["threads"] <= base["threads"] + 2, (base, after)
    assert after["rss_mb"] <= base["rss_mb"] + 20, (base, after)
    assert http_json("GET", daemon.url + "/healthz")[0] == 200
