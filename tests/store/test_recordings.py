"""SegmentStore and GapStore against a real, migrated SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.exc import IntegrityError

from vigil.store.db import Database
from vigil.store.models import SegmentStatus
from vigil.store.recordings import (
    GapNotFoundError,
    GapStore,
    SegmentNotFoundError,
    SegmentStore,
)
from vigil.store.timestamps import from_us, to_us

T0 = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
NOW = datetime(2025, 3, 2, 8, 0, 0, tzinfo=UTC)


def _store(db: Database) -> SegmentStore:
    return SegmentStore(db, clock=lambda: NOW)


def _open(store: SegmentStore, stream: str, name: str, start: datetime) -> int:
    return store.open_segment(stream=stream, path=Path("/rec") / stream / name, start=start)


def test_open_then_close_round_trip(db: Database) -> None:
    store = _store(db)
    segment_id = store.open_segment(
        stream="cam1", path=Path("/rec/cam1/a.mp4"), start=T0, codec="h264"
    )

    row = store.get(segment_id)
    assert row is not None
    assert (row.stream, row.path, row.start, row.end) == ("cam1", Path("/rec/cam1/a.mp4"), T0, None)
    assert row.status is SegmentStatus.OPEN
    assert row.codec == "h264"
    assert row.created_at == NOW
    assert row.start.tzinfo is not None and row.start.utcoffset() == timedelta(0)
    assert store.open_segments() == [row]

    store.close_segment(
        segment_id,
        end=T0 + timedelta(seconds=60),
        duration_s=59.96,
        size_bytes=1234,
        width=1920,
        height=1080,
    )
    closed = store.get(segment_id)
    assert closed is not None
    assert closed.end == T0 + timedelta(seconds=60)
    assert (closed.duration_s, closed.size_bytes) == (59.96, 1234)
    assert (closed.codec, closed.width, closed.height) == ("h264", 1920, 1080)
    assert closed.status is SegmentStatus.COMPLETE
    assert closed.closed_at == NOW
    assert store.open_segments() == []
    assert store.get_by_path(Path("/rec/cam1/a.mp4")) == closed


def test_times_are_exact_microseconds_in_any_zone(db: Database) -> None:
    store = _store(db)
    paris = timezone(timedelta(hours=1))
    start = datetime(2025, 3, 1, 13, 0, 0, 1, tzinfo=paris)
    row = store.get(store.open_segment(stream="c", path=Path("/r/x.mp4"), start=start))
    assert row is not None
    assert row.start == start
    assert row.start.tzinfo is UTC
    assert to_us(row.start) == to_us(start)
    assert from_us(to_us(T0)) == T0


def test_refuses_naive_datetimes_and_relative_paths(db: Database) -> None:
    store = _store(db)
    with pytest.raises(ValueError, match="naive"):
        store.open_segment(stream="c", path=Path("/r/x.mp4"), start=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="absolute"):
        store.open_segment(stream="c", path=Path("r/x.mp4"), start=T0)


def test_path_is_unique(db: Database) -> None:
    store = _store(db)
    _open(store, "c", "x.mp4", T0)
    with pytest.raises(IntegrityError):
        _open(store, "c", "x.mp4", T0)


def test_unknown_ids_raise(db: Database) -> None:
    store = _store(db)
    with pytest.raises(SegmentNotFoundError):
        store.close_segment(99, end=T0, duration_s=1.0, size_bytes=1)
    with pytest.raises(SegmentNotFoundError):
        store.mark_missing(99)
    with pytest.raises(GapNotFoundError):
        GapStore(db).close_gap(99, T0)
    assert store.get(99) is None
    assert store.get_by_path(Path("/nowhere.mp4")) is None


def test_add_complete_and_mark_missing(db: Database) -> None:
    store = _store(db)
    segment_id = store.add_complete(
        stream="c",
        path=Path("/r/found.mp4"),
        start=T0,
        end=T0 + timedelta(seconds=5),
        duration_s=5.0,
        size_bytes=10,
        codec="h265",
        width=320,
        height=240,
    )
    row = store.get(segment_id)
    assert row is not None
    assert row.status is SegmentStatus.REPAIRED
    assert row.closed_at == NOW
    store.mark_missing(segment_id, note="file vanished")
    row = store.get(segment_id)
    assert row is not None
    assert (row.status, row.note) == (SegmentStatus.MISSING, "file vanished")


def _seconds(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("query_start", "query_end", "expected"),
    [
        (None, None, ["a", "b", "c", "gone", "live"]),
        (0, 10, ["a"]),  # [0,10) touches b only at its start: half-open
        (5, 15, ["a", "b"]),
        (10, 10.5, ["b"]),
        (40, 41, ["gone"]),  # a row without an end covers only its start...
        (41, 42, []),
        (100, 200, ["live"]),  # ...unless it is open, then it runs on
        (None, 10, ["a"]),
        (35, None, ["gone", "live"]),
    ],
)
def test_list_segments_by_overlap(
    db: Database, query_start: float | None, query_end: float | None, expected: list[str]
) -> None:
    store = _store(db)
    for name, start, end in [("a", 0, 10), ("b", 10, 20), ("c", 20, 30)]:
        segment_id = _open(store, "cam", name, _seconds(start))
        store.close_segment(segment_id, end=_seconds(end), duration_s=10.0, size_bytes=1)
    store.mark_missing(_open(store, "cam", "gone", _seconds(40)))
    _open(store, "cam", "live", _seconds(50))
    _open(store, "other", "x", _seconds(5))

    rows = store.list_segments(
        stream="cam",
        start=None if query_start is None else _seconds(query_start),
        end=None if query_end is None else _seconds(query_end),
    )
    assert [row.path.name for row in rows] == expected


def test_list_segments_pages_in_start_order(db: Database) -> None:
    store = _store(db)
    for index in reversed(range(10)):
        _open(store, "cam" if index % 2 else "other", f"{index}.mp4", _seconds(index))
    every = store.list_segments()
    assert [row.path.name for row in every] == [f"{i}.mp4" for i in range(10)]
    page = store.list_segments(limit=3, offset=2)
    assert [row.path.name for row in page] == ["2.mp4", "3.mp4", "4.mp4"]
    assert [row.stream for row in store.list_segments(stream="cam")] == ["cam"] * 5


def test_gaps_open_close_list(db: Database) -> None:
    gaps = GapStore(db)
    first = gaps.open_gap("cam", _seconds(0), "camera unreachable")
    gaps.close_gap(first, _seconds(10))
    ongoing = gaps.open_gap("cam", _seconds(50), "no data")
    gaps.close_gap(gaps.open_gap("other", _seconds(5), "disk full"), _seconds(8))

    listed = gaps.list_gaps(stream="cam")
    assert [(gap.id, gap.end) for gap in listed] == [(first, _seconds(10)), (ongoing, None)]
    assert listed[0].reason == "camera unreachable"
    assert [gap.id for gap in gaps.list_gaps(start=_seconds(20))] == [ongoing]
    assert [gap.stream for gap in gaps.list_gaps(end=_seconds(6))] == ["cam", "other"]
    assert gaps.list_gaps(stream="cam", start=_seconds(10), end=_seconds(50)) == []


def test_keyset_pages_neither_skip_nor_repeat_rows_added_meanwhile(db: Database) -> None:
    store = _store(db)
    for index in range(5):
        _open(store, "cam", f"{index}.mp4", _seconds(index * 10))
    _open(store, "cam", "same-start.mp4", _seconds(10))  # ties on start are ordered by id
    first = store.list_segments(stream="cam", limit=3)
    assert [row.path.name for row in first] == ["0.mp4", "1.mp4", "same-start.mp4"]
    _open(store, "cam", "late.mp4", _seconds(5))  # before the cursor: not on later pages
    rest = store.list_segments(stream="cam", limit=10, after=(first[-1].start, first[-1].id))
    assert [row.path.name for row in rest] == ["2.mp4", "3.mp4", "4.mp4"]


def test_nearest_video_around_a_range_ignores_missing_files(db: Database) -> None:
    store = _store(db)
    for name, start, end in [("a", 0, 10), ("b", 50, 60), ("c", 100, 110)]:
        segment_id = _open(store, "cam", name, _seconds(start))
        store.close_segment(segment_id, end=_seconds(end), duration_s=10.0, size_bytes=1)
    store.mark_missing(store.add_complete(
        stream="cam", path=Path("/rec/cam/lost.mp4"), start=_seconds(20), end=_seconds(30),
        duration_s=10.0, size_bytes=1, codec="h264", width=2, height=2,
    ))  # fmt: skip
    assert store.nearest("cam", _seconds(20), _seconds(40)) == (_seconds(10), _seconds(50))
    assert store.nearest("cam", _seconds(120), _seconds(130)) == (_seconds(110), None)
    assert store.nearest("other", _seconds(0), _seconds(1)) == (None, None)
    assert store.has_segments("cam") and not store.has_segments("other")


def test_gaps_listed_up_to_a_limit(db: Database) -> None:
    gaps = GapStore(db)
    for index in range(5):
        gaps.add_gap("cam", _seconds(index * 10), _seconds(index * 10 + 1), "no video for 5 s")
    assert [gap.start for gap in gaps.list_gaps(stream="cam", limit=2)] == [
        _seconds(0),
        _seconds(10),
    ]
