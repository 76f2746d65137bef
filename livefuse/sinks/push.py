"""A network push (rtmp://, srt://, udp://) run by a child process, so no server can stall the daemon.

FFmpeg holds the GIL while it connects and writes: a server that accepts and never answers froze the whole
daemon (HTTP, capture, every session). Here the daemon only hands frames and sound to a child process
(push_child.py) over a pipe, never waiting more than a moment; the child encodes, connects and reconnects.
A child that stops answering (a connect or a write that hangs) is killed and started again. The state of
the connection is in the output's stats: connecting, connected, or retrying with the last error.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import subprocess
import sys
import threading
import time
from typing import IO

import numpy as np

from livefuse.audio.chunk import AudioFormat
from livefuse.audio.feed import AudioFeed
from livefuse.frame import Frame
from livefuse.redact import redact
from livefuse.sinks.base import Sink
from livefuse.sinks.push_wire import AUDIO, AUDIO_HEAD, CONFIG, END, VIDEO, VIDEO_HEAD, pack
from livefuse.stats import OutputStats
from livefuse.threads import start_thread

log = logging.getLogger("livefuse.output")

CONNECT_TIMEOUT_S = 10.0  # a server that has not taken the stream by then is given up on, and tried again
STALL_S = 5.0  # a connected push that wrote nothing for this long is stuck: restarted
CLOSE_WAIT_S = 5.0  # for the child to flush and close the stream at the end
RESPAWN_S = 2.0
WRITE_WAIT_S = 0.5  # the longest `write` waits for the child to take a frame
MAX_VIDEO = 2
MAX_AUDIO = 500  # chunks waiting for the child; older ones are dropped while it is stuck

Message = list[bytes | memoryview]


class PushSink(Sink):
    """Feeds a push's child process; `write` never waits more than WRITE_WAIT_S, whatever the server does."""

    def __init__(
        self, url: str, size: tuple[int, int], fps: float, audio: AudioFormat | None = None, *, name: str | None = None
    ) -> None:
        self.name = name or redact(url)  # the stats' key, shown in /api/status and /metrics: no stream key
        self.repeat_when_idle = True
        self.audio_feed = AudioFeed(audio) if audio is not None else None
        self.size = size
        self.state = "starting"
        self.error = ""
        self.restarts = 0
        self.written = 0
        self._config = json.dumps(
            {
                "url": url,
                "width": size[0],
                "height": size[1],
                "fps": fps,
                "audio": None if audio is None else {"rate": audio.rate, "channels": audio.channels},
            }
        ).encode()
        self._cond = threading.Condition()
        self._video: collections.deque[Message] = collections.deque()
        self._audio: collections.deque[Message] = collections.deque()
        self._end = False
        self._closing_since: float | None = None
        self._state_since = time.monotonic()
        self._progress_at = time.monotonic()
        self._stats: OutputStats | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._supervisor = start_thread(self._supervise, f"livefuse-push-{id(self):x}")

    def bind_stats(self, stats: OutputStats) -> None:
        self._stats = stats
        stats.state = self.describe()

    def describe(self) -> str:
        return f"{self.state}: {self.error}" if self.error and self.state != "connected" else self.state

    def wait_connected(self, timeout: float) -> bool:
        """True once the server took the stream (within `timeout` s): for callers that must not lose a frame."""
        deadline = time.monotonic() + timeout
        while self.state != "connected" and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.state == "connected"

    def write(self, frame: Frame) -> None:
        audio = self.audio_feed.take_all() if self.audio_feed is not None else []
        image = np.ascontiguousarray(frame.image)
        video = pack(VIDEO, VIDEO_HEAD.pack(frame.capture_ns), image.data.cast("B"))
        deadline = time.monotonic() + WRITE_WAIT_S
        with self._cond:
            for chunk in audio:
                samples = np.ascontiguousarray(chunk.samples, np.float32)
                self._audio.append(
                    pack(AUDIO, AUDIO_HEAD.pack(chunk.capture_ns, chunk.rate, chunk.channels), samples.data.cast("B"))
                )
            while len(self._audio) > MAX_AUDIO:
                self._audio.popleft()
            while (
                len(self._video) >= MAX_VIDEO
                and self.state == "connected"
                and (left := deadline - time.monotonic()) > 0
            ):  # an encoder behind pushes back, briefly
                self._cond.wait(left)
            if len(self._video) >= MAX_VIDEO:
                self._video.popleft()  # not connected or stuck: the newest frame matters, not the oldest
            self._video.append(video)
            self._cond.notify_all()

    def close(self) -> None:
        """Let the child flush and close the stream (CLOSE_WAIT_S at most), then end it."""
        with self._cond:
            self._end = True
            self._closing_since = time.monotonic()
            self._cond.notify_all()
        try:
            self._supervisor.result(timeout=CLOSE_WAIT_S + 5)
        except TimeoutError:
            log.error("push %s did not end", self.name)

    # --- the supervisor thread: one child after another until closed

    def _supervise(self) -> None:
        while True:
            try:
                proc = self._spawn()
            except OSError as exc:  # out of processes or descriptors: tried again, like a failed connect
                self._set_state("retrying", f"cannot start the push process: {exc.strerror or exc}")
            else:
                self._watch(proc)
            if self._end:
                return
            self.restarts += 1
            with self._cond:
                self._cond.wait_for(lambda: self._end, RESPAWN_S)
            if self._end:
                return

    def _spawn(self) -> subprocess.Popen[bytes]:
        self._set_state("connecting")
        # a session of its own: Ctrl-C in the terminal reaches the daemon, which ends the child
        proc = subprocess.Popen(
            [sys.executable, "-m", "livefuse.sinks.push_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
            start_new_session=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        self._proc = proc
        self._progress_at = time.monotonic()
        threading.Thread(
            target=self._send, args=(proc.stdin, pack(CONFIG, self._config)), name="livefuse-push-send", daemon=True
        ).start()
        threading.Thread(
            target=self._read_status, args=(proc.stdout,), name="livefuse-push-status", daemon=True
        ).start()
        return proc

    def _watch(self, proc: subprocess.Popen[bytes]) -> None:
        """Until the child ends: kill it when it stops answering, or when closing takes too long."""
        while proc.poll() is None:
            with self._cond:
                self._cond.wait(0.25)
            now = time.monotonic()
            why = ""
            if self._closing_since is not None and now - self._closing_since > CLOSE_WAIT_S:
                why = "it did not finish the stream in time"
            elif (
                self._closing_since is None
                and self.state == "connecting"
                and now - self._state_since > CONNECT_TIMEOUT_S
            ):
                why = f"no answer from the server in {CONNECT_TIMEOUT_S:g} s"
            elif self._closing_since is None and self.state == "connected" and now - self._progress_at > STALL_S:
                why = f"the server took nothing for {STALL_S:g} s"
            if why:
                proc.kill()
                if self._closing_since is None:
                    self._set_state("retrying", why)
        proc.wait()
        if proc.returncode and self._closing_since is None and self.state != "retrying":
            self._set_state("retrying", f"the push process ended with code {proc.returncode}")
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
        with self._cond:
            self._cond.notify_all()  # its sender thread stops

    def _send(self, pipe: IO[bytes], config: Message) -> None:
        """Sender thread of one child: messages in order (sound first), END once closing and drained."""
        proc = self._proc
        assert proc is not None
        try:
            _write_all(pipe, config)
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._audio or self._video or self._end or proc.poll() is not None)
                    if proc.poll() is not None:
                        return
                    queue = self._audio if self._audio else self._video
                    message = queue.popleft() if queue else pack(END)
                    self._cond.notify_all()
                _write_all(pipe, message)
                if message[0][:1] == END:
                    return
        except (OSError, ValueError):
            return  # the child ended: the supervisor starts the next one

    def _read_status(self, pipe: IO[bytes]) -> None:
        for line in pipe:
            try:
                status = json.loads(line)
            except ValueError:
                continue
            self._progress_at = time.monotonic()
            if "written" in status:
                self.written = int(status["written"])
            if "state" in status and status["state"] != "closed":
                self._set_state(str(status["state"]), str(status.get("error", "")))

    def _set_state(self, state: str, error: str = "") -> None:
        error = redact(error)  # FFmpeg's errors name the URL, stream key and all
        if state == self.state and error == self.error:
            return
        if state == "retrying" and error != self.error:
            log.warning("push %s: %s; retrying in the background", self.name, error)
        elif state == "connected":
            log.info("push %s connected", self.name)
        self.state, self.error = state, error
        self._state_since = time.monotonic()
        if self._stats is not None:
            self._stats.state = self.describe()


def _write_all(pipe: IO[bytes], message: Message) -> None:
    fd = pipe.fileno()
    for part in message:
        view = memoryview(part).cast("B")
        while view:
            view = view[os.write(fd, view) :]
