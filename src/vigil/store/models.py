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
        # Retention takes the oldest segments of one volume.
        Index("ix_segments_volume_start_us", "volume", "start_us"),
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
    volume: Mapped[str | None] = mapped_column(String)  # the volume's id; NULL: not known


class Volume(Base):
    """A recording volume Vigil has used: its identity and the path it was last seen at."""

    __tablename__ = "volumes"

    id: Mapped[str] = mapped_column(String, primary_key=True)
    path: Mapped[str] = mapped_column(String)
    first_seen_us: Mapped[int] = mapped_column(Integer)
    last_seen_us: Mapped[int] = mapped_column(Integer)


class Hold(Base):
    """Recordings of `stream` (all streams if NULL) within [start_us, end_us) that retention
    must keep until `until_us` (for ever if NULL): an incident, an event clip."""

    __tablename__ = "holds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream: Mapped[str | None] = mapped_column(String)
    start_us: Mapped[int] = mapped_column(Integer)
    end_us: Mapped[int] = mapped_column(Integer)
    until_us: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String)
    created_at_us: Mapped[int] = mapped_column(Integer)


class Gap(Base):
    """A stretch of time a stream was not recorded; `end_us` is NULL while it lasts."""

    __tablename__ = "gaps"
    __table_args__ = (Index("ix_gaps_stream_start_us", "stream", "start_us"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream: Mapped[str] = mapped_column(String)
    start_us: Mapped[int] = mapped_column(Integer)
    end_us: Mapped[int | None] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String)


class ApiToken(Base):
    """A bearer token of the HTTP API. Only the token's SHA-256 is stored: tokens are random
    (256 bits), so a slow password hash would add nothing but latency to every request."""

    __tablename__ = "api_tokens"
    __table_args__ = (CheckConstraint("role IN ('viewer', 'operator', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True)
    role: Mapped[str] = mapped_column(String)
    token_hash: Mapped[str] = mapped_column(String, unique=True)
    created_at_us: Mapped[int] = mapped_column(Integer)
    revoked_at_us: Mapped[int | None] = mapped_column(Integer)


class StoredEvent(Base):
    """An event from the bus, kept for `GET /api/v1/events` (bounded retention)."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_at_us", "at_us"),
        Index("ix_events_type_at_us", "type", "at_us"),
        Index("ix_events_stream_at_us", "stream", "at_us"),
        Index("ix_events_label_at_us", "label", "at_us"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at_us: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String)
    stream: Mapped[str | None] = mapped_column(String)
    data: Mapped[str] = mapped_column(String)  # the event as JSON
    label: Mapped[str | None] = mapped_column(String)  # a detection event's object label


class StreamOverlay(Base):
    """A stream as changed through the API, layered over the configuration file.

    `config` is the stream's full entry as JSON (what it would be in the file); NULL marks a
    stream of the file deleted through the API. `key` is the name folded to lower case, since
    stream names are unique ignoring case."""

    __tablename__ = "stream_overlay"

    key: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    config: Mapped[str | None] = mapped_column(String)
    updated_at_us: Mapped[int] = mapped_column(Integer)
