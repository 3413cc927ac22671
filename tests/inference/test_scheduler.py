"""The frame scheduler with real threads: batching, fairness, skips, ordering, failures, close."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator

import pytest

from vigil.inference.scheduler import Scheduler, SchedulerStats

TIMEOUT = 30.0  # generous: machines are shared; nothing here asserts a duration

Job = tuple[str, int]  # (stream, sequence number)


def wait_for(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.005)


class Recorder:
    """A run() that records its batches and can be held (to pile jobs up) or slowed down."""

    def __init__(self, *, delay: float = 0.0, fail: Callable[[str, list[Job]], bool] | None = None):
        self.lock = threading.Lock()
        self.batches: list[tuple[str, list[Job]]] = []
        self.delay = delay
        self.fail = fail
        self.hold = threading.Event()
        self.hold.set()
        self.entered = threading.Event()
        self.gate: threading.Semaphore | None = None  # when set, each run waits for a permit
        self.started = 0
        self.running: Counter[str] = Counter()
        self.max_running_per_stream = 0
        self.seen: defaultdict[str, list[int]] = defaultdict(list)

    def __call__(self, group: str, jobs: list[Job]) -> None:
        with self.lock:
            for stream, seq in jobs:
                self.running[stream] += 1
                self.max_running_per_stream = max(self.max_running_per_stream, self.running[stream])
                self.seen[stream].append(seq)
            self.started += 1
        try:
            self.entered.set()
            self.hold.wait(TIMEOUT)
            if self.gate is not None:
                assert self.gate.acquire(timeout=TIMEOUT)
            if self.delay:
                time.sleep(self.delay)
            if self.fail is not None and self.fail(group, jobs):
                raise RuntimeError(f"model {group} exploded")
        finally:
            with self.lock:
                for stream, _ in jobs:
                    self.running[stream] -= 1
                self.batches.append((group, list(jobs)))

    def processed(self, stream: str) -> list[int]:
        with self.lock:
            return [seq for _, jobs in self.batches for s, seq in jobs if s == stream]


@pytest.fixture
def make() -> Iterator[Callable[..., Scheduler[Job]]]:
    made: list[Scheduler[Job]] = []

    def factory(run: Callable[[str, list[Job]], None], **kwargs: object) -> Scheduler[Job]:
        options: dict[str, object] = {"max_batch": 4, "batch_timeout_s": 0.0, "workers": 1}
        options.update(kwargs)
        scheduler: Scheduler[Job] = Scheduler(run, **options)  # type: ignore[arg-type]
        made.append(scheduler)
        return scheduler

    yield factory
    for scheduler in made:
        assert scheduler.close(TIMEOUT)


def test_batches_across_streams_up_to_max_batch(make: Callable[..., Scheduler[Job]]) -> None:
    recorder = Recorder()
    scheduler = make(recorder, max_batch=4, workers=1)
    recorder.hold.clear()
    scheduler.offer("warm", "det", ("warm", 0))
    assert recorder.entered.wait(TIMEOUT)  # the only worker is busy: the next jobs pile up
    streams = [f"cam{i}" for i in range(6)]
    for stream in streams:
        assert scheduler.offer(stream, "det", (stream, 1))
    recorder.hold.set()
    wait_for(lambda: all(recorder.processed(s) for s in streams))
    assert [[s for s, _ in jobs] for _, jobs in recorder.batches] == [
        ["warm"],
        ["cam0", "cam1", "cam2", "cam3"],  # round robin order, up to max_batch
        ["cam4", "cam5"],
    ]


def test_batch_waits_for_more_jobs_until_full(make: Callable[..., Scheduler[Job]]) -> None:
    recorder = Recorder()
    # A long timeout: the batch is sent as soon as it is full, not when the timeout runs out.
    scheduler = make(recorder, max_batch=3, batch_timeout_s=TIMEOUT, workers=2)
    for stream in ("a", "b", "c"):
        scheduler.offer(stream, "det", (stream, 0))
    wait_for(lambda: len(recorder.batches) == 1)
    assert sorted(s for s, _ in recorder.batches[0][1]) == ["a", "b", "c"]


def test_a_lone_job_runs_after_the_batch_timeout(make: Callable[..., Scheduler[Job]]) -> None:
    recorder = Recorder()
    scheduler = make(recorder, max_batch=8, batch_timeout_s=0.05)
    scheduler.offer("a", "det", ("a", 0))
    wait_for(lambda: recorder.processed("a") == [0])
    assert scheduler.stats("a") == SchedulerStats(offered=1, skipped=0, processed=1, failed=0)


def test_a_batch_holds_one_group(make: Callable[..., Scheduler[Job]]) -> None:
    recorder = Recorder()
    scheduler = make(recorder, max_batch=4, workers=1)
    recorder.hold.clear()
    scheduler.offer("warm", "people", ("warm", 0))
    assert recorder.entered.wait(TIMEOUT)
    groups = {"a": "people", "b": "plates", "c": "people", "d": "plates", "e": "people"}
    for stream, group in groups.items():
        scheduler.offer(stream, group, (stream, 0))
    recorder.hold.set()
    wait_for(lambda: all(recorder.processed(s) for s in groups))
    formed = [(g, [s for s, _ in jobs]) for g, jobs in recorder.batches[1:]]
    assert formed == [("people", ["a", "c", "e"]), ("plates", ["b", "d"])]


def test_replacing_a_pending_job_is_a_skip(make: Callable[..., Scheduler[Job]]) -> None:
    recorder = Recorder()
    scheduler = make(recorder, workers=1)
    recorder.hold.clear()
    scheduler.offer("warm", "det", ("warm", 0))
    assert recorder.entered.wait(TIMEOUT)
    assert scheduler.offer("a", "det", ("a", 1)) is True
    assert scheduler.offer("a", "det", ("a", 2)) is False
    assert scheduler.offer("a", "det", ("a", 3)) is False
    assert scheduler.pending_count() == 1
    recorder.hold.set()
    wait_for(lambda: recorder.processed("a") == [3])  # only the newest frame runs
    assert scheduler.stats("a") == SchedulerStats(offered=3, skipped=2, processed=1, failed=0)
    assert scheduler.skip_rate("a") > 0
    assert scheduler.processed_rate("a") > 0


def test_a_served_stream_goes_to_the_back(make: Callable[..., Scheduler[Job]]) -> None:
    recorder = Recorder()
    recorder.gate = threading.Semaphore(0)
    scheduler = make(recorder, max_batch=1, workers=1)

    def started(count: int) -> bool:
        with recorder.lock:
            return recorder.started == count

    scheduler.offer("warm", "det", ("warm", 0))
    wait_for(lambda: started(1))
    for stream in ("a", "b", "c"):
        scheduler.offer(stream, "det", (stream, 0))
    recorder.gate.release()  # warm ends, a starts
    wait_for(lambda: started(2))
    scheduler.offer("a", "det", ("a", 1))  # a is in flight: its next job queues behind b and c
    recorder.gate.release(4)
    wait_for(lambda: len(recorder.batches) == 5)
    assert [jobs[0] for _, jobs in recorder.batches] == [
        ("warm", 0),
        ("a", 0),
        ("b", 0),
        ("c", 0),
        ("a", 1),
    ]


def test_a_busy_stream_does_not_starve_the_others(make: Callable[..., Scheduler[Job]]) -> None:
    recorder = Recorder(delay=0.002)
    scheduler = make(recorder, max_batch=1, workers=1)
    stop = threading.Event()

    def flood() -> None:
        seq = 0
        while not stop.is_set():
            seq += 1
            scheduler.offer("busy", "det", ("busy", seq))
            time.sleep(0.0005)

    flooder = threading.Thread(target=flood, name="test-flood")
    flooder.start()
    try:
        wait_for(lambda: len(recorder.processed("busy")) >= 3)
        quiet = ["q1", "q2", "q3"]
        for round_ in range(3):
            for stream in quiet:
                scheduler.offer(stream, "det", (stream, round_))
            wait_for(lambda r=round_: all(r in recorder.processed(s) for s in quiet))  # type: ignore[misc]
    finally:
        stop.set()
        flooder.join(TIMEOUT)
    for stream in quiet:
        assert recorder.processed(stream) == [0, 1, 2]
        assert scheduler.stats(stream).skipped == 0
    assert scheduler.stats("busy").skipped > 0


def test_slow_model_skips_and_memory_stays_bounded(make: Callable[..., Scheduler[Job]]) -> None:
    recorder = Recorder(delay=0.02)
    scheduler = make(recorder, max_batch=2, workers=1)
    streams = [f"cam{i}" for i in range(4)]
    most_pending = 0

    def produce(stream: str) -> None:
        nonlocal most_pending
        for seq in range(150):
            scheduler.offer(stream, "det", (stream, seq))
            most_pending = max(most_pending, scheduler.pending_count())
            time.sleep(0.001)

    producers = [threading.Thread(target=produce, args=(s,)) for s in streams]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join(TIMEOUT)
    wait_for(lambda: scheduler.pending_count() == 0 and scheduler.in_flight_count() == 0)
    assert most_pending <= len(streams)
    for stream in streams:
        stats = scheduler.stats(stream)
        assert stats.offered == 150
        assert stats.skipped > 0
        assert stats.offered == stats.skipped + stats.processed
        assert scheduler.skip_rate(stream) > 0
        assert recorder.processed(stream)[-1] == 149  # the last frame offered is never lost


def test_a_stream_never_has_two_jobs_in_flight(make: Callable[..., Scheduler[Job]]) -> None:
    recorder = Recorder(delay=0.003)
    scheduler = make(recorder, max_batch=3, batch_timeout_s=0.002, workers=4)
    streams = [f"cam{i}" for i in range(3)]

    def produce(stream: str) -> None:
        for seq in range(200):
            scheduler.offer(stream, "det", (stream, seq))
            time.sleep(0.0005)

    producers = [threading.Thread(target=produce, args=(s,)) for s in streams]
    for thread in producers:
        thread.start()
    for thread in producers:
        thread.join(TIMEOUT)
    wait_for(lambda: scheduler.pending_count() == 0 and scheduler.in_flight_count() == 0)
    assert recorder.max_running_per_stream == 1
    for stream in streams:
        seen = recorder.seen[stream]
        assert seen == sorted(seen), "a stream's frames ran out of order"
    for _, jobs in recorder.batches:
        assert len({s for s, _ in jobs}) == len(jobs), "two jobs of one stream in a batch"


def test_exceptions_in_run_do_not_stop_the_scheduler(
    make: Callable[..., Scheduler[Job]], caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(fail=lambda group, jobs: group == "broken")
    metrics: list[tuple[str, int]] = []
    scheduler = make(recorder, on_batch=lambda g, n, s: metrics.append((g, n)), max_batch=1)
    with caplog.at_level(logging.ERROR, logger="vigil.inference.scheduler"):
        for seq in range(3):
            scheduler.offer("a", "broken", ("a", seq))
            wait_for(lambda s=seq: scheduler.stats("a").failed == s + 1)  # type: ignore[misc]
        scheduler.offer("a", "det", ("a", 10))
        scheduler.offer("b", "det", ("b", 11))
        wait_for(
            lambda: scheduler.stats("a").processed == 1 and scheduler.stats("b").processed == 1
        )
    assert scheduler.stats("a") == SchedulerStats(offered=4, skipped=0, processed=1, failed=3)
    assert any("broken" in r.getMessage() and r.exc_info for r in caplog.records)
    wait_for(lambda: len(metrics) == 5)  # on_batch runs after failures too
    assert [g for g, _ in metrics].count("broken") == 3


def test_forget_drops_pending_job_and_counters(make: Callable[..., Scheduler[Job]]) -> None:
    recorder = Recorder()
    scheduler = make(recorder, workers=1)
    recorder.hold.clear()
    scheduler.offer("warm", "det", ("warm", 0))
    assert recorder.entered.wait(TIMEOUT)
    scheduler.offer("gone", "det", ("gone", 1))
    scheduler.offer("kept", "det", ("kept", 1))
    scheduler.forget("gone")
    assert scheduler.stats("gone") == SchedulerStats(0, 0, 0, 0)
    recorder.hold.set()
    wait_for(lambda: recorder.processed("kept") == [1])
    assert recorder.processed("gone") == []


def test_close_waits_for_running_batches(make: Callable[..., Scheduler[Job]]) -> None:
    recorder = Recorder(delay=0.05)
    scheduler = make(recorder, workers=2, max_batch=1)
    names = {t.name for t in threading.enumerate()}
    assert {"inference-dispatch", "inference-0", "inference-1"} <= names
    recorder.hold.clear()
    scheduler.offer("a", "det", ("a", 0))
    scheduler.offer("b", "det", ("b", 0))
    wait_for(lambda: scheduler.in_flight_count() == 2)
    scheduler.offer("a", "det", ("a", 1))  # pending: dropped by close, never run
    closer = threading.Thread(target=lambda: scheduler.close(TIMEOUT))
    closer.start()
    wait_for(lambda: scheduler.pending_count() == 0)  # close() has begun: the pending job is gone
    recorder.hold.set()
    closer.join(TIMEOUT)
    assert not closer.is_alive()
    assert sorted(s for _, jobs in recorder.batches for s, _ in jobs) == ["a", "b"]
    assert recorder.processed("a") == [0]
    assert scheduler.offer("a", "det", ("a", 2)) is False
    assert scheduler.close(TIMEOUT)  # idempotent
    alive = {t.name for t in threading.enumerate() if t.is_alive()}
    assert not {"inference-dispatch", "inference-0", "inference-1"} & alive


def test_close_while_filling_a_batch(make: Callable[..., Scheduler[Job]]) -> None:
    recorder = Recorder()
    scheduler = make(recorder, max_batch=4, batch_timeout_s=TIMEOUT * 10)
    scheduler.offer("a", "det", ("a", 0))
    wait_for(lambda: scheduler.in_flight_count() == 1)  # taken, waiting for company
    assert scheduler.close(TIMEOUT)
    assert recorder.batches == []
