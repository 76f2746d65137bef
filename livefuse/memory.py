"""Keep freed frame buffers in the heap, so per-frame arrays do not page-fault.

A 1280x720 BGR frame is 2.7 MB and a float mask 3.7 MB: above glibc's mmap threshold,
so by default each such temporary is mapped fresh (the kernel zero-fills every page on
first touch) and unmapped when freed. At 30-150 frames a second that is thousands of page
faults per frame: measured here, the background stage's composite step took 9 ms instead
of 4.4 ms. Raising the mmap and trim thresholds lets freed buffers be reused in place.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

log = logging.getLogger("livefuse")

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # frames and masks up to 8K come from the heap
TRIM_THRESHOLD = 512 << 20  # keep up to this much freed memory for reuse


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 - glibc has both; musl and others have neither
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return None
    return libc


def keep_frame_memory() -> bool:
    """Tune glibc's malloc for large per-frame buffers; True when applied (glibc on Linux only)."""
    libc = _glibc()
    if libc is None:
        return False
    mallopt = libc.mallopt
    applied = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    log.debug("malloc thresholds for frame buffers %s", "set" if applied else "not set")
    return applied


def release_freed_memory() -> bool:
    """Give the memory freed since back to the system (glibc only; True when done).

    For rare, large frees such as a WebRTC peer leaving: its encoder ran on pool threads, each with its
    own malloc arena, and the thresholds above keep freed memory for reuse, so without this a daemon
    that once served many viewers would stay as big as it was then.
    """
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
