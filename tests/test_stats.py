"""PipelineStats is written from several threads at once and read while they write: nothing is lost."""

from __future__ import annotations

import threading

from livefuse.stats import PipelineStats

THREADS = 8
EACH = 5000


def test_counts_from_many_threads_lose_nothing_and_snapshots_read_meanwhile() -> None:
    stats = PipelineStats()
    start = threading.Barrier(THREADS + 1)
    snapshots: list[dict[str, object]] = []

    def writer(n: int) -> None:
        start.wait()
        for i in range(EACH):
            stats.count(frames_in=1, frames_covered=1)
            stats.stage_error(f"stage-{i % 3}")
            stats.record_stage(f"stage-{n}-{i % 5}", 1000)
            stats.record_output(2_000_000, i + 1)

    def reader() -> None:
        start.wait()
        for _ in range(50):
            snapshots.append(stats.snapshot())

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    threads.append(threading.Thread(target=reader))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    total = THREADS * EACH
    assert stats.frames_in == stats.frames_covered == stats.frames_out == total
    assert sum(stats.stage_errors.values()) == total
    assert sum(rec.count for rec in stats.stages.values()) == total and len(stats.stages) == THREADS * 5
    assert stats.latency.count == total
    assert len(snapshots) == 50  # none raised while the dicts grew


def test_a_snapshot_is_the_recorders_as_they_were() -> None:
    stats = PipelineStats()
    stats.record_stage("a", 3_000_000)
    snapshot = stats.snapshot()
    stats.record_stage("a", 9_000_000)
    assert snapshot["stages_ms"] == {"a": {"p50": 3.0, "p95": 3.0, "p99": 3.0, "max": 3.0}}
