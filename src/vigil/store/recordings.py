"""Queries on recorded segments and recording gaps: the recording index.

Times cross this interface as timezone-aware UTC datetimes and are stored as integer
microseconds since the epoch (exact, sortable, no time-zone text to parse).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select

from vigil.config.recording import MAX_SEGMENT_SECONDS
from vigil.store.db import Database
from vigil.store.models import Gap, Segment, SegmentStatus
from vigil.store.timestamps import from_us, to_us, utc_now

Clock = Callable[[], datetime]

# Segments are cut after at most MAX_SEGMENT_SECONDS (one keyframe later); twice that bounds
# every segment, even one kept growing while no volume had room for the next.
LONGEST_SEGMENT_US = 2 * MAX_SEGMENT_SECONDS * 1_000_000


class SegmentNotFoundError(LookupError):
    """No segment row has the given id."""


class GapNotFoundError(LookupError):
    """No gap row has the given id."""


@dataclass(frozen=True, slots=True)
class SegmentRow:
    """One recorded file as the index knows it."""

    id: int
    stream: str
    path: Path
    start: datetime
    end: datetime | None
    duration_s: float | None
    size_bytes: int | None
    codec: str | None
    width: int | None
    height: int | None
    status: SegmentStatus
    created_at: datetime
    closed_at: datetime | None
    note: str | None
    volume: str | None = None  # id of the volume the file is on; None: not known

    @classmethod
    def from_columns(cls, row: Any) -> SegmentRow:
        """From a result row of the `segments` table's columns (no ORM object built)."""
        return cls(
            id=row.id, stream=row.stream, path=Path(row.path), start=from_us(row.start_us),
            end=None if row.end_us is None else from_us(row.end_us), duration_s=row.duration_s,
            size_bytes=row.size_bytes, codec=row.codec, width=row.width, height=row.height,
            status=SegmentStatus(row.status), created_at=from_us(row.created_at_us),
            closed_at=None if row.closed_at_us is None else from_us(row.closed_at_us),
            note=row.note, volume=row.volume,
        )  # fmt: skip

    @classmethod
    def from_model(cls, segment: Segment) -> SegmentRow:
        return cls(
            id=segment.id,
            stream=segment.stream,
            path=Path(segment.path),
            start=from_us(segment.start_us),
            end=None if segment.end_us is None else from_us(segment.end_us),
            duration_s=segment.duration_s,
            size_bytes=segment.size_bytes,
            codec=segment.codec,
            width=segment.width,
            height=segment.height,
            status=SegmentStatus(segment.status),
            created_at=from_us(segment.created_at_us),
            closed_at=None if segment.closed_at_us is None else from_us(segment.closed_at_us),
            note=segment.note,
            volume=segment.volume,
        )


@dataclass(frozen=True, slots=True)
class GapRow:
    """A stretch of time a stream was not recorded; `end` is None while it lasts."""

    id: int
    stream: str
    start: datetime
    end: datetime | None
    reason: str

    @classmethod
    def from_model(cls, gap: Gap) -> GapRow:
        return cls(
            id=gap.id,
            stream=gap.stream,
            start=from_us(gap.start_us),
            end=None if gap.end_us is None else from_us(gap.end_us),
            reason=gap.reason,
        )


def _absolute(path: Path) -> str:
    # Rows are matched by path (unique); a relative path would depend on the working directory.
    if not path.is_absolute():
        raise ValueError(f"segment path must be absolute: {path}")
    return str(path)


