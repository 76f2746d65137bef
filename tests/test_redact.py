"""Secrets out of URLs (issue 29): user info, RTMP stream keys and secret query values become ***."""

from __future__ import annotations

import logging

import pytest

from livefuse.redact import RedactingFilter, redact


@pytest.mark.parametrize(("url", "shown"), [
    ("rtsp://user:pa:ss@cam.local:554/stream1", "rtsp://***@cam.local:554/stream1"),
    ("rtmp://live.example.com/app/abc123?bitrate=4500k", "rtmp://live.example.com/app/***?bitrate=4500k"),
    ("rtmps://a.rtmp.youtube.com:443/live2/xxxx-yyyy", "rtmps://a.rtmp.youtube.com:443/live2/***"),
    ("srt://h:9000?passphrase=hunter2&latency=200", "srt://h:9000?passphrase=***&latency=200"),
    ("udp://127.0.0.1:5000?pkt_size=1316", "udp://127.0.0.1:5000?pkt_size=1316"),
    ("rtmp://host/app", "rtmp://host/app"),
    ("cannot open output rtmp://u:p@h/app/k: Connection refused",
     "cannot open output rtmp://***@h/app/***: Connection refused"),
    ("http://127.0.0.1:8080/?token=abc&x=1", "http://127.0.0.1:8080/?token=***&x=1"),
    ("file:recordings/talk.mp4", "file:recordings/talk.mp4"),
])
def test_urls_are_redacted(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_log_records_are_redacted() -> None:
    record = logging.LogRecord("livefuse", logging.INFO, __file__, 1, "push %s failed: %s", (
        "rtmp://h/live/KEY", "rtsp://me:secret@cam/x"), None)
    assert RedactingFilter().filter(record)
    assert record.getMessage() == "push rtmp://h/live/*** failed: rtsp://***@cam/x"
