"""Who else holds a device open: how a virtual camera output tells whether any application watches it.

v4l2loopback does not count its readers for us, so, as Linux-Fake-Background-Webcam does, the processes'
open files are looked at: a process other than this one with the device open is a reader (OBS, a browser,
Zoom). This reads /proc/PID/fd links, so it sees readers that opened the device before livefuse started.
Elsewhere (macOS, Windows: OBS's and Unity Capture's cameras) no such count exists: `readers` is None,
and the output counts as watched.
"""

from __future__ import annotations

import os
from pathlib import Path


def readers(device: str, proc: Path = Path("/proc"), own_pid: int | None = None) -> int | None:
    """How many other processes hold `device` open; None where the OS cannot tell."""
    if not proc.is_dir():
        return None
    try:
        target = os.path.realpath(device)
    except OSError:
        return None
    own = str(own_pid if own_pid is not None else os.getpid())
    count = 0
    for entry in os.scandir(proc):
        if not entry.name.isdigit() or entry.name == own:
            continue
        try:
            fds = os.scandir(os.path.join(entry.path, "fd"))
        except OSError:  # gone, or another user's process: not readable
            continue
        with fds:
            for fd in fds:
                try:
                    if os.readlink(fd.path) == target:
                        count += 1
                        break
                except OSError:
                    continue
    return count
