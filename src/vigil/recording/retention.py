"""Retention: delete the oldest recordings when they are too old or their space is needed.

Two rules, run on the DB-writer thread (every `storage.check_interval_s`, and at once when a
recorder finds no volume with room):

- by age (once a minute): a stream's segments that ended more than its `retain_days` ago go;
- by space: when no usable volume can take a new segment (each is over its thresholds), the
  oldest segments across all usable volumes go until one volume has room again, plus a margin
  (1 % of its size) so that it does not flap between full and not full with every segment.

Never deleted: a segment being written, one covered by a hold in force, or one on a volume that
is offline (its file is not reachable; its row must stay for when the disk comes back). A file
that cannot be removed (permissions, read-only) keeps its row and is skipped. Each batch removes
files and their rows in one transaction, then empty folders up to the volume's root.
"""

from __future__ import annotations

import heapq
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from vigil.recording.volumes import Usage, VolumePool
from vigil.store.holds import HoldRow, HoldStore
from vigil.store.retention import Candidate, RetentionStore
from vigil.store.timestamps import to_us, utc_now

logger = logging.getLogger(__name__)

BATCH = 32
AGE_INTERVAL_S = 60.0
# Per run, at most this many segments go by age (the rest on the next run: keeps a first run
# over years of expired recordings from holding the DB writer for minutes).
MAX_AGE_DELETES_PER_RUN = 2000
# Per run, at most this many segments are looked at for space.
MAX_SPACE_CANDIDATES_PER_RUN = 5000


def margin_for(usage: Usage) -> int:
    """Room retention makes beyond the thresholds, so a volume does not flap."""
    return usage.total // 100


@dataclass
class RetentionReport:
    """What one run did."""

    segments: int = 0
    bytes: int = 0
    by_age: int = 0
    by_space: int = 0
    held: int = 0  # candidates skipped because a hold covers them
    failed: int = 0  # files that could not be removed
    exhausted: bool = False  # space was needed and nothing could be deleted
    by_volume: dict[str, int] = field(default_factory=dict)


