"""What the log shows (issue 29): URLs without their secrets (user info, RTMP stream keys, secret query
values become ***), and a storm of identical event-loop errors once, with its count."""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from livefuse.logs import QuietLoopErrors
from livefuse.redact import RedactingFilter, redact


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("rtsp://user:pa:ss@cam.local:554/stream1", "rtsp://***@cam.local:554/stream1"),
        ("rtmp://live.example.com/app/abc123?bitrate=4500k", "rtmp://live.example.com/app/***?bitrate=4500k"),
        ("rtmps://a.rtmp.youtube.com:443/live2/xxxx-yyyy", "rtmps://a.rtmp.youtube.com:443/live2/***"),
        ("srt://h:9000?passphrase=hunter2&latency=200", "srt://h:9000?passphrase=***&latency=200"),
        ("udp://127.0.0.1:5000?pkt_size=1316", "udp://127.0.0.1:5000?pkt_size=1316"),
        ("rtmp://host/app", "rtmp://host/app"),
        (
            "cannot open output rtmp://u:p@h/app/k: Connection refused",
            "cannot open output rtmp://***@h/app/***: Connection refused",
        ),
        ("http://127.0.0.1:8080/?token=abc&x=1", "http://127.0.0.1:8080/?token=***&x=1"),
        ("file:recordings/talk.mp4", "file:recordings/talk.mp4"),
    ],
)
def test_urls_are_redacted(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_log_records_are_redacted() -> None:
    record = logging.LogRecord(
        "livefuse",
        logging.INFO,
        __file__,
        1,
        "push %s failed: %s",
        ("rtmp://h/live/KEY", "rtsp://me:secret@cam/x"),
        None,
    )
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "push rtmp://h/live/*** failed: rtsp://***@cam/x"


def test_a_storm_of_loop_errors_is_reported_once_with_its_count(caplog: pytest.LogCaptureFixture) -> None:
    """Issue 29: out of descriptors, asyncio logged a traceback for every accept() retry (178 MB in one run)."""
    loop = asyncio.new_event_loop()
    handler = QuietLoopErrors(interval_s=0.2)
    loop.set_exception_handler(handler)
    error = OSError(24, "Too many open files")
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"), socket.socket() as sock:
            for _ in range(1000):
                loop.call_exception_handler(
                    {"message": "socket.accept() out of system resource", "exception": error, "socket": sock}
                )
            time.sleep(0.25)
            loop.call_exception_handler(
                {"message": "socket.accept() out of system resource", "exception": error, "socket": sock}
            )
            loop.call_exception_handler({"message": "something else", "exception": error})
    finally:
        loop.close()
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert len(messages) == 3, messages
    assert "and 999 more like it" in messages[1] and messages[2].startswith("something else")