class SegmentStore:
    """Insert, close and query segment rows. Call the writing methods from one thread."""

    def __init__(self, db: Database, *, clock: Clock = utc_now) -> None:
        self._db = db
        self._clock = clock

    def open_segment(
        self,
        *,
        stream: str,
        path: Path,
        start: datetime,
        codec: str | None = None,
        width: int | None = None,
        height: int | None = None,
        volume: str | None = None,
    ) -> int:
        """Record that `path` started being written at `start`; return the new row's id."""
        segment = Segment(
            volume=volume,
            stream=stream,
            path=_absolute(path),
            start_us=to_us(start),
            codec=codec,
            width=width,
            height=height,
            status=SegmentStatus.OPEN.value,
            created_at_us=to_us(self._clock()),
        )
        with self._db.begin() as session:
            session.add(segment)
            session.flush()
            return segment.id

    def close_segment(
        self,
        segment_id: int,
        *,
        end: datetime,
        duration_s: float,
        size_bytes: int,
        codec: str | None = None,
        width: int | None = None,
        height: int | None = None,
        status: SegmentStatus = SegmentStatus.COMPLETE,
    ) -> None:
        """Fill in what is known once a file is finished. Codec and size, when None, are kept.

        Raises `SegmentNotFoundError` if there is no such row.
        """
        with self._db.begin() as session:
            segment = session.get(Segment, segment_id)
            if segment is None:
                raise SegmentNotFoundError(segment_id)
            segment.end_us = to_us(end)
            segment.duration_s = duration_s
            segment.size_bytes = size_bytes
            if codec is not None:
                segment.codec = codec
            if width is not None:
                segment.width = width
            if height is not None:
                segment.height = height
            segment.status = SegmentStatus(status).value
            segment.closed_at_us = to_us(self._clock())

    def add_complete(
        self,
        *,
        stream: str,
        path: Path,
        start: datetime,
        end: datetime,
        duration_s: float,
        size_bytes: int,
        codec: str | None,
        width: int | None,
        height: int | None,
        status: SegmentStatus = SegmentStatus.REPAIRED,
        volume: str | None = None,
    ) -> int:
        """Index a finished file found on disk in one step; return the new row's id."""
        now_us = to_us(self._clock())
        segment = Segment(
            volume=volume,
            stream=stream,
            path=_absolute(path),
            start_us=to_us(start),
            end_us=to_us(end),
            duration_s=duration_s,
            size_bytes=size_bytes,
            codec=codec,
            width=width,
            height=height,
            status=SegmentStatus(status).value,
            created_at_us=now_us,
            closed_at_us=now_us,
        )
        with self._db.begin() as session:
            session.add(segment)
            session.flush()
            return segment.id

    def mark_missing(self, segment_id: int, *, note: str | None = None) -> None:
        """Record that the row's file is gone or unusable; `note` says why (kept if None)."""
        with self._db.begin() as session:
            segment = session.get(Segment, segment_id)
            if segment is None:
                raise SegmentNotFoundError(segment_id)
            segment.status = SegmentStatus.MISSING.value
            if note is not None:
                segment.note = note
            if segment.closed_at_us is None:
                segment.closed_at_us = to_us(self._clock())

    def get(self, segment_id: int) -> SegmentRow | None:
        with self._db.session() as session:
            segment = session.get(Segment, segment_id)
            return None if segment is None else SegmentRow.from_model(segment)

    def get_by_path(self, path: Path) -> SegmentRow | None:
        with self._db.session() as session:
            segment = session.scalars(select(Segment).where(Segment.path == str(path))).first()
            return None if segment is None else SegmentRow.from_model(segment)

    def latest_end(self, stream: str) -> datetime | None:
        """End of the stream's most recent finished segment (where a new gap would start)."""
        query = (
            select(Segment.end_us)
            .where(Segment.stream == stream, Segment.end_us.is_not(None))
            .order_by(Segment.end_us.desc())
            .limit(1)
        )
        with self._db.session() as session:
            value = session.scalar(query)
        return None if value is None else from_us(value)

    def open_segments(self) -> list[SegmentRow]:
        """Rows still marked open, oldest first (after a crash: the files to repair)."""
        query = (
            select(Segment)
            .where(Segment.status == SegmentStatus.OPEN.value)
            .order_by(Segment.start_us, Segment.id)
        )
        with self._db.session() as session:
            return [SegmentRow.from_model(segment) for segment in session.scalars(query)]

    def list_segments(
        self,
        *,
        stream: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
        offset: int = 0,
        after: tuple[datetime, int] | None = None,
    ) -> list[SegmentRow]:
        """Segments overlapping ``[start, end)``, ordered by start (then id).

        A row covers ``[start, end)``; an open row without an end covers everything after its
        start (it is still being written); any other row without an end covers only its start.
        `after` is the (start, id) of the last row of the previous page: keyset paging, which
        stays cheap deep into millions of rows and does not skip or repeat rows when new ones
        are added meanwhile (an offset does both).
        """
        query = select(Segment)
        if stream is not None:
            query = query.where(Segment.stream == stream)
        if after is not None:
            after_us, after_id = to_us(after[0]), after[1]
            query = query.where(
                # The plain bound lets SQLite seek in the index; the OR alone it cannot use.
                Segment.start_us >= after_us,
                or_(
                    Segment.start_us > after_us,
                    and_(Segment.start_us == after_us, Segment.id > after_id),
                ),
            )
        if end is not None:
            query = query.where(Segment.start_us < to_us(end))
        if start is not None:
            start_us = to_us(start)
            # No segment is longer than LONGEST_SEGMENT: rows that start earlier cannot reach
            # `start`, and saying so turns a walk from the stream's first segment into a seek.
            query = query.where(Segment.start_us >= start_us - LONGEST_SEGMENT_US)
            query = query.where(
                or_(
                    Segment.end_us > start_us,
                    and_(
                        Segment.end_us.is_(None),
                        or_(
                            Segment.status == SegmentStatus.OPEN.value,
                            Segment.start_us >= start_us,
                        ),
                    ),
                )
            )
        query = query.order_by(Segment.start_us, Segment.id).limit(limit).offset(offset)
        with self._db.session() as session:
            # Plain rows, not ORM objects: building a thousand of those cost more than the SQL.
            rows = session.execute(query.with_only_columns(*Segment.__table__.columns))
            return [SegmentRow.from_columns(row) for row in rows]

    def has_segments(self, stream: str) -> bool:
        """True if any row (of any status) belongs to `stream`."""
        query = select(Segment.id).where(Segment.stream == stream).limit(1)
        with self._db.session() as session:
            return session.scalar(query) is not None

    def nearest(
        self, stream: str, start: datetime, end: datetime
    ) -> tuple[datetime | None, datetime | None]:
        """Around ``[start, end)``: the end of the latest video that ends at or before `start`
        and the start of the earliest video that starts at or after `end` (None if there is
        none). Rows whose file is missing do not count: there is nothing there to watch."""
        playable = (Segment.stream == stream, Segment.status != SegmentStatus.MISSING.value)
        before = (
            select(Segment.end_us)
            .where(*playable, Segment.end_us.is_not(None), Segment.end_us <= to_us(start))
            .order_by(Segment.end_us.desc())
            .limit(1)
        )
        after = (
            select(Segment.start_us)
            .where(*playable, Segment.start_us >= to_us(end))
            .order_by(Segment.start_us)
            .limit(1)
        )
        with self._db.session() as session:
            before_us, after_us = session.scalar(before), session.scalar(after)
        return (
            None if before_us is None else from_us(before_us),
            None if after_us is None else from_us(after_us),
        )

    def known_paths(self, under: Path) -> set[str]:
        """The paths of all rows (any status) whose file lies anywhere below the directory `under`,
        as stored: ``str`` of the absolute path.

        One range scan of the unique index on `path`, so a caller walking a large tree can load
        the rows of one directory at a time instead of asking about every file. Strings, not
        `Path`s: building a `Path` per row and per file seen made checking 100,000 known files
        take 3.4 s instead of 0.45 s.
        """
        prefix = _absolute(under).rstrip("/") + "/"
        # Every string starting with `prefix` sorts before `prefix` with its '/' replaced by the
        # next character, '0' (SQLite compares text bytewise; UTF-8 keeps code-point order).
        query = select(Segment.path).where(Segment.path >= prefix, Segment.path < prefix[:-1] + "0")
        with self._db.session() as session:
            return set(session.scalars(query))


