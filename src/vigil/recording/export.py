"""Exports: one MP4 of a stream's recordings over a time range.

This module decides what goes in (range bounds, which files, room on disk, how many exports at
once) and owns the temporary files. Writing the MP4 is `vigil.media.export.write_mp4`, handed in
by the composition root as a `ClipWriter`, so that this module, and the API above it, never
import GStreamer.

Exports are written to a directory of their own in the data directory (not /tmp, often a small
RAM disk), as ``export-<random>.mp4`` plus mp4mux's scratch file: while one is written it needs
about twice its size. Refused up front when the disk lacks that plus a reserve for recording.

A finished export is kept for `KEEP_SECONDS` after its last use and handed out again for the
same stream and range: a browser playing it asks for byte ranges again and again as the viewer
seeks, and each would otherwise build the whole clip anew. Except when the range reaches past
what is recorded so far (an object's clip asked for as it enters, the last minutes of a live
stream): that clip is cut short, so it is not kept (`ExportedClip.complete` is False) and is
deleted once sent, and asked again later, it is made anew with what has been recorded since.
The caller marks a clip in use with `export` and releases it with `release` once sent; `sweep`
removes what a crash left.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from vigil.recording.files import SegmentFileUnavailable, segment_file
from vigil.store.models import SegmentStatus
from vigil.store.recordings import SegmentRow, SegmentStore

logger = logging.getLogger(__name__)

# The longest range one export may cover: a day of video is already GBs for one camera.
MAX_EXPORT_SECONDS = 24 * 3600
# Exports running at once; more are refused (429) rather than queued behind a slow one.
MAX_RUNNING_EXPORTS = 2
# Free space an export must leave on the disk, beyond its own, so recording can go on.
SPACE_RESERVE_BYTES = 512 * 1024 * 1024
# An export reads at most this many segment files (a day of 2 s segments is 43,200).
MAX_FILES = 100_000
EXPORT_PREFIX = "export-"
# A finished export is handed out again for the same range until unused for this long.
KEEP_SECONDS = 300.0


class ExportError(Exception):
    """Why an export cannot be made; `message` is for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidExportRange(ExportError):
    """The range is empty, reversed or longer than allowed."""


class NoVideoInRange(ExportError):
    """Nothing was recorded in the range; `before`/`after` are the nearest video around it."""

    def __init__(self, message: str, before: datetime | None, after: datetime | None) -> None:
        super().__init__(message)
        self.before = before
        self.after = after


class TooManyExports(ExportError):
    """`MAX_RUNNING_EXPORTS` are already being written."""


class NotEnoughSpace(ExportError):
    """The export directory's disk cannot hold the export and keep the reserve."""


class ExportWriteFailed(ExportError):
    """Writing the MP4 failed."""


