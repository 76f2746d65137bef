"""Cross-stream batching: the requests many streams make of one model, run as one batch.

Each stream's chain runs on its own worker threads and calls its model once per frame. With a
`Batcher` between them and the model, a call waits (at most `max_delay_ms`, default 2 ms) for calls
from other streams, and the first caller runs them all as one batch along the model's first axis:
when `max_batch` have gathered, or when the oldest has waited long enough. Each caller gets back its
own rows, so results return to their own streams, in the order each stream asked.

No thread of its own: a waiting caller, when no batch is running, leads the next one (waits for it to
fill, runs it, hands out the results); the others wait for theirs, and one of them leads the next.
A model needs a dynamic first axis (engine/batch_axis.py gives one to fixed-batch-1 models, and
checks the rewrite per item).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from livefuse.stats import Recorder

DEFAULT_MAX_DELAY_MS = 2.0
DEFAULT_MAX_BATCH = 8

RunBatch = Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]


@dataclass
class _Request:
    feeds: Mapping[str, np.ndarray]
    queued_ns: int
    rows: int
    finished: bool = False  # set under the batcher's lock once its batch has run
    result: dict[str, np.ndarray] | None = None
    error: BaseException | None = None

    def signature(self) -> tuple[tuple[str, tuple[int, ...], str], ...]:
        """What must match to share a batch: names, shapes past the first axis, dtypes."""
        return tuple(sorted((n, tuple(v.shape[1:]), v.dtype.str) for n, v in self.feeds.items()))


class Batcher:
    """Gathers `run` calls from many threads into batches of up to `max_batch` items for `run_batch`."""

    def __init__(
        self,
        run_batch: RunBatch,
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_delay_ms: float = DEFAULT_MAX_DELAY_MS,
        name: str = "",
    ) -> None:
        if max_batch < 1 or not max_delay_ms >= 0:
            raise ValueError("max_batch must be at least 1 and max_delay_ms at least 0")
        self.name = name
        self.max_batch = max_batch
        self.max_delay_ns = int(max_delay_ms * 1e6)
        self._run_batch = run_batch
        self._cond = threading.Condition()
        self._queue: list[_Request] = []
        self._leading = False
        self.batch_sizes: Counter[int] = Counter()  # batches run, by the number of items in them
        self.queue_delay = Recorder()  # how long each request waited before its batch ran (ns)

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one request (its first axis: its items, usually 1) with whatever others are waiting."""
        first = next(iter(feeds.values()))
        request = _Request(feeds, time.monotonic_ns(), int(first.shape[0]))
        with self._cond:
            self._queue.append(request)
            self._cond.notify_all()
            while not request.finished:
                if self._leading or not self._queue:
                    self._cond.wait()
                    continue
                self._leading = True  # this caller runs the next batch (its own request is in it or in a later one)
                batch = self._gather()
                self._cond.release()
                try:
                    self._execute(batch)
                finally:
                    self._cond.acquire()
                    self._leading = False
                    for done in batch:
                        done.finished = True
                    self._cond.notify_all()
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _gather(self) -> list[_Request]:
        """(Holding the lock) wait until the batch is full or its oldest request is due; take it."""
        due = self._queue[0].queued_ns + self.max_delay_ns
        while self._items() < self.max_batch:
            left = due - time.monotonic_ns()
            if left <= 0:
                break
            self._cond.wait(left / 1e9)
        batch = self._take()
        self.batch_sizes[sum(r.rows for r in batch)] += 1
        now = time.monotonic_ns()
        for request in batch:
            self.queue_delay.add(now - request.queued_ns)
        return batch

    def _items(self) -> int:
        return sum(r.rows for r in self._queue)

    def _take(self) -> list[_Request]:
        """The oldest request and those after it that fit with it (same shapes), up to `max_batch` items."""
        head = self._queue[0]
        batch, rows, kind = [head], head.rows, head.signature()
        for request in self._queue[1:]:
            if rows + request.rows > self.max_batch:
                break
            if request.signature() == kind:
                batch.append(request)
                rows += request.rows
        taken = {id(r) for r in batch}
        self._queue = [r for r in self._queue if id(r) not in taken]
        return batch

    def _execute(self, batch: list[_Request]) -> None:
        try:
            if len(batch) == 1:  # alone: no copy into a batch
                outputs = self._run_batch(dict(batch[0].feeds))
                batch[0].result = outputs
            else:
                names = list(batch[0].feeds)
                joined = {n: np.concatenate([r.feeds[n] for r in batch], axis=0) for n in names}
                outputs = self._run_batch(joined)
                offset = 0
                for request in batch:
                    rows = slice(offset, offset + request.rows)
                    request.result = {n: v[rows] for n, v in outputs.items()}
                    offset += request.rows
        except Exception as exc:  # noqa: BLE001 - every caller of the batch gets the error
            for request in batch:
                request.error = exc

    def sizes(self) -> dict[int, int]:
        """Batches run so far, by the items in them (a copy: batches keep running meanwhile)."""
        with self._cond:
            return dict(sorted(self.batch_sizes.items()))

    def delay(self) -> dict[str, float]:
        """Queue delay percentiles, milliseconds."""
        with self._cond:
            return self.queue_delay.summary()

    def figures(self) -> dict[str, object]:
        """Batch sizes formed and queue delay percentiles (ms), for /metrics and the benchmark."""
        return {"batches": self.sizes(), "queue_delay_ms": self.delay()}
