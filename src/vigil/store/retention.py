"""The queries behind retention: the oldest segments of a volume, the expired ones of a stream,
and deleting rows together with their files."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, and_, delete, func, or_, select, text

from vigil.store.db import Database
from vigil.store.models import Gap, Segment, SegmentStatus
from vigil.store.timestamps import from_us


@dataclass(frozen=True, slots=True)
class Candidate:
    """A segment retention may delete."""

    id: int
    stream: str
    path: str
    start_us: int
    end_us: int
    size_bytes: int
    volume: str | None


_CLOSED = Segment.status != SegmentStatus.OPEN.value


# The distinct volumes of the segments by skipping through `(volume, start_us)`: one seek per
# volume instead of a scan of every row (SQLite's DISTINCT would read the whole index).
_DISTINCT_VOLUMES = """
WITH RECURSIVE v(volume) AS (
    SELECT min(volume) FROM segments
    UNION ALL
    SELECT (SELECT min(volume) FROM segments WHERE volume > v.volume) FROM v
    WHERE v.volume IS NOT NULL
)
SELECT volume FROM v WHERE volume IS NOT NULL
"""


def _candidates(rows: Sequence[Segment]) -> list[Candidate]:
    return [
        Candidate(
            id=row.id, stream=row.stream, path=row.path, start_us=row.start_us,
            end_us=row.end_us if row.end_us is not None else row.start_us,
            size_bytes=row.size_bytes or 0, volume=row.volume,
        )
        for row in rows
    ]  # fmt: skip


class RetentionStore:
    """Find and delete old segments. Call `delete` from the DB-writer thread."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def oldest(
        self, volume: str, *, after: tuple[int, int] | None = None, limit: int = 64
    ) -> list[Candidate]:
        """The volume's oldest finished segments (by start, then id), after `after`."""
        query = select(Segment).where(Segment.volume == volume, _CLOSED)
        return self._page(query, after, limit)

    def expired(
        self, stream: str, before_us: int, *, after: tuple[int, int] | None = None,
        limit: int = 256,
    ) -> list[Candidate]:  # fmt: skip
        """Finished segments of `stream` that ended before `before_us`, oldest first."""
        query = select(Segment).where(
            Segment.stream == stream, _CLOSED, Segment.start_us < before_us,
            or_(Segment.end_us.is_(None), Segment.end_us <= before_us),
        )  # fmt: skip
        return self._page(query, after, limit)

    def _page(
        self, query: Select[Segment], after: tuple[int, int] | None, limit: int
    ) -> list[Candidate]:
        """`query`'s rows by (start, id), from after `after` (keyset paging), `limit` of them."""
        if after is not None:
            query = query.where(
                Segment.start_us >= after[0],  # a bound the index can seek to (the OR is not)
                or_(
                    Segment.start_us > after[0],
                    and_(Segment.start_us == after[0], Segment.id > after[1]),
                ),
            )
        query = query.order_by(Segment.start_us, Segment.id).limit(limit)
        with self._db.session() as session:
            return _candidates(list(session.scalars(query)))

    def delete(
        self, candidates: Sequence[Candidate], remove_file: Callable[[Candidate], bool]
    ) -> list[Candidate]:
        """Delete each candidate's file (`remove_file` says whether it is gone) and, in the
        same transaction, the rows of the files that went. Returns those."""
        gone: list[Candidate] = []
        with self._db.begin() as session:
            for candidate in candidates:
                if remove_file(candidate):
                    gone.append(candidate)
            if gone:
                session.execute(delete(Segment).where(Segment.id.in_([c.id for c in gone])))
        return gone

    def delete_gaps_before(self, stream: str, before_us: int) -> int:
        """Gaps of `stream` that ended before `before_us` (older than anything kept)."""
        with self._db.begin() as session:
            result = session.execute(
                delete(Gap).where(
                    Gap.stream == stream, Gap.end_us.is_not(None), Gap.end_us < before_us
                )
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def oldest_start(self) -> datetime | None:
        """Start of the oldest recording still indexed (any stream). A few index seeks per
        volume (`min` over `(volume, start_us)`), not a scan of the whole index."""
        with self._db.session() as session:
            volumes: list[str | None] = [*session.scalars(text(_DISTINCT_VOLUMES)), None]
            firsts = [
                session.scalar(
                    select(func.min(Segment.start_us)).where(
                        Segment.volume.is_(None) if volume is None else Segment.volume == volume
                    )
                )
                for volume in volumes
            ]
        values = [value for value in firsts if value is not None]
        return from_us(min(values)) if values else None
