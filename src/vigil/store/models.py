"""ORM table definitions; kept in step with `migrations/versions` (a test compares the two)."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import CheckConstraint, Float, Index, Integer, MetaData, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints let future Alembic batch migrations (SQLite rebuilds tables to alter them)
# find and drop constraints by name.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class SegmentStatus(StrEnum):
    """Life of a segment row: written while recording, then closed, repaired or lost."""

    OPEN = "open"
    COMPLETE = "complete"
    REPAIRED = "repaired"
    MISSING = "missing"


class Base(DeclarativeBase):
    """Declarative base of every Vigil table."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Segment(Base):
    """One recorded file. Times are UTC microseconds since the epoch."""

    __tablename__ = "segments"
    __table_args__ = (
        # Leading `stream` column also serves lookups by stream alone.
        Index("ix_segments_stream_start_us", "stream", "start_us"),
        # Start-up repair looks for open rows among millions of closed ones.
        Index("ix_segments_status", "status"),
        CheckConstraint("status IN ('open', 'complete', 'repaired', 'missing')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream: Mapped[str] = mapped_column(String)
    path: Mapped[str] = mapped_column(String, unique=True)
    start_us: Mapped[int] = mapped_column(Integer)
    end_us: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    codec: Mapped[str | None] = mapped_column(String)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String)
    created_at_us: Mapped[int] = mapped_column(Integer)
    closed_at_us: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(String)


class Gap(Base):
    """A stretch of time a stream was not recorded; `end_us` is NULL while it lasts."""

    __tablename__ = "gaps"
    __table_args__ = (Index("ix_gaps_stream_start_us", "stream", "start_us"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream: Mapped[str] = mapped_column(String)
    start_us: Mapped[int] = mapped_column(Integer)
    end_us: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String)
