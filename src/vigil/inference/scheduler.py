"""The frame scheduler: jobs from many streams, batched per model, run by a small worker pool.

Memory is bounded by construction: each stream has one mailbox slot holding its newest job, and a
job nobody ran yet is replaced (that frame is skipped) rather than queued. Detection always looks
at the freshest frame a stream has, and a slow model shows up as a skip rate, not as latency.

Ordering: a stream never has two jobs in flight, because its tracker needs frames in order; its
newest job waits in the mailbox meanwhile. Fairness: streams are served round robin in the order
their jobs became pending (a served stream goes to the back), so a camera offering 30 fps cannot
starve one offering 1 fps.

Threads: one dispatcher (`inference-dispatch`) forms batches; `workers` threads (`inference-N`)
run them. The dispatcher waits for a free worker *before* taking jobs, so a batch holds the
freshest frames rather than ones picked while every worker was busy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

J = TypeVar("J")

# The window skip_rate and processed_rate average over.
RATE_WINDOW_S = 10.0


@dataclass(frozen=True, slots=True)
class SchedulerStats:
    """Counters for one stream since it was first offered a job (or last forgotten)."""

    offered: int
    skipped: int
    processed: int
    failed: int


@dataclass(slots=True)
class _StreamCounters:
    started: float  # clock() at the first offer, so early rates are not divided by the window
    offered: int = 0
    skipped: int = 0
    processed: int = 0
    failed: int = 0
    skip_times: deque[float] = field(default_factory=deque)
    processed_times: deque[float] = field(default_factory=deque)


@dataclass(slots=True)
class _Pending(Generic[J]):
    stream: str
    group: str
    job: J
    since: float  # time.monotonic() when the slot was filled (kept when the job is replaced)
    counters: _StreamCounters


@dataclass(slots=True)
class _Batch(Generic[J]):
    group: str
    entries: list[_Pending[J]]


def _prune(times: deque[float], now: float) -> None:
    while times and times[0] < now - RATE_WINDOW_S:
        times.popleft()


class Scheduler(Generic[J]):
    """Batches jobs of many streams per group (one group = one model) onto a worker pool.

    `run(group, jobs)` is called on a worker thread with 1..`max_batch` jobs of one group, each
    from a different stream. After each run, successful or not, `on_batch(group, size, seconds)`
    is called on the same thread (for metrics). `clock` (monotonic seconds) only drives the rate
    windows; batching waits use real time.

    Every method is thread-safe; `offer` is cheap (a lock, a dict write and a notify) and never
    blocks on inference.
    """

    def __init__(
        self,
        run: Callable[[str, list[J]], None],
        *,
        max_batch: int,
        batch_timeout_s: float,
        workers: int,
        on_batch: Callable[[str, int, float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if workers < 1:
            raise ValueError("workers must be at least 1")
        if batch_timeout_s < 0:
            raise ValueError("batch_timeout_s must not be negative")
        self._run = run
        self._max_batch = max_batch
        self._batch_timeout_s = batch_timeout_s
        self._workers = workers
        self._on_batch = on_batch
        self._clock = clock

        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        # One slot per stream; dict order is the round-robin order (a replaced job keeps its
        # stream's place, a served stream is re-inserted at the back when it next offers).
        self._pending: dict[str, _Pending[J]] = {}
        self._in_flight: set[str] = set()
        self._counters: dict[str, _StreamCounters] = {}
        self._idle_workers = workers
        self._handoff: deque[_Batch[J] | None] = deque()
        self._closing = False

        self._dispatcher = threading.Thread(
            target=self._dispatch_loop, name="inference-dispatch", daemon=True
        )
        self._worker_threads = [
            threading.Thread(target=self._worker_loop, name=f"inference-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._worker_threads:
            thread.start()
        self._dispatcher.start()

    # -- producers ---------------------------------------------------------------------------

    def offer(self, stream: str, group: str, job: J) -> bool:
        """Put `job` in `stream`'s mailbox. Returns False when it replaced a job that was never
        run (that one is skipped and counted) or when the scheduler is closed (dropped)."""
        now = self._clock()
        with self._lock:
            if self._closing:
                return False
            counters = self._counters.get(stream)
            if counters is None:
                counters = self._counters[stream] = _StreamCounters(started=now)
            counters.offered += 1
            previous = self._pending.get(stream)
            if previous is not None:
                counters.skipped += 1
                counters.skip_times.append(now)
                _prune(counters.skip_times, now)
                previous.group, previous.job = group, job
            else:
                self._pending[stream] = _Pending(stream, group, job, time.monotonic(), counters)
            self._changed.notify_all()
            return previous is None

    def forget(self, stream: str) -> None:
        """Drop `stream`'s pending job and its counters (the stream was removed). A job of it
        already running finishes; its outcome is no longer counted."""
        with self._lock:
            self._pending.pop(stream, None)
            self._counters.pop(stream, None)

    # -- observers ---------------------------------------------------------------------------

    def stats(self, stream: str) -> SchedulerStats:
        """The stream's counters (zeros for a stream never offered or forgotten)."""
        with self._lock:
            c = self._counters.get(stream)
            if c is None:
                return SchedulerStats(0, 0, 0, 0)
            return SchedulerStats(c.offered, c.skipped, c.processed, c.failed)

    def skip_rate(self, stream: str) -> float:
        """Jobs skipped per second over the last ~10 s (the `skipped_fps` metric)."""
        return self._rate(stream, skipped=True)

    def processed_rate(self, stream: str) -> float:
        """Jobs run successfully per second over the last ~10 s (the `processed_fps` metric)."""
        return self._rate(stream, skipped=False)

    def pending_count(self) -> int:
        """Jobs waiting in mailboxes (at most one per stream)."""
        with self._lock:
            return len(self._pending)

    def in_flight_count(self) -> int:
        """Streams whose job is being batched or run."""
        with self._lock:
            return len(self._in_flight)

    def _rate(self, stream: str, *, skipped: bool) -> float:
        now = self._clock()
        with self._lock:
            c = self._counters.get(stream)
            if c is None:
                return 0.0
            times = c.skip_times if skipped else c.processed_times
            _prune(times, now)
            # A stream younger than the window is averaged over its age (at least a second, so
            # the first skip does not read as a burst).
            span = min(RATE_WINDOW_S, max(now - c.started, 1.0))
            return len(times) / span

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self, timeout: float | None = None) -> bool:
        """Stop dispatching, drop pending jobs and wait up to `timeout` seconds for the running
        batches to finish. Idempotent. Returns whether every thread has ended."""
        with self._lock:
            if not self._closing:
                self._closing = True
                self._pending.clear()
                self._changed.notify_all()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in [self._dispatcher, *self._worker_threads]:
            if thread is threading.current_thread():
                continue
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        return not any(
            t.is_alive() and t is not threading.current_thread()
            for t in [self._dispatcher, *self._worker_threads]
        )

    # -- dispatcher --------------------------------------------------------------------------

    def _dispatch_loop(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    return
                with self._lock:
                    self._handoff.append(batch)
                    self._changed.notify_all()
        except Exception:  # a bug here would stop all detection: say so loudly
            logger.exception("inference dispatcher crashed")
            raise
        finally:
            with self._lock:
                self._closing = True
                self._handoff.extend([None] * self._workers)
                self._changed.notify_all()

    def _first_eligible(self) -> _Pending[J] | None:
        for entry in self._pending.values():
            if entry.stream not in self._in_flight:
                return entry
        return None

    def _take(self, entry: _Pending[J]) -> None:
        del self._pending[entry.stream]
        self._in_flight.add(entry.stream)

    def _next_batch(self) -> _Batch[J] | None:
        """Wait for a free worker, then for a job; fill a batch with the same group's jobs for up
        to batch_timeout_s after the first job became pending. None when closing."""
        with self._lock:
            while not self._closing and self._idle_workers == 0:
                self._changed.wait()
            while not self._closing and (first := self._first_eligible()) is None:
                self._changed.wait()
            if self._closing:
                return None
            assert first is not None
            self._idle_workers -= 1
            self._take(first)
            batch = _Batch(first.group, [first])
            deadline = first.since + self._batch_timeout_s
            while True:
                for entry in list(self._pending.values()):
                    if len(batch.entries) >= self._max_batch:
                        break
                    if entry.group == batch.group and entry.stream not in self._in_flight:
                        self._take(entry)
                        batch.entries.append(entry)
                remaining = deadline - time.monotonic()
                if len(batch.entries) >= self._max_batch or remaining <= 0 or self._closing:
                    break
                self._changed.wait(remaining)
            if self._closing:
                # Never handed to a worker: release what we took.
                for entry in batch.entries:
                    self._in_flight.discard(entry.stream)
                self._idle_workers += 1
                return None
            return batch

    # -- workers -----------------------------------------------------------------------------

    def _worker_loop(self) -> None:
        while True:
            with self._lock:
                while not self._handoff:
                    self._changed.wait()
                batch = self._handoff.popleft()
            if batch is None:
                return
            self._execute(batch)

    def _execute(self, batch: _Batch[J]) -> None:
        jobs = [entry.job for entry in batch.entries]
        started = time.perf_counter()
        ok = False
        try:
            self._run(batch.group, jobs)
            ok = True
        except Exception:
            logger.exception(
                "inference batch failed (group %s, streams %s)",
                batch.group,
                ", ".join(entry.stream for entry in batch.entries),
            )
        seconds = time.perf_counter() - started
        now = self._clock()
        with self._lock:
            for entry in batch.entries:
                self._in_flight.discard(entry.stream)
                counters = entry.counters
                if ok:
                    counters.processed += 1
                    counters.processed_times.append(now)
                    _prune(counters.processed_times, now)
                else:
                    counters.failed += 1
            self._idle_workers += 1
            self._changed.notify_all()
        if self._on_batch is not None:
            try:
                self._on_batch(batch.group, len(jobs), seconds)
            except Exception:
                logger.exception("inference on_batch callback failed (group %s)", batch.group)
