"""The stored event history (`events` table): appended in batches, listed newest first, pruned.

Each row keeps the event's JSON form (`vigil.events.event_to_dict`) as written, plus the
columns filters need (time, type, stream, and the object label of detection events). Rows are
ordered by id, which is the order events were appended in: the bus's order, and a cursor that
never skips or repeats a row the way a timestamp cursor would when two events share a
microsecond.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, false, func, insert, or_, select

from vigil.events import Event, event_to_dict
from vigil.store.db import Database
from vigil.store.models import StoredEvent
from vigil.store.timestamps import to_us

# One DELETE removes at most this many rows, so pruning a long backlog (a lowered limit, the
# first start after months) never holds the single writer for long at a time.
PRUNE_BATCH = 5000


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Which stored events to list. Empty `types`/`streams`/`labels` mean any.

    `types` are patterns as for `vigil.events.type_matches` (``stream`` selects
    ``stream.state``). `since` is inclusive, `until` exclusive; `before` is an event id, for
    the next page of a newest-first listing.
    """

    types: tuple[str, ...] = ()
    streams: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    before: int | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored event: its id and its JSON form (``type``, ``at``, ``stream``?, fields)."""

    id: int
    data: dict[str, Any]


class EventStore:
    """The `events` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def append(self, events: Sequence[Event]) -> None:
        """Store `events` in one transaction, in order (one fsync for a whole batch)."""
        if not events:
            return
        rows = []
        for event in events:
            data = event_to_dict(event)
            label = data.get("label")
            rows.append({
                "at_us": to_us(event.at), "type": data["type"], "stream": data.get("stream"),
                "data": json.dumps(data, separators=(",", ":"), ensure_ascii=False),
                "label": label if isinstance(label, str) else None,
            })  # fmt: skip
        with self._db.begin() as session:
            session.execute(insert(StoredEvent), rows)

    def list_events(self, query: EventQuery) -> list[EventRecord]:
        """Events matching `query`, newest first, at most `query.limit`."""
        statement = select(StoredEvent.id, StoredEvent.data)
        if query.types:
            statement = statement.where(_type_filter(query.types))
        if query.streams:
            statement = statement.where(StoredEvent.stream.in_(query.streams))
        if query.labels:
            statement = statement.where(StoredEvent.label.in_(query.labels))
        if query.since is not None:
            statement = statement.where(StoredEvent.at_us >= to_us(query.since))
        if query.until is not None:
            statement = statement.where(StoredEvent.at_us < to_us(query.until))
        if query.before is not None:
            statement = statement.where(StoredEvent.id < query.before)
        statement = statement.order_by(StoredEvent.id.desc()).limit(query.limit)
        with self._db.session() as session:
            return [EventRecord(id=row.id, data=json.loads(row.data))
                    for row in session.execute(statement)]  # fmt: skip

    def get(self, event_id: int) -> EventRecord | None:
        """The stored event with this id, if it is (still) stored."""
        with self._db.session() as session:
            data = session.scalar(select(StoredEvent.data).where(StoredEvent.id == event_id))
        return None if data is None else EventRecord(id=event_id, data=json.loads(data))

    def count(self) -> int:
        """How many events are stored."""
        with self._db.session() as session:
            return session.scalar(select(func.count()).select_from(StoredEvent)) or 0

    def prune(self, *, older_than: datetime, max_rows: int, batch: int = PRUNE_BATCH) -> int:
        """Delete up to `batch` events that are before `older_than` or beyond the newest
        `max_rows`, oldest first; returns how many went. Call again while it returns `batch`."""
        with self._db.begin() as session:
            # The id of the newest row that falls outside the count limit, if any.
            cut_id = session.scalar(
                select(StoredEvent.id).order_by(StoredEvent.id.desc()).offset(max_rows).limit(1)
            )
            doomed = StoredEvent.at_us < to_us(older_than)
            if cut_id is not None:
                doomed = or_(doomed, StoredEvent.id <= cut_id)
            ids = select(StoredEvent.id).where(doomed).order_by(StoredEvent.id).limit(batch)
            result = session.execute(delete(StoredEvent).where(StoredEvent.id.in_(ids)))
            return int(getattr(result, "rowcount", 0) or 0)


def _type_filter(patterns: Sequence[str]) -> ColumnElement[bool]:
    """SQL for `vigil.events.type_matches`: the type itself or any type below it."""
    clause: ColumnElement[bool] = false()
    for pattern in patterns:
        prefix = pattern if pattern.endswith(".") else pattern + "."
        # substr, not LIKE: LIKE ignores case in SQLite, and the live filter does not.
        starts = func.substr(StoredEvent.type, 1, len(prefix)) == prefix
        clause = or_(clause, StoredEvent.type == pattern, starts)
    return clause
