"""The event loop's thread at real-time priority, where the OS allows it.

Signalling, every peer's RTP and every session's hand-offs share one asyncio loop. On a loaded core
it waited on the run queue behind the filter and codec threads: `benchmarks/streams.py` with three
streams on one core measured loop lag p99 3.8-6.1 ms at normal priority and 1.4-2.0 ms with the loop
thread at SCHED_RR. Audio and video servers raise their real-time threads the same way (PipeWire and
JACK, through rtkit or RLIMIT_RTPRIO).

Only the loop is raised: with SCHED_RESET_ON_FORK the threads it starts afterwards (executors,
aiortc's codecs, the pipeline's workers) are normal threads. The loop does no per-frame work, and
Linux caps real-time threads at 95 % of each second (sched_rt_runtime_us), so it cannot starve them.
Without the right (CAP_SYS_NICE, or an RLIMIT_RTPRIO of 1 or more) the loop stays at normal priority.
"""

from __future__ import annotations

import logging
import os
import sys

log = logging.getLogger("livefuse")

REALTIME = "realtime"
NORMAL = "normal"
RT_PRIORITY = 1  # the lowest real-time priority: above every normal thread, below the kernel's own


def raise_loop_priority() -> str:
    """Put the calling thread (the loop's) at real-time priority; returns what it got, for /api/status."""
    if not sys.platform.startswith("linux"):
        return f"{NORMAL} (real-time scheduling is Linux's; not on this system)"
    try:
        os.sched_setscheduler(0, os.SCHED_RR | os.SCHED_RESET_ON_FORK, os.sched_param(RT_PRIORITY))
    except OSError as exc:
        log.info(
            "the event loop runs at normal priority (real-time not permitted: %s); under load its lag "
            "may grow: allow it with `ulimit -r 1` (RLIMIT_RTPRIO) or CAP_SYS_NICE",
            exc.strerror or exc,
        )
        return f"{NORMAL} (real-time not permitted)"
    return REALTIME
