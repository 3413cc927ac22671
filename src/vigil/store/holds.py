"""Holds: stretches of recording that retention must keep (an incident, an event's clip)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select

from vigil.store.db import Database
from vigil.store.models import Hold
from vigil.store.timestamps import from_us, to_us, utc_now


class HoldNotFoundError(LookupError):
    """No hold has the given id."""


@dataclass(frozen=True, slots=True)
class HoldRow:
    """Keep `stream`'s recordings (every stream's if None) in [start, end) until `until`
    (for ever if None)."""

    id: int
    stream: str | None
    start: datetime
    end: datetime
    until: datetime | None
    reason: str
    created_at: datetime

    @classmethod
    def from_model(cls, hold: Hold) -> HoldRow:
        return cls(
            id=hold.id, stream=hold.stream, start=from_us(hold.start_us), end=from_us(hold.end_us),
            until=None if hold.until_us is None else from_us(hold.until_us), reason=hold.reason,
            created_at=from_us(hold.created_at_us),
        )  # fmt: skip

    def covers(self, stream: str, start_us: int, end_us: int) -> bool:
        """True if a segment of `stream` over [start_us, end_us) falls under this hold."""
        if self.stream is not None and self.stream.casefold() != stream.casefold():
            return False
        return start_us < to_us(self.end) and end_us > to_us(self.start)


class HoldStore:
    """Add, list and remove holds. Call the writing methods from the DB-writer thread."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        *,
        stream: str | None,
        start: datetime,
        end: datetime,
        until: datetime | None,
        reason: str,
    ) -> HoldRow:
        if end <= start:
            raise ValueError("a hold's end must be after its start")
        hold = Hold(
            stream=stream, start_us=to_us(start), end_us=to_us(end),
            until_us=None if until is None else to_us(until), reason=reason,
            created_at_us=to_us(utc_now()),
        )  # fmt: skip
        with self._db.begin() as session:
            session.add(hold)
            session.flush()
            return HoldRow.from_model(hold)

    def remove(self, hold_id: int) -> None:
        with self._db.begin() as session:
            hold = session.get(Hold, hold_id)
            if hold is None:
                raise HoldNotFoundError(hold_id)
            session.delete(hold)

    def remove_expired(self, now: datetime) -> int:
        """Delete the holds no longer in force at `now` (their `until` has passed; a hold
        without one stays), in one statement; returns how many went."""
        statement = delete(Hold).where(Hold.until_us.is_not(None), Hold.until_us <= to_us(now))
        with self._db.begin() as session:
            result = session.execute(statement)
            return int(getattr(result, "rowcount", 0) or 0)

    def get(self, hold_id: int) -> HoldRow | None:
        with self._db.session() as session:
            hold = session.get(Hold, hold_id)
            return None if hold is None else HoldRow.from_model(hold)

    def list(
        self, *, active_at: datetime | None = None, stream: str | None = None
    ) -> list[HoldRow]:
        """Holds, oldest first; with `active_at`, only those still in force then."""
        query = select(Hold)
        if active_at is not None:
            query = query.where(or_(Hold.until_us.is_(None), Hold.until_us > to_us(active_at)))
        if stream is not None:
            query = query.where(or_(Hold.stream.is_(None), Hold.stream == stream))
        query = query.order_by(Hold.start_us, Hold.id)
        with self._db.session() as session:
            return [HoldRow.from_model(hold) for hold in session.scalars(query)]
