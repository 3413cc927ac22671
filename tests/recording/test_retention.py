"""Retention on real SQLite and real files: by age, for space (on a real tmpfs), never what is
held, being written, or on a volume that is away; files and rows go together."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.mounts import fill, mounts, requires_mount
from vigil.config.resolve import VolumePlan
from vigil.recording.paths import claim_segment_path
from vigil.recording.retention import Retention
from vigil.recording.volumes import VolumePool, VolumeState
from vigil.store.db import Database
from vigil.store.holds import HoldStore
from vigil.store.recordings import SegmentStore
from vigil.store.retention import RetentionStore

MIB = 1024 * 1024
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _record(
    pool: VolumePool, segments: SegmentStore, stream: str, start: datetime, size: int
) -> Path:
    """A finished segment of `size` bytes, placed and indexed as the recorder would."""
    path, volume = pool.place(stream, start)
    path.write_bytes(os.urandom(size))
    segments.add_complete(
        stream=stream, path=path, start=start, end=start + timedelta(seconds=60),
        duration_s=60.0, size_bytes=size, codec="h264", width=320, height=240, volume=volume,
    )  # fmt: skip
    return path


def _retention(
    pool: VolumePool,
    db: Database,
    *,
    days: dict[str, float | None] | None = None,
    writing: set[str] | None = None,
) -> Retention:
    return Retention(
        pool, RetentionStore(db), HoldStore(db), retain_days=lambda: days or {},
        writing=lambda: writing or set(), clock=lambda: NOW,
    )  # fmt: skip


def test_by_age_deletes_what_is_older_than_retain_days_with_its_folders(
    tmp_path: Path, db: Database
) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    pool = VolumePool((VolumePlan(path=disk, min_free_bytes=0),))
    pool.scan()
    segments = SegmentStore(db)
    old = [
        _record(pool, segments, "cam", NOW - timedelta(days=3, minutes=i), 1000) for i in range(3)
    ]
    kept = _record(pool, segments, "cam", NOW - timedelta(hours=1), 1000)
    other = _record(pool, segments, "door", NOW - timedelta(days=3), 1000)  # no retain_days

    report = _retention(pool, db, days={"cam": 2, "door": None}).run()

    assert (report.segments, report.by_age, report.bytes) == (3, 3, 3000)
    assert not any(p.exists() for p in old)
    assert not old[0].parent.exists()  # the emptied hour folder went too
    assert kept.exists() and other.exists()
    assert [r.path for r in segments.list_segments(stream="cam")] == [kept]
    assert pool.views()[0].bytes_deleted == 3000


def test_holds_and_open_files_are_never_deleted(tmp_path: Path, db: Database) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    pool = VolumePool((VolumePlan(path=disk, min_free_bytes=0),))
    pool.scan()
    segments = SegmentStore(db)
    starts = [NOW - timedelta(days=5, minutes=10 * i) for i in range(4)]
    paths = [_record(pool, segments, "cam", start, 500) for start in starts]
    HoldStore(db).add(stream="cam", start=starts[1], end=starts[1] + timedelta(seconds=1),
                      until=None, reason="incident")  # fmt: skip
    HoldStore(db).add(stream=None, start=starts[2], end=starts[2] + timedelta(seconds=1),
                      until=NOW - timedelta(days=1), reason="expired")  # fmt: skip

    report = _retention(pool, db, days={"cam": 1}, writing={str(paths[3])}).run()

    assert report.held == 1
    assert [p.exists() for p in paths] == [False, True, False, True]
    assert {r.path for r in segments.list_segments(stream="cam")} == {paths[1], paths[3]}


def test_segments_of_a_volume_that_is_away_are_left_alone(tmp_path: Path, db: Database) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    pool = VolumePool((VolumePlan(path=disk, min_free_bytes=0),))
    pool.scan()
    segments = SegmentStore(db)
    _record(pool, segments, "cam", NOW - timedelta(days=9), 100)
    disk.rename(tmp_path / "unplugged")
    pool.scan()
    assert pool.views()[0].state is VolumeState.OFFLINE

    report = _retention(pool, db, days={"cam": 1}).run()

    assert report.segments == 0
    assert len(segments.list_segments(stream="cam")) == 1  # the row waits for its disk


@requires_mount
def test_for_space_the_oldest_go_across_volumes_until_one_has_room(
    tmp_path: Path, db: Database
) -> None:
    with mounts() as made:
        one = made.tmpfs(tmp_path / "one", 16)
        two = made.tmpfs(tmp_path / "two", 16)
        pool = VolumePool(
            (VolumePlan(path=one, priority=1, min_free_bytes=4 * MIB, max_usage_percent=100),
             VolumePlan(path=two, priority=2, min_free_bytes=4 * MIB, max_usage_percent=100))
        )  # fmt: skip
        pool.scan()
        segments = SegmentStore(db)
        ballast_one = fill(one, leave_bytes=6 * MIB)  # 3 segments of 1 MiB go here
        fill(two, leave_bytes=8 * MIB)  # and 5 here: both end with 3 MiB, under 4 MiB
        # Oldest first on volume two, then interleaved: "oldest" is across volumes.
        recorded: list[Path] = []
        for minute in range(8):
            root = two if minute < 2 or minute % 2 == 0 else one
            path = claim_segment_path(root, "cam", NOW + timedelta(minutes=minute))
            path.write_bytes(os.urandom(MIB))
            volume_id = pool.volume_of(path)
            segments.add_complete(
                stream="cam", path=path, start=NOW + timedelta(minutes=minute),
                end=NOW + timedelta(minutes=minute, seconds=60), duration_s=60.0,
                size_bytes=MIB, codec="h264", width=1, height=1, volume=volume_id,
            )  # fmt: skip
            recorded.append(path)
        pool.refresh()
        assert {v.state for v in pool.views()} == {VolumeState.FULL}

        report = _retention(pool, db).run()

        assert report.by_space >= 1 and not report.exhausted
        gone = [not p.exists() for p in recorded]
        assert gone[0], "the oldest recording was not the first to go"
        assert gone == sorted(gone, reverse=True), f"not oldest first: {gone}"
        assert any(v.state is VolumeState.ONLINE for v in pool.views())
        assert ballast_one.exists()  # only recordings are ever deleted
        rows = {r.path for r in segments.list_segments(stream="cam")}
        assert rows == {p for p in recorded if p.exists()}  # index and disk agree


@requires_mount
def test_nothing_deletable_reports_exhausted(tmp_path: Path, db: Database) -> None:
    with mounts() as made:
        disk = made.tmpfs(tmp_path / "disk", 16)
        pool = VolumePool((VolumePlan(path=disk, min_free_bytes=8 * MIB, max_usage_percent=100),))
        pool.scan()
        segments = SegmentStore(db)
        held = _record(pool, segments, "cam", NOW - timedelta(hours=1), MIB)
        fill(disk, leave_bytes=2 * MIB)
        HoldStore(db).add(stream=None, start=NOW - timedelta(days=1), end=NOW, until=None,
                          reason="keep")  # fmt: skip
        pool.refresh()

        report = _retention(pool, db).run()

        assert report.exhausted and pool.exhausted and report.segments == 0
        assert held.exists()


@requires_mount
def test_held_segments_at_the_head_are_not_walked_again(tmp_path: Path, db: Database) -> None:
    with mounts() as made:
        disk = made.tmpfs(tmp_path / "disk", 16)
        pool = VolumePool((VolumePlan(path=disk, min_free_bytes=8 * MIB, max_usage_percent=100),))
        pool.scan()
        segments = SegmentStore(db)
        starts = [NOW - timedelta(hours=1) + timedelta(minutes=m) for m in range(8)]
        paths = [_record(pool, segments, "cam", start, MIB // 2) for start in starts]
        HoldStore(db).add(stream="cam", start=starts[0], end=starts[4], until=None,
                          reason="incident")  # fmt: skip
        ballast = fill(disk, leave_bytes=7 * MIB)
        pool.refresh()
        retention = _retention(pool, db)

        first = retention.run()
        assert first.held == 4 and first.by_space >= 1
        assert all(p.exists() for p in paths[:4]) and not paths[4].exists()

        ballast.unlink()  # then the disk fills again
        fill(disk, leave_bytes=7 * MIB)
        pool.refresh()
        second = retention.run()
        assert second.held == 0, "the held head was walked again"
        assert second.by_space >= 1 and all(p.exists() for p in paths[:4])