class GapStore:
    """Open, close and query recording gaps. Call the writing methods from one thread."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def open_gap(self, stream: str, start: datetime, reason: str) -> int:
        """Record that `stream` stopped being recorded at `start`; return the gap's id."""
        gap = Gap(stream=stream, start_us=to_us(start), reason=reason)
        with self._db.begin() as session:
            session.add(gap)
            session.flush()
            return gap.id

    def close_gap(self, gap_id: int, end: datetime, *, start: datetime | None = None) -> None:
        """Record that recording resumed at `end` (and, when known better now, when it stopped).
        Raises `GapNotFoundError` if no such gap."""
        with self._db.begin() as session:
            gap = session.get(Gap, gap_id)
            if gap is None:
                raise GapNotFoundError(gap_id)
            if start is not None:
                gap.start_us = min(to_us(start), to_us(end))
            gap.end_us = max(to_us(end), gap.start_us)

    def add_gap(self, stream: str, start: datetime, end: datetime, reason: str) -> int:
        """Record a gap that is already over (e.g. the time Vigil was not running)."""
        gap = Gap(stream=stream, start_us=to_us(start), end_us=to_us(end), reason=reason)
        with self._db.begin() as session:
            session.add(gap)
            session.flush()
            return gap.id

    def open_gaps(self) -> list[GapRow]:
        """Gaps with no end (left by a crash, or ongoing)."""
        query = select(Gap).where(Gap.end_us.is_(None)).order_by(Gap.start_us)
        with self._db.session() as session:
            return [GapRow.from_model(gap) for gap in session.scalars(query)]

    def list_gaps(
        self,
        stream: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int | None = None,
    ) -> list[GapRow]:
        """Gaps overlapping ``[start, end)``, ordered by start; an ongoing gap has no end."""
        query = select(Gap)
        if stream is not None:
            query = query.where(Gap.stream == stream)
        if end is not None:
            query = query.where(Gap.start_us < to_us(end))
        if start is not None:
            query = query.where(or_(Gap.end_us.is_(None), Gap.end_us > to_us(start)))
        query = query.order_by(Gap.start_us, Gap.id).limit(limit)
        with self._db.session() as session:
            return [GapRow.from_model(gap) for gap in session.scalars(query)]
