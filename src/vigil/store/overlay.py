"""Streams changed through the API, stored so they survive restarts (see config/overlay.py)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import delete, select

from vigil.config.overlay import OverlayEntry
from vigil.store.db import Database
from vigil.store.models import StreamOverlay
from vigil.store.timestamps import to_us, utc_now


class OverlayStore:
    """The `stream_overlay` table; keys are stream names folded to lower case."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def load(self) -> dict[str, OverlayEntry]:
        """Every entry, in the order they were first stored."""
        with self._db.session() as session:
            rows = session.scalars(select(StreamOverlay).order_by(StreamOverlay.updated_at_us))
            return {
                row.key: OverlayEntry(
                    row.name, None if row.config is None else json.loads(row.config)
                )
                for row in rows
            }

    def put(self, name: str, entry: dict[str, Any] | None) -> None:
        """Store a stream's whole entry (or a tombstone: None), keeping its first position."""
        key = name.casefold()
        with self._db.begin() as session:
            row = session.get(StreamOverlay, key)
            text = None if entry is None else json.dumps(entry, sort_keys=True)
            if row is None:
                session.add(StreamOverlay(key=key, name=name, config=text,
                                          updated_at_us=to_us(utc_now())))  # fmt: skip
            else:
                row.name, row.config = name, text

    def remove(self, name: str) -> bool:
        """Forget the API's change of a stream (the file's entry, if any, applies again)."""
        with self._db.begin() as session:
            result = session.execute(
                delete(StreamOverlay).where(StreamOverlay.key == name.casefold())
            )
            return bool(getattr(result, "rowcount", 0))

    def replace(self, entries: dict[str, OverlayEntry]) -> None:
        """Make the overlay exactly `entries` (PUT /config), in one transaction."""
        with self._db.begin() as session:
            session.execute(delete(StreamOverlay))
            now = to_us(utc_now())
            for offset, (key, item) in enumerate(entries.items()):
                text = None if item.entry is None else json.dumps(item.entry, sort_keys=True)
                session.add(StreamOverlay(key=key, name=item.name, config=text,
                                          updated_at_us=now + offset))  # fmt: skip


def _entry(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    entry: dict[str, Any] = json.loads(text)
    return entry
