"""Volumes Vigil has recorded to: their ids and where each was last seen, so a disk is found
again after a restart, and the rows of a disk re-inserted at another path follow it there."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, or_, select, update

from vigil.store.db import Database
from vigil.store.models import Segment, SegmentStatus, Volume
from vigil.store.timestamps import to_us, utc_now


class VolumeStore:
    """Read and record volumes. Call the writing methods from the DB-writer thread."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def paths(self) -> dict[str, str]:
        """Volume id → the path it was last seen at."""
        with self._db.session() as session:
            return {row.id: row.path for row in session.scalars(select(Volume))}

    def seen(self, volume_id: str, path: Path) -> None:
        """Remember that `volume_id` is at `path` now."""
        now = to_us(utc_now())
        with self._db.begin() as session:
            row = session.get(Volume, volume_id)
            if row is None:
                session.add(Volume(id=volume_id, path=str(path), first_seen_us=now,
                                   last_seen_us=now))  # fmt: skip
            else:
                row.path, row.last_seen_us = str(path), now

    def relocate(self, volume_id: str, old: Path, new: Path) -> int:
        """Rewrite the paths of the volume's segment rows from under `old` to under `new` (the
        disk was mounted somewhere else); returns how many rows moved."""
        old_prefix, new_prefix = str(old).rstrip("/") + "/", str(new).rstrip("/") + "/"
        with self._db.begin() as session:
            result = session.execute(
                update(Segment)
                .where(
                    Segment.path >= old_prefix,
                    Segment.path < old_prefix[:-1] + "0",
                    (Segment.volume == volume_id) | Segment.volume.is_(None),
                )
                .values(
                    path=new_prefix + func.substr(Segment.path, len(old_prefix) + 1),
                    volume=volume_id,
                )
                .execution_options(synchronize_session=False)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def assign(self, volume_id: str, root: Path) -> int:
        """Give rows under `root` without a volume (older than volumes) this one's id."""
        prefix = str(root).rstrip("/") + "/"
        with self._db.begin() as session:
            result = session.execute(
                update(Segment)
                .where(
                    Segment.path >= prefix,
                    Segment.path < prefix[:-1] + "0",
                    Segment.volume.is_(None),
                )
                .values(volume=volume_id)
                .execution_options(synchronize_session=False)
            )
            return int(getattr(result, "rowcount", 0) or 0)

    def unprobed(self, volume_id: str) -> list[tuple[int, str]]:
        """(id, path) of the volume's closed rows never completed from their file (closed while
        the disk was away): the caller probes them now that it is back."""
        query = select(Segment.id, Segment.path).where(
            Segment.volume == volume_id,
            or_(Segment.size_bytes.is_(None), Segment.size_bytes == 0),
            Segment.status.in_([SegmentStatus.COMPLETE.value, SegmentStatus.REPAIRED.value]),
        )
        with self._db.session() as session:
            return [(row.id, row.path) for row in session.execute(query)]