class WrittenClip(Protocol):
    """What the writer reports (wall-clock times of the recording)."""

    @property
    def first_frame(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...
    @property
    def duration_s(self) -> float: ...
    @property
    def skipped_s(self) -> float: ...
    @property
    def unreadable_files(self) -> int: ...
    @property
    def ended_early(self) -> str | None: ...


class ClipWriter(Protocol):
    """Writes the video of ``[start, end)`` from (file, wall-clock start) pairs; None if the
    files hold no frame in the range (`vigil.media.export.write_mp4`)."""

    def __call__(
        self,
        files: Sequence[tuple[Path, datetime]],
        start: datetime,
        end: datetime,
        output: Path,
        *,
        scratch: Path,
        cancelled: threading.Event | None = None,
    ) -> WrittenClip | None: ...


@dataclass(frozen=True)
class ExportedClip:
    """A finished export, waiting in the export directory to be sent and discarded."""

    path: Path
    stream: str
    first_frame: datetime
    end: datetime
    duration_s: float
    size_bytes: int
    skipped_s: float
    unreadable_files: int
    ended_early: str | None
    # False when the clip stops short of the asked end and nothing is recorded after that end
    # yet (the range reaches past what was recorded: asked again later, it will be longer).
    complete: bool = True


def check_export_range(start: datetime, end: datetime, max_seconds: int) -> None:
    """`InvalidExportRange` unless ``start < end`` and the range is at most `max_seconds`."""
    if end <= start:
        raise InvalidExportRange(
            f"end ({end.isoformat()}) must be after start ({start.isoformat()})"
        )
    if end - start > timedelta(seconds=max_seconds):
        raise InvalidExportRange(
            f"an export covers at most {max_seconds} s ({max_seconds / 3600:g} h); "
            f"this range is {(end - start).total_seconds():.0f} s: split it"
        )


@dataclass
class _Kept:
    clip: ExportedClip
    users: int
    last_used: float


class Exporter:
    """Makes exports for the API. `export` blocks: call it from a worker thread."""

    def __init__(
        self,
        segments: SegmentStore,
        roots: Iterable[Path],
        directory: Path,
        writer: ClipWriter,
        *,
        max_seconds: int = MAX_EXPORT_SECONDS,
        max_running: int = MAX_RUNNING_EXPORTS,
        reserve_bytes: int = SPACE_RESERVE_BYTES,
        keep_seconds: float = KEEP_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._segments = segments
        self._roots = roots  # read per export: volumes come and go
        self.directory = directory
        self._writer = writer
        self.max_seconds = max_seconds
        self._reserve = reserve_bytes
        self._running = threading.BoundedSemaphore(max_running)
        self._max_running = max_running
        self._keep_seconds = keep_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._kept: dict[tuple[str, datetime, datetime], _Kept] = {}

    def export(
        self,
        stream: str,
        start: datetime,
        end: datetime,
        cancelled: threading.Event | None = None,
    ) -> ExportedClip:
        """The stream's video of ``[start, end)`` as a file of the export directory, in use by
        the caller until `release`d. Raises an `ExportError` subclass saying why not."""
        check_export_range(start, end, self.max_seconds)
        self.expire()
        with self._lock:
            kept = self._kept.get((stream, start, end))
            if kept is not None and kept.clip.path.is_file():
                kept.users += 1
                return kept.clip
        clip = self._make(stream, start, end, cancelled)
        if clip.complete:  # an incomplete one is not kept: asked again, it is made anew
            with self._lock:
                self._kept[(stream, start, end)] = _Kept(clip, users=1, last_used=self._clock())
        return clip

    def release(self, clip: ExportedClip) -> None:
        """The caller is done with `clip` (sent, or the client went away)."""
        with self._lock:
            kept_clip = False
            for kept in self._kept.values():
                if kept.clip is clip:
                    kept.users -= 1
                    kept.last_used = self._clock()
                    kept_clip = True
        if not kept_clip:
            clip.path.unlink(missing_ok=True)
        self.expire()

    def expire(self) -> None:
        """Delete the kept clips nobody used for `keep_seconds`."""
        now = self._clock()
        with self._lock:
            old = [
                key for key, kept in self._kept.items()
                if kept.users <= 0 and now - kept.last_used >= self._keep_seconds
            ]  # fmt: skip
            gone = [self._kept.pop(key).clip for key in old]
        for clip in gone:
            clip.path.unlink(missing_ok=True)

    def _make(
        self, stream: str, start: datetime, end: datetime, cancelled: threading.Event | None
    ) -> ExportedClip:
        rows = self._segments.list_segments(stream=stream, start=start, end=end, limit=MAX_FILES)
        files: list[tuple[Path, datetime]] = []
        needed = 0
        for row in rows:
            try:
                path = segment_file(row, tuple(self._roots))
            except SegmentFileUnavailable as why:
                logger.info("%s: export leaves out segment %d: %s", stream, row.id, why)
                continue
            files.append((path, row.start))
            needed += path.stat().st_size
        if not files:
            raise self._no_video(stream, start, end)
        self.directory.mkdir(parents=True, exist_ok=True)
        needed = 2 * needed + self._reserve  # the output and mp4mux's scratch copy
        free = shutil.disk_usage(self.directory).free
        if free < needed:
            raise NotEnoughSpace(
                f"not enough free disk space for this export: it needs about "
                f"{needed / 1e6:.0f} MB (with a reserve for recording), {free / 1e6:.0f} MB free"
            )
        if not self._running.acquire(blocking=False):
            raise TooManyExports(
                f"{self._max_running} exports are being written already; try again when one "
                "has finished"
            )
        name = f"{EXPORT_PREFIX}{uuid.uuid4().hex}"
        output = self.directory / f"{name}.mp4"
        scratch = self.directory / f"{name}.mdat"
        try:
            clip = self._writer(files, start, end, output, scratch=scratch, cancelled=cancelled)
            if clip is None:
                output.unlink(missing_ok=True)
                raise self._no_video(stream, start, end)
            logger.info(
                "%s: exported %s to %s: %.1f s of video, %.1f s of gaps skipped",
                stream, clip.first_frame.isoformat(), clip.end.isoformat(),
                clip.duration_s, clip.skipped_s,
            )  # fmt: skip
            return ExportedClip(
                path=output, stream=stream, first_frame=clip.first_frame, end=clip.end,
                duration_s=clip.duration_s, size_bytes=output.stat().st_size,
                skipped_s=clip.skipped_s, unreadable_files=clip.unreadable_files,
                ended_early=clip.ended_early,
                complete=self._complete(stream, rows, clip.end, end),
            )  # fmt: skip
        except ExportError:
            raise
        except Exception as error:
            output.unlink(missing_ok=True)
            if cancelled is not None and cancelled.is_set():
                raise ExportWriteFailed("the export was cancelled") from error
            logger.exception("%s: export failed", stream)
            # The details (GStreamer's message, paths) are for the log, not for API clients.
            raise ExportWriteFailed("the export could not be written (see Vigil's log)") from error
        finally:
            scratch.unlink(missing_ok=True)
            self._running.release()

    def _complete(
        self, stream: str, rows: Sequence[SegmentRow], clip_end: datetime, end: datetime
    ) -> bool:
        """True unless recording may still add to a clip of a range ending at `end` that
        reaches `clip_end`: the clip reaches `end`, or a closed segment does, or the index
        has video starting at or after `end` (what the clip lacks then is a gap, not video
        still to come)."""
        if clip_end >= end:
            return True
        if any(row.status != SegmentStatus.OPEN and row.end is not None and row.end >= end
               for row in rows):  # fmt: skip
            return True
        _before, after = self._segments.nearest(stream, end, end)
        return after is not None

    def _no_video(self, stream: str, start: datetime, end: datetime) -> NoVideoInRange:
        before, after = self._segments.nearest(stream, start, end)
        return NoVideoInRange(
            f"stream '{stream}' has no video between {start.isoformat()} and {end.isoformat()}",
            before,
            after,
        )

    def sweep(self) -> int:
        """Delete every export file (at start-up: what a crash left; at stop: what is kept);
        returns how many files went."""
        with self._lock:
            self._kept.clear()
        if not self.directory.is_dir():
            return 0
        removed = 0
        for leftover in self.directory.glob(f"{EXPORT_PREFIX}*"):
            if leftover.is_file():
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed
