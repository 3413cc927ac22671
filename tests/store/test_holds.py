"""The holds table: expired holds go in one statement; those in force, or without an end, stay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vigil.store.db import Database
from vigil.store.holds import HoldStore

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_expired_holds_are_deleted_and_those_in_force_stay(db: Database) -> None:
    holds = HoldStore(db)
    for name, until in [("expired", NOW - timedelta(days=1)),
                        ("ends now", NOW),
                        ("in force", NOW + timedelta(seconds=1)),
                        ("for ever", None)]:  # fmt: skip
        holds.add(stream="gate", start=NOW - timedelta(days=3), end=NOW - timedelta(days=2),
                  until=until, reason=name)  # fmt: skip
    assert holds.remove_expired(NOW) == 2
    assert [h.reason for h in holds.list()] == ["in force", "for ever"]
    # What is left is exactly what retention honours at that moment.
    assert holds.list() == holds.list(active_at=NOW)
    assert holds.remove_expired(NOW) == 0