class Retention:
    """Deletes what the rules say must go. `run` belongs on the DB-writer thread."""

    def __init__(
        self,
        pool: VolumePool,
        store: RetentionStore,
        holds: HoldStore,
        *,
        retain_days: Callable[[], Mapping[str, float | None]],
        writing: Callable[[], set[str]],
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._pool = pool
        self._store = store
        self._holds = holds
        self._retain_days = retain_days
        self._writing = writing
        self._clock = clock
        self.total_segments = 0
        self.total_bytes = 0
        self._age_due: float | None = None  # monotonic time the age rule runs next
        # Per volume, the last of the held segments at its head (valid for these holds).
        self._held_signature: tuple[tuple[int, datetime | None], ...] = ()
        self._held_head: dict[str, tuple[int, int]] = {}

    def run(self) -> RetentionReport:
        report = RetentionReport()
        now = self._clock()
        holds = self._holds.list(active_at=now)
        writing = self._writing()
        usable = self._pool.usable()
        # Age is checked once a minute (a query per stream), or sooner while a backlog remains;
        # space on every run (it costs nothing until a volume lacks room).
        tick = time.monotonic()
        if self._age_due is None or tick >= self._age_due:
            self._by_age(now, holds, writing, usable, report)
            backlog = report.by_age >= MAX_AGE_DELETES_PER_RUN
            self._age_due = tick + (0 if backlog else AGE_INTERVAL_S)
        self._by_space(holds, writing, report)
        self.total_segments += report.segments
        self.total_bytes += report.bytes
        return report

    # -- rules ------------------------------------------------------------------------------

    def _by_age(
        self,
        now: datetime,
        holds: list[HoldRow],
        writing: set[str],
        usable: Mapping[str, Path],
        report: RetentionReport,
    ) -> None:
        for stream, days in self._retain_days().items():
            if days is None:
                continue
            cutoff = to_us(now - timedelta(days=days))
            after: tuple[int, int] | None = None
            while report.by_age < MAX_AGE_DELETES_PER_RUN:
                batch = self._store.expired(stream, cutoff, after=after, limit=BATCH * 8)
                if not batch:
                    break
                after = (batch[-1].start_us, batch[-1].id)
                deletable = [c for c in batch if self._deletable(c, holds, writing, usable, report)]
                gone = self._delete(deletable, usable, report)
                report.by_age += len(gone)
            self._store.delete_gaps_before(stream, cutoff)

    def _by_space(self, holds: list[HoldRow], writing: set[str], report: RetentionReport) -> None:
        wanted = self._pool.needing_space(margin_for)
        if not wanted:
            self._pool.exhausted = False
            return
        usable = self._pool.usable()
        # Held segments at the head of a volume stay held while the holds do: a pass starts
        # after those the last pass found (with the same holds), instead of walking them again.
        signature = tuple((h.id, h.until) for h in holds)
        if signature != self._held_signature:
            self._held_signature, self._held_head = signature, {}
        cursors: dict[str, tuple[int, int] | None] = {
            volume: self._held_head.get(volume) for volume in wanted
        }
        all_held = set(wanted)  # volumes whose candidates so far were all held
        heap: list[tuple[int, int, str, Candidate]] = []
        for volume in wanted:
            self._fill(heap, volume, cursors)
        looked = 0
        while wanted and heap and looked < MAX_SPACE_CANDIDATES_PER_RUN:
            # A batch frees what one volume lacks, no more: the oldest segments may be small
            # against the batch size on a small disk, and each extra one is a recording lost.
            batch: list[Candidate] = []
            freed: dict[str, int] = {}
            while heap and len(batch) < BATCH:
                _start, _id, volume, candidate = heapq.heappop(heap)
                looked += 1
                held_before = report.held
                if self._deletable(candidate, holds, writing, usable, report):
                    batch.append(candidate)
                    freed[volume] = freed.get(volume, 0) + max(1, candidate.size_bytes)
                if volume in all_held:
                    if report.held > held_before:
                        self._held_head[volume] = (candidate.start_us, candidate.id)
                    else:
                        all_held.discard(volume)
                if not any(item[2] == volume for item in heap):
                    self._fill(heap, volume, cursors)
                if any(freed.get(v, 0) >= need for v, need in wanted.items()):
                    break
            gone = self._delete(batch, usable, report)
            report.by_space += len(gone)
            self._pool.refresh()
            wanted = self._pool.needing_space(margin_for)
        if wanted and report.by_space == 0:
            report.exhausted = True
            if not self._pool.exhausted:
                logger.error(
                    "retention: every volume is full and nothing can be deleted "
                    "(%d segment(s) held, %d being written)", report.held, len(writing),
                )  # fmt: skip
        self._pool.exhausted = report.exhausted

    def _fill(
        self,
        heap: list[tuple[int, int, str, Candidate]],
        volume: str,
        cursors: dict[str, tuple[int, int] | None],
    ) -> None:
        batch = self._store.oldest(volume, after=cursors[volume], limit=BATCH * 2)
        if batch:
            cursors[volume] = (batch[-1].start_us, batch[-1].id)
        for candidate in batch:
            heapq.heappush(heap, (candidate.start_us, candidate.id, volume, candidate))

    # -- deleting ---------------------------------------------------------------------------

    def _deletable(
        self,
        candidate: Candidate,
        holds: list[HoldRow],
        writing: set[str],
        usable: Mapping[str, Path],
        report: RetentionReport,
    ) -> bool:
        if candidate.path in writing:
            return False
        if candidate.volume is not None and candidate.volume not in usable:
            return False  # offline: the row waits for its disk
        if any(
            hold.covers(candidate.stream, candidate.start_us, candidate.end_us) for hold in holds
        ):
            report.held += 1
            return False
        return True

    def _delete(
        self, batch: list[Candidate], usable: Mapping[str, Path], report: RetentionReport
    ) -> list[Candidate]:
        if not batch:
            return []

        def remove(candidate: Candidate) -> bool:
            try:
                os.unlink(candidate.path)
            except FileNotFoundError:
                return True  # already gone: the row goes too
            except OSError as exc:
                report.failed += 1
                logger.warning("retention: cannot delete %s: %s", candidate.path, exc.strerror)
                return False
            return True

        gone = self._store.delete(batch, remove)
        for candidate in gone:
            report.segments += 1
            report.bytes += candidate.size_bytes
            if candidate.volume is not None:
                report.by_volume[candidate.volume] = (
                    report.by_volume.get(candidate.volume, 0) + candidate.size_bytes
                )
                self._pool.count_deleted(candidate.volume, 1, candidate.size_bytes)
            root = usable.get(candidate.volume or "")
            if root is not None:
                _remove_empty_parents(Path(candidate.path).parent, root)
        return gone


def _remove_empty_parents(folder: Path, root: Path) -> None:
    """Remove `folder` and its parents up to (not including) `root` while they are empty."""
    while folder != root and folder.is_relative_to(root):
        try:
            folder.rmdir()
        except OSError:  # not empty (or gone, or not ours to remove): stop here
            return
        folder = folder.parent
