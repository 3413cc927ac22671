"""The stored event history: batches, filters, newest-first paging, pruning by age and count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil.events import ConfigApplied, Event, GapOpened, SegmentOpened, StreamStateChanged
from vigil.store.db import Database
from vigil.store.events import EventQuery, EventStore

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _state(stream: str, seconds: float) -> StreamStateChanged:
    return StreamStateChanged(stream=stream, old="starting", new="streaming", reason="ok",
                              at=T0 + timedelta(seconds=seconds))  # fmt: skip


def _history() -> list[Event]:
    return [
        _state("gate", 0),
        SegmentOpened(
            stream="gate", segment_id=1, path="/g/1.mp4", start=T0, at=T0 + timedelta(seconds=1)
        ),
        GapOpened(stream="yard", gap_id=1, start=T0, reason="stall", at=T0 + timedelta(seconds=2)),
        ConfigApplied(source="file", added=("porch",), at=T0 + timedelta(seconds=3)),
        _state("yard", 4),
    ]


def _listed(store: EventStore, **query: object) -> list[tuple[str, str | None]]:
    return [(r.data["type"], r.data.get("stream"))
            for r in store.list_events(EventQuery(**query))]  # type: ignore[arg-type]  # fmt: skip


def test_events_are_stored_as_their_json_form_and_listed_newest_first(db: Database) -> None:
    store = EventStore(db)
    store.append(_history())
    records = store.list_events(EventQuery())
    assert [r.data["type"] for r in records] == [
        "stream.state", "config.applied", "gap.opened", "segment.opened", "stream.state",
    ]  # fmt: skip
    assert records[0].id > records[-1].id
    assert records[1].data == {"type": "config.applied", "at": "2026-11-24T12:00:03Z",
                               "source": "file", "added": ["porch"], "removed": [],
                               "changed": []}  # fmt: skip
    assert store.count() == 5


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"types": ("stream",)}, [("stream.state", "yard"), ("stream.state", "gate")]),
        ({"types": ("stream.state",)}, [("stream.state", "yard"), ("stream.state", "gate")]),
        ({"types": ("stream.",)}, [("stream.state", "yard"), ("stream.state", "gate")]),
        ({"types": ("STREAM",)}, []),
        ({"types": ("str",)}, []),
        ({"types": ("gap", "config")}, [("config.applied", None), ("gap.opened", "yard")]),
        ({"types": ("%",)}, []),
        ({"streams": ("gate",)}, [("segment.opened", "gate"), ("stream.state", "gate")]),
        ({"streams": ("gate", "yard"), "types": ("gap",)}, [("gap.opened", "yard")]),
        ({"since": T0 + timedelta(seconds=1), "until": T0 + timedelta(seconds=3)},
         [("gap.opened", "yard"), ("segment.opened", "gate")]),
        ({"limit": 2}, [("stream.state", "yard"), ("config.applied", None)]),
    ],
)  # fmt: skip
def test_filters(db: Database, query: dict[str, object], expected: list[object]) -> None:
    store = EventStore(db)
    store.append(_history())
    assert _listed(store, **query) == expected


def test_pages_follow_the_before_cursor(db: Database) -> None:
    store = EventStore(db)
    store.append([_state(f"cam{i}", i) for i in range(5)])
    first = store.list_events(EventQuery(limit=2))
    second = store.list_events(EventQuery(limit=2, before=first[-1].id))
    third = store.list_events(EventQuery(limit=2, before=second[-1].id))
    pages = [[r.data["stream"] for r in page] for page in (first, second, third)]
    assert pages == [["cam4", "cam3"], ["cam2", "cam1"], ["cam0"]]


def test_an_empty_batch_writes_nothing(db: Database) -> None:
    EventStore(db).append([])
    assert EventStore(db).count() == 0


def test_pruning_removes_what_is_too_old(db: Database) -> None:
    store = EventStore(db)
    store.append([_state(f"cam{i}", i * 60) for i in range(10)])
    deleted = store.prune(older_than=T0 + timedelta(minutes=4), max_rows=1000)
    assert deleted == 4
    assert [r.data["stream"] for r in store.list_events(EventQuery())][-1] == "cam4"


def test_pruning_keeps_the_newest_max_rows(db: Database) -> None:
    store = EventStore(db)
    store.append([_state(f"cam{i}", i) for i in range(10)])
    assert store.prune(older_than=T0, max_rows=3) == 7
    assert [r.data["stream"] for r in store.list_events(EventQuery())] == ["cam9", "cam8", "cam7"]
    assert store.prune(older_than=T0, max_rows=3) == 0


def test_pruning_goes_in_batches_oldest_first(db: Database) -> None:
    store = EventStore(db)
    store.append([_state(f"cam{i}", i) for i in range(10)])
    assert store.prune(older_than=T0 + timedelta(hours=1), max_rows=1000, batch=4) == 4
    assert store.count() == 6
    assert [r.data["stream"] for r in store.list_events(EventQuery())][-1] == "cam4"
