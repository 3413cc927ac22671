"""The segment index: rows and gaps written in order, never waiting on itself."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vigil.events import EventBus
from vigil.recording.segments import NOT_RUNNING, SegmentIndex
from vigil.store.db import Database
from vigil.store.recordings import GapStore, SegmentStore

T0 = datetime(2026, 11, 24, 6, 0, 0, tzinfo=UTC)


def _index(tmp_path: Path) -> tuple[SegmentIndex, Database, ThreadPoolExecutor]:
    db = Database(tmp_path / "vigil.db")
    db.migrate()
    writer = ThreadPoolExecutor(max_workers=1)
    return SegmentIndex(SegmentStore(db), EventBus(), writer, GapStore(db)), db, writer


async def test_first_segment_closed_before_its_row_is_written_does_not_deadlock(
    tmp_path: Path,
) -> None:
    index, db, writer = _index(tmp_path)
    path = tmp_path / "cam" / "a.mp4"
    path.parent.mkdir()
    path.write_bytes(b"not an mp4 yet")
    # The first segment of a run is checked for a gap; it closes at once (a stop right
    # after start). Its close must not wait for its own insert, which waits for closes.
    index.opened("cam", str(path), T0, "h264", 640, 360)
    index.closed("cam", str(path), 1.0)
    async with asyncio.timeout(10):
        await index.drain()
    rows = SegmentStore(db).list_segments()
    assert [(r.path, r.status) for r in rows] == [(path, "complete")]
    writer.shutdown()
    db.close()


async def test_downtime_and_interruptions_become_gaps(tmp_path: Path) -> None:
    index, db, writer = _index(tmp_path)
    store = SegmentStore(db)
    earlier = store.open_segment(stream="cam", path=tmp_path / "old.mp4", start=T0)
    store.close_segment(earlier, end=T0 + timedelta(seconds=10), duration_s=10, size_bytes=1)
    # Vigil comes back 50 s later: the time it was away is a gap.
    first = tmp_path / "first.mp4"
    first.write_bytes(b"not an mp4 yet")
    index.opened("cam", str(first), T0 + timedelta(seconds=60), None, None, None)
    index.closed("cam", str(first), 4.0)
    async with asyncio.timeout(10):
        await index.drain()
    # Then an interruption: the gap runs from the last segment's end to the next one's start.
    index.interrupted("cam", "no video for 5 s")
    second = tmp_path / "second.mp4"
    second.write_bytes(b"not an mp4 yet")
    index.opened("cam", str(second), T0 + timedelta(seconds=80), None, None, None)
    async with asyncio.timeout(10):
        await index.drain()
    gaps = GapStore(db).list_gaps(stream="cam")
    assert [(g.start, g.end, g.reason) for g in gaps] == [
        (T0 + timedelta(seconds=10), T0 + timedelta(seconds=60), NOT_RUNNING),
        (T0 + timedelta(seconds=64), T0 + timedelta(seconds=80), "no video for 5 s"),
    ]
    writer.shutdown()
    db.close()


async def test_an_empty_file_is_not_kept_and_an_unreachable_one_is_closed_as_told(
    tmp_path: Path,
) -> None:
    index, db, writer = _index(tmp_path)
    empty = tmp_path / "cam" / "empty.mp4"  # a write that failed at once: nothing on disk
    empty.parent.mkdir()
    empty.write_bytes(b"")
    away = tmp_path / "unplugged" / "away.mp4"  # on a disk that went away: not there at all
    index.opened("cam", str(empty), T0, "h264", 640, 360)
    index.closed("cam", str(empty), 1.0)
    index.opened("cam", str(away), T0 + timedelta(seconds=1), "h264", 640, 360)
    index.closed("cam", str(away), 2.5)
    async with asyncio.timeout(10):
        await index.drain()
    rows = {r.path: r for r in SegmentStore(db).list_segments()}
    assert rows[empty].status == "missing" and not empty.exists()
    assert rows[away].status == "complete" and rows[away].duration_s == 2.5
    writer.shutdown()
    db.close()


async def test_what_a_failed_write_cost_at_a_split_is_a_gap_whenever_it_is_reported(
    tmp_path: Path,
) -> None:
    index, db, writer = _index(tmp_path)
    files = [tmp_path / f"{n}.mp4" for n in range(4)]
    for path in files:
        path.write_bytes(b"not an mp4 yet")  # closed with the recorder's duration, as told
    at = [T0 + timedelta(seconds=4 * n) for n in range(4)]
    index.opened("cam", str(files[0]), at[0], None, None, None)
    async with asyncio.timeout(10):
        await index.drain()
    # Split: the next file opens; then the finished one's last write fails before it closes.
    index.opened("cam", str(files[1]), at[1], None, None, None)
    index.write_failed("cam", str(files[0]), "write failed on volume disk1: No space left")
    index.closed("cam", str(files[0]), 2.5)
    # The next split closes its file short too, and the failure is never reported in time.
    index.opened("cam", str(files[2]), at[2], None, None, None)
    index.closed("cam", str(files[1]), 2.0)
    # A file that ends where the next begins leaves no gap.
    index.opened("cam", str(files[3]), at[3], None, None, None)
    index.closed("cam", str(files[2]), 4.0)
    async with asyncio.timeout(10):
        await index.drain()
    gaps = GapStore(db).list_gaps(stream="cam")
    assert [(g.start, g.end, g.reason) for g in gaps] == [
        (at[0] + timedelta(seconds=2.5), at[1], "write failed on volume disk1: No space left"),
        (at[1] + timedelta(seconds=2), at[2],
         "write failed: the end of the segment did not reach the disk"),
    ]  # fmt: skip
    writer.shutdown()
    db.close()


async def test_a_database_locked_by_another_process_costs_no_row(tmp_path: Path) -> None:
    db = Database(tmp_path / "vigil.db", busy_timeout_ms=100)
    db.migrate()
    writer = ThreadPoolExecutor(max_workers=1)
    index = SegmentIndex(SegmentStore(db), EventBus(), writer, GapStore(db))
    path = tmp_path / "a.mp4"
    path.write_bytes(b"not an mp4 yet")
    # Another process (a backup, an operator's sqlite3) holds the write lock for a while.
    other = sqlite3.connect(tmp_path / "vigil.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    index.opened("cam", str(path), T0, "h264", 640, 360)
    index.closed("cam", str(path), 3.0)
    await asyncio.sleep(1.5)  # several busy timeouts: each write failed and is tried again
    assert SegmentStore(db).list_segments() == []
    other.execute("COMMIT")
    other.close()
    async with asyncio.timeout(30):
        await index.drain()
    rows = SegmentStore(db).list_segments()
    assert [(r.path, r.status, r.duration_s) for r in rows] == [(path, "complete", 3.0)]
    writer.shutdown()
    db.close()
