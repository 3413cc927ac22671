"""Segment lifecycle and gap accounting: the recording index, kept in step with the files.

A row is inserted when a file opens and completed from the file itself when it closes. Every
stretch of time between two segments of a stream is a gap row: opened when the supervisor says
recording was interrupted (stall, camera gone), closed when the next segment opens — and the
time Vigil itself was not running becomes a gap when a stream's first segment opens.

Facts arrive from the media layer in order (opened, then closed, per file) on the event loop.
Database writes and file probes run on the single DB-writer thread, so the loop never blocks and
rows are written in the order files were opened. Every row written is also an event on the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

from vigil.events import EventBus, GapClosed, GapOpened, SegmentClosed, SegmentOpened, utc_now
from vigil.observability import tracing
from vigil.observability.metrics import RECORDED_BYTES, RECORDED_SEGMENTS, RECORDING_GAPS
from vigil.recording.mp4probe import Mp4Error, probe_mp4
from vigil.store.models import SegmentStatus
from vigil.store.recordings import GapStore, SegmentStore

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _OpenFile:
    stream: str
    start: datetime
    segment_id: asyncio.Future[int]
    # Known once the file is probed: where its video ends on disk.
    end: datetime | None = None
    # The start of the file that followed it at a split (no interruption in between): the two
    # should touch; if they do not, the difference was lost writing this one.
    successor_start: datetime | None = None
    lost_reason: str | None = None
    hole_checked: bool = False


# Consecutive segments closer than this are contiguous (a reconnect costs more than this).
GAP_TOLERANCE = timedelta(seconds=1)
NOT_RUNNING = "Vigil was not running"
# How long the index keeps trying a write that another process's lock holds up.
LOCKED_RETRY_S = 120.0
# Two frames at 25 fps: less than this between a failed file and the next is rounding.
FAILED_WRITE_TOLERANCE = timedelta(seconds=0.08)


class SegmentIndex:
    """Keeps the `segments` and `gaps` tables in step with the files the recorders write."""

    def __init__(
        self,
        store: SegmentStore,
        bus: EventBus,
        writer: Executor,
        gaps: GapStore | None = None,
        *,
        volume_of: Callable[[str], str | None] = lambda _location: None,
    ) -> None:
        self._store = store
        self._volume_of = volume_of
        self._gaps = gaps
        self._bus = bus
        self._writer = writer
        self._open: dict[str, _OpenFile] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Per stream: end of its last finished segment, its ongoing gap, the segments still
        # being closed, and whether its next segment follows a discontinuity (first segment
        # of this run, or after an interruption) and so must be checked for a gap.
        self._last_end: dict[str, datetime | None] = {}
        self._open_gap: dict[str, asyncio.Future[int]] = {}
        self._closing: dict[str, set[asyncio.Task[None]]] = {}
        self._check_gap: set[str] = set()
        self._seen: set[str] = set()
        self._latest: dict[str, _OpenFile] = {}  # the last file opened, per stream

    async def _write(self, call: Callable[[], T]) -> T:
        """Run `call` on the DB-writer thread. Another process holding SQLite's write lock
        longer than the busy timeout (a backup, a `vigil` command, an operator's sqlite3) must
        not cost a segment its row: the write is tried again until it passes, for up to
        `LOCKED_RETRY_S` (a file still without a row after that is indexed at the next start).
        Every call here is safe to repeat: a failed transaction wrote nothing."""
        loop = asyncio.get_running_loop()
        delay, waited = 0.25, 0.0
        while True:
            try:
                return await loop.run_in_executor(self._writer, call)
            except Exception as error:
                if not _database_busy(error) or waited >= LOCKED_RETRY_S:
                    raise
                if waited == 0.0:
                    logger.warning("recording index: the database is locked by another writer; "
                                   "retrying")  # fmt: skip
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 5.0)

    def _spawn(self, coro: Coroutine[object, object, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)
        return task

    def _spawn_close(self, stream: str, coro: Coroutine[object, object, None]) -> None:
        closing = self._closing.setdefault(stream, set())
        task = self._spawn(coro)
        closing.add(task)
        task.add_done_callback(closing.discard)

    # -- facts from the recorders (called on the loop, in order) ------------------------------

    def opened(
        self,
        stream: str,
        location: str,
        start: datetime,
        codec: str | None,
        width: int | None,
        height: int | None,
    ) -> None:
        """A recorder opened `location`; insert its row."""
        if stream not in self._seen:
            self._seen.add(stream)
            self._check_gap.add(stream)
        # Segments of this stream still closing now end before this one starts: a gap check
        # waits for them (and only them: this file may itself close before its row is written).
        before = set(self._closing.get(stream, ())) if stream in self._check_gap else set()
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        entry = _OpenFile(stream, start, future)
        self._open[location] = entry
        previous = self._latest.get(stream)
        if previous is not None and stream not in self._check_gap:
            # A split: the previous file should end where this one starts.
            previous.successor_start = start
            if previous.end is not None:
                self._spawn(self._account_hole(previous))
        self._latest[stream] = entry
        self._spawn(self._insert(stream, location, start, codec, width, height, future, before))

    async def _insert(
        self,
        stream: str,
        location: str,
        start: datetime,
        codec: str | None,
        width: int | None,
        height: int | None,
        future: asyncio.Future[int],
        closing_before: set[asyncio.Task[None]],
    ) -> None:
        if stream in self._check_gap:
            self._check_gap.discard(stream)
            await self._account_gap(stream, start, closing_before)
        try:
            segment_id = await self._write(
                partial(
                    self._store.open_segment,
                    stream=stream,
                    path=Path(location),
                    start=start,
                    codec=codec,
                    width=width,
                    height=height,
                    volume=self._volume_of(location),
                )
            )
        except BaseException as exc:
            future.set_exception(exc)
            raise
        future.set_result(segment_id)
        self._bus.publish(
            SegmentOpened(stream=stream, segment_id=segment_id, path=location, start=start)
        )
        logger.debug("%s: segment %d opened %s", stream, segment_id, location)

    def closed(self, stream: str, location: str, duration_hint: float) -> None:
        """A recorder finished `location`; complete its row from the file."""
        entry = self._open.pop(location, None)
        if entry is None:
            logger.warning("%s: closed %s, which was never reported open", stream, location)
            return
        self._spawn_close(
            stream, self._complete(entry, location, duration_hint, status=SegmentStatus.COMPLETE)
        )

    async def _complete(
        self, entry: _OpenFile, location: str, duration_hint: float, *, status: SegmentStatus
    ) -> None:
        with tracing.span("segment.close", stream=entry.stream, path=location, status=status.value):
            segment_id = await entry.segment_id
            facts = await self._write(partial(_file_facts, Path(location), duration_hint))
            duration, size, codec, width, height = facts
            if (
                size == 0
                and codec is None
                and await self._write(
                    partial(_drop_if_empty, self._store, segment_id, Path(location))
                )
            ):
                # Nothing reached the disk (a write that failed at once, a full disk): the row
                # says so and the empty file goes, rather than a segment that cannot play. (A
                # file that is not there at all is on a disk that went away: it is closed with
                # the recorder's duration and completed from the file when the disk is back.)
                logger.warning("%s: %s is empty; not kept", entry.stream, location)
                entry.end = entry.start
                if entry.successor_start is not None:
                    await self._account_hole(entry)
                return
            end = entry.start + timedelta(seconds=duration)
            previous = self._last_end.get(entry.stream)
            self._last_end[entry.stream] = end if previous is None else max(previous, end)
            await self._write(
                partial(
                    self._store.close_segment,
                    segment_id,
                    end=end,
                    duration_s=duration,
                    size_bytes=size,
                    codec=codec,
                    width=width,
                    height=height,
                    status=status,
                )
            )
            self._bus.publish(
                SegmentClosed(
                    stream=entry.stream,
                    segment_id=segment_id,
                    path=location,
                    start=entry.start,
                    end=end,
                    duration_s=duration,
                    size_bytes=size,
                )
            )
            entry.end = end
            if entry.successor_start is not None:
                await self._account_hole(entry)
            RECORDED_SEGMENTS.labels(entry.stream).inc()
            RECORDED_BYTES.labels(entry.stream).inc(size)
            logger.debug(
                "%s: segment %d closed (%.2f s, %d bytes)", entry.stream, segment_id, duration, size
            )

    def abandon(self, stream: str) -> None:
        """The stream's pipeline died mid-file: complete its open rows from what reached disk."""
        for location, entry in list(self._open.items()):
            if entry.stream == stream:
                del self._open[location]
                self._spawn_close(
                    stream, self._complete(entry, location, 0.0, status=SegmentStatus.REPAIRED)
                )

    # -- gaps -------------------------------------------------------------------------------

    def write_failed(self, stream: str, location: str, reason: str) -> None:
        """Writing `location`, a file already finished at its split, failed: the part of it
        that did not reach the disk becomes a gap (with `reason`) when the file is probed."""
        entry = self._open.get(location)
        latest = self._latest.get(stream)
        if entry is None and latest is not None and latest.end is not None:
            entry = latest if latest.hole_checked is False else None
        if entry is None:
            logger.info("%s: %s failed after it was indexed; its hole was counted then",
                        stream, location)  # fmt: skip
            return
        entry.lost_reason = reason

    async def _account_hole(self, entry: _OpenFile) -> None:
        """A file and the one that followed it at a split should touch: the difference (the end
        of a file whose last writes failed, or a whole file that stayed empty) is a gap."""
        if entry.hole_checked or entry.end is None or entry.successor_start is None:
            return
        entry.hole_checked = True
        lost = entry.successor_start - entry.end
        # A reported write failure counts whatever it cost; otherwise the usual tolerance.
        tolerance = FAILED_WRITE_TOLERANCE if entry.lost_reason else GAP_TOLERANCE
        if self._gaps is None or lost <= tolerance:
            return
        reason = entry.lost_reason or "write failed: the end of the segment did not reach the disk"
        gaps, stream = self._gaps, entry.stream
        gap_id = await self._write(
            partial(gaps.add_gap, stream, entry.end, entry.successor_start, reason)
        )
        RECORDING_GAPS.labels(stream).inc()
        self._bus.publish(GapClosed(stream=stream, gap_id=gap_id, end=entry.successor_start))
        logger.warning("%s: %.1f s lost at the end of a segment (%s)", stream,
                       lost.total_seconds(), reason)  # fmt: skip

    def interrupted(self, stream: str, reason: str) -> None:
        """Recording of `stream` stopped unexpectedly: open a gap until its next segment."""
        self._check_gap.add(stream)
        if self._gaps is None or stream in self._open_gap:
            return
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._open_gap[stream] = future
        self._spawn(self._open_gap_row(stream, reason, future))

    async def _open_gap_row(self, stream: str, reason: str, future: asyncio.Future[int]) -> None:
        assert self._gaps is not None
        gaps = self._gaps
        # Provisional start; corrected to the last segment's end when the gap closes (the cut
        # segment may still be closing now).
        start = utc_now()
        try:
            gap_id = await self._write(partial(gaps.open_gap, stream, start, reason))
        except BaseException as exc:
            future.set_exception(exc)
            raise
        future.set_result(gap_id)
        RECORDING_GAPS.labels(stream).inc()
        self._bus.publish(GapOpened(stream=stream, gap_id=gap_id, start=start, reason=reason))

    async def _account_gap(
        self, stream: str, start: datetime, closing_before: set[asyncio.Task[None]]
    ) -> None:
        """Close the stream's ongoing gap at `start`, or record the one before it (downtime)."""
        gaps = self._gaps
        if gaps is None:
            return
        # The segment cut by the interruption may still be closing: its end is where the gap
        # starts.
        await asyncio.gather(*closing_before, return_exceptions=True)
        if stream not in self._last_end:
            self._last_end[stream] = await self._write(partial(self._store.latest_end, stream))
        previous_end = self._last_end[stream]
        pending = self._open_gap.pop(stream, None)
        if pending is not None:
            gap_id = await pending
            gap_start = previous_end if previous_end is not None and previous_end < start else None
            await self._write(partial(gaps.close_gap, gap_id, start, start=gap_start))
            self._bus.publish(GapClosed(stream=stream, gap_id=gap_id, end=start))
        elif previous_end is not None and start - previous_end > GAP_TOLERANCE:
            gap_id = await self._write(
                partial(gaps.add_gap, stream, previous_end, start, NOT_RUNNING)
            )
            RECORDING_GAPS.labels(stream).inc()
            self._bus.publish(GapClosed(stream=stream, gap_id=gap_id, end=start))

    async def close_gaps(self) -> None:
        """At shutdown: end every ongoing gap now (the next start records the downtime)."""
        gaps = self._gaps
        for stream, pending in list(self._open_gap.items()):
            del self._open_gap[stream]
            if gaps is None:
                continue
            gap_id = await pending
            now = utc_now()
            start = self._last_end.get(stream)
            await self._write(partial(gaps.close_gap, gap_id, now, start=start))

    def writing(self) -> dict[str, str]:
        """Location → stream of every file reported open and not yet closed."""
        return {location: entry.stream for location, entry in self._open.items()}

    def open_locations(self, stream: str) -> list[str]:
        """Files of `stream` reported open and not yet closed."""
        return [loc for loc, entry in self._open.items() if entry.stream == stream]

    async def drain(self) -> None:
        """Wait until every pending row write is done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _file_facts(
    path: Path, duration_hint: float
) -> tuple[float, int, str | None, int | None, int | None]:
    """(duration, size, codec, width, height) of a finished segment, trusting the file."""
    try:
        info = probe_mp4(path)
    except (Mp4Error, OSError) as exc:
        logger.warning("cannot probe %s (%s); using the recorder's duration", path, exc)
        size = path.stat().st_size if path.exists() else 0
        return duration_hint, size, None, None, None
    return info.duration_s, info.file_size, info.codec, info.width, info.height


def _drop_if_empty(store: SegmentStore, segment_id: int, path: Path) -> bool:
    """Mark the row missing and remove `path` if the file is there and empty (the row first:
    a write that fails on a locked database is tried again, and must find the file)."""
    try:
        if path.stat().st_size != 0:
            return False
    except OSError:
        return False
    store.mark_missing(segment_id, note="nothing was written (the write failed)")
    with contextlib.suppress(OSError):
        path.unlink()
    return True


def _database_busy(error: BaseException | None) -> bool:
    """True when `error` (or what caused it) is SQLite saying another connection holds the
    write lock past the busy timeout."""
    while error is not None:
        if isinstance(error, sqlite3.OperationalError) and (
            "locked" in str(error) or "busy" in str(error)
        ):
            return True
        error = error.__cause__
    return False


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("recording index update failed", exc_info=task.exception())


def close_dangling_gaps(gaps: GapStore, segments: SegmentStore) -> int:
    """After a crash: end the gaps left open at the last time the stream was known to record
    (its latest segment end, if after the gap's start), else at their start. The time Vigil was
    down becomes its own gap when the stream's first segment opens. Returns how many."""
    dangling = gaps.open_gaps()
    for gap in dangling:
        end = segments.latest_end(gap.stream)
        gaps.close_gap(gap.id, end if end is not None and end > gap.start else gap.start)
    return len(dangling)
