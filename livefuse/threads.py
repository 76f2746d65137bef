"""Threads: a daemon thread whose end the asyncio loop can await (`asyncio.wrap_future(start_thread(...))`),
and how many cores this process may use."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future


def start_thread(target: Callable[[], None], name: str) -> Future[None]:
    """Run `target` on a new daemon thread; the future resolves (or holds its exception) when it returns."""
    finished: Future[None] = Future()

    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the thread
            finished.set_exception(exc)
        else:
            finished.set_result(None)

    threading.Thread(target=run, name=name, daemon=True).start()
    return finished


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity (`taskset`), where the OS has one."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
