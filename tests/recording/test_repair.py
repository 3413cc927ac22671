"""repair_open_segments with real recordings, crash-cut copies and a real SQLite index."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from recorded_media import (
    FPS,
    cut_copy,
    ffprobe_packet_durations,
    fragments,
    top_level_boxes,
)

from vigil.recording.mp4probe import probe_mp4
from vigil.recording.repair import (
    QUARANTINE_DIR_NAME,
    RepairAction,
    quarantine_under,
    repair_open_segments,
)
from vigil.store.db import Database
from vigil.store.models import SegmentStatus
from vigil.store.recordings import SegmentStore

START = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SegmentStore]:
    with Database(tmp_path / "vigil.db") as db:
        db.migrate()
        yield SegmentStore(db)


@pytest.fixture
def hour_dir(tmp_path: Path) -> Path:
    """Where the recorder writes: <volume>/<stream>/<day>/<hour>/."""
    directory = tmp_path / "volume" / "cam1" / "2025-03-01" / "12"
    directory.mkdir(parents=True)
    return directory


def _open_row(store: SegmentStore, path: Path, minute: int = 0) -> int:
    return store.open_segment(stream="cam1", path=path, start=START + timedelta(minutes=minute))


def _fragments(path: Path) -> list[tuple[int, int]]:
    """(start, end) of each moof+mdat pair."""
    return [(moof.start, mdat.end) for moof, mdat in fragments(top_level_boxes(path))]


def test_complete_file_is_closed_from_the_probe(
    store: SegmentStore, hour_dir: Path, h264_segments: list[Path]
) -> None:
    path = Path(shutil.copy(h264_segments[0], hour_dir / "00.00.mp4"))
    segment_id = _open_row(store, path)

    report = repair_open_segments(store)

    assert (report.repaired, report.missing, report.quarantined, report.failed) == (1, 0, 0, 0)
    (outcome,) = report.outcomes
    assert (outcome.segment_id, outcome.action, outcome.trimmed_bytes) == (
        segment_id,
        RepairAction.REPAIRED,
        0,
    )
    row = store.get(segment_id)
    assert row is not None
    assert row.status is SegmentStatus.REPAIRED
    assert row.duration_s == pytest.approx(5.0)
    assert row.end == START + timedelta(seconds=5)
    assert row.size_bytes == path.stat().st_size
    assert (row.codec, row.width, row.height) == ("h264", 320, 240)
    assert path.read_bytes() == h264_segments[0].read_bytes()


def test_file_cut_inside_an_mdat_keeps_its_complete_fragments(
    store: SegmentStore, hour_dir: Path, h264_segments: list[Path]
) -> None:
    source = h264_segments[0]
    (_, second_end), (third_start, third_end) = _fragments(source)[1:3]
    cut_at = (third_start + third_end) // 2
    path = cut_copy(source, hour_dir / "00.00.mp4", cut_at)
    segment_id = _open_row(store, path)

    report = repair_open_segments(store)

    assert report.outcomes[0].action is RepairAction.REPAIRED
    row = store.get(segment_id)
    assert row is not None
    reference = ffprobe_packet_durations(cut_copy(source, hour_dir.parent / "ref.mp4", second_end))
    assert reference is not None
    assert row.duration_s == pytest.approx(sum(reference))
    assert row.end == START + timedelta(seconds=sum(reference))
    assert row.size_bytes == cut_at == path.stat().st_size  # nothing trimmed from an mdat


def test_file_cut_inside_a_moof_is_trimmed_so_players_can_open_it(
    store: SegmentStore, hour_dir: Path, h264_segments: list[Path]
) -> None:
    source = h264_segments[0]
    fragments = _fragments(source)
    cut_at = fragments[3][0] + 50  # 50 bytes into the fourth moof
    path = cut_copy(source, hour_dir / "00.00.mp4", cut_at)
    segment_id = _open_row(store, path)

    report = repair_open_segments(store)

    (outcome,) = report.outcomes
    assert outcome.action is RepairAction.REPAIRED
    assert outcome.trimmed_bytes == 50
    assert path.stat().st_size == fragments[2][1]
    row = store.get(segment_id)
    assert row is not None
    assert row.size_bytes == fragments[2][1]
    packets = ffprobe_packet_durations(path)
    assert packets is not None, "ffprobe cannot open the repaired file"
    assert len(packets) == round(3 * FPS)
    assert row.duration_s == pytest.approx(sum(packets))


def test_no_trim_when_asked_not_to(
    store: SegmentStore, hour_dir: Path, h264_segments: list[Path]
) -> None:
    cut_at = _fragments(h264_segments[0])[3][0] + 50
    path = cut_copy(h264_segments[0], hour_dir / "00.00.mp4", cut_at)
    _open_row(store, path)
    report = repair_open_segments(store, trim_cut_moof=False)
    assert report.outcomes[0].trimmed_bytes == 0
    assert path.stat().st_size == cut_at


def test_missing_file_is_marked_missing(store: SegmentStore, hour_dir: Path) -> None:
    segment_id = _open_row(store, hour_dir / "gone.mp4")

    report = repair_open_segments(store)

    assert report.missing == 1
    assert report.outcomes[0].moved_to is None
    row = store.get(segment_id)
    assert row is not None
    assert row.status is SegmentStatus.MISSING
    assert row.note is not None and "not found" in row.note
    assert not (hour_dir / QUARANTINE_DIR_NAME).exists()


def _unusable_files(hour_dir: Path, h264_segments: list[Path]) -> dict[str, Path]:
    empty = hour_dir / "00.00.mp4"
    empty.touch()
    garbage = hour_dir / "01.00.mp4"
    garbage.write_bytes(bytes(range(256)) * 64)
    header_only = cut_copy(
        h264_segments[0], hour_dir / "02.00.mp4", _fragments(h264_segments[0])[0][0]
    )
    return {"empty": empty, "garbage": garbage, "header only": header_only}


def test_unusable_files_are_quarantined_beside_them_by_default(
    store: SegmentStore, hour_dir: Path, h264_segments: list[Path]
) -> None:
    files = _unusable_files(hour_dir, h264_segments)
    contents = {name: path.read_bytes() for name, path in files.items()}
    ids = {
        name: _open_row(store, path, minute) for minute, (name, path) in enumerate(files.items())
    }

    report = repair_open_segments(store)

    assert report.quarantined == 3
    assert report.summary() == "3 open segments: 0 repaired, 0 missing, 3 quarantined, 0 failed"
    for name, path in files.items():
        moved = hour_dir / QUARANTINE_DIR_NAME / path.name
        assert not path.exists()
        assert moved.read_bytes() == contents[name], "a quarantined file must be kept intact"
        row = store.get(ids[name])
        assert row is not None
        assert row.status is SegmentStatus.MISSING
        assert row.note is not None and str(moved) in row.note
    by_path = {outcome.path: outcome for outcome in report.outcomes}
    assert "empty" in by_path[files["empty"]].detail
    assert "no complete fragment" in by_path[files["header only"]].detail


def test_quarantine_under_the_volume_root(
    store: SegmentStore, tmp_path: Path, hour_dir: Path, h264_segments: list[Path]
) -> None:
    volume = tmp_path / "volume"
    files = _unusable_files(hour_dir, h264_segments)
    for minute, path in enumerate(files.values()):
        _open_row(store, path, minute)
    outside = tmp_path / "elsewhere" / "x.mp4"
    outside.parent.mkdir()
    outside.touch()
    _open_row(store, outside, 10)

    report = repair_open_segments(
        store, quarantine_dir_for=quarantine_under([tmp_path / "other-volume", volume])
    )

    assert report.quarantined == 4
    for path in files.values():
        assert (volume / QUARANTINE_DIR_NAME / "cam1" / "2025-03-01" / "12" / path.name).is_file()
    assert (outside.parent / QUARANTINE_DIR_NAME / "x.mp4").is_file()  # under no root


def test_quarantine_never_overwrites(store: SegmentStore, hour_dir: Path) -> None:
    earlier = hour_dir / QUARANTINE_DIR_NAME / "00.00.mp4"
    earlier.parent.mkdir()
    earlier.write_bytes(b"from an earlier crash")
    path = hour_dir / "00.00.mp4"
    path.touch()
    _open_row(store, path)

    report = repair_open_segments(store)

    assert report.outcomes[0].moved_to == hour_dir / QUARANTINE_DIR_NAME / "00.00.1.mp4"
    assert earlier.read_bytes() == b"from an earlier crash"


def test_failed_quarantine_leaves_the_row_open(store: SegmentStore, hour_dir: Path) -> None:
    path = hour_dir / "00.00.mp4"
    path.touch()
    segment_id = _open_row(store, path)
    blocker = hour_dir / "not-a-directory"
    blocker.touch()

    report = repair_open_segments(store, quarantine_dir_for=lambda _: blocker / "q")

    assert report.failed == 1
    assert "could not quarantine" in report.outcomes[0].detail
    assert path.exists()
    row = store.get(segment_id)
    assert row is not None and row.status is SegmentStatus.OPEN


def test_only_open_rows_are_touched_and_a_second_run_does_nothing(
    store: SegmentStore, hour_dir: Path, h264_segments: list[Path]
) -> None:
    done = Path(shutil.copy(h264_segments[1], hour_dir / "05.00.mp4"))
    done_id = _open_row(store, done, 5)
    store.close_segment(
        done_id, end=START + timedelta(minutes=5, seconds=5), duration_s=5.0, size_bytes=1
    )
    open_path = Path(shutil.copy(h264_segments[0], hour_dir / "00.00.mp4"))
    _open_row(store, open_path)

    first = repair_open_segments(store)
    second = repair_open_segments(store)

    assert [outcome.path for outcome in first.outcomes] == [open_path]
    assert second.outcomes == ()
    done_row = store.get(done_id)
    assert done_row is not None
    assert (done_row.status, done_row.size_bytes) == (SegmentStatus.COMPLETE, 1)
    assert probe_mp4(open_path).fragments == 5


def test_a_directory_in_place_of_the_file_is_left_alone(
    store: SegmentStore, hour_dir: Path
) -> None:
    path = hour_dir / "00.00.mp4"
    path.mkdir()
    segment_id = _open_row(store, path)

    report = repair_open_segments(store)

    assert report.failed == 1
    assert path.is_dir()
    row = store.get(segment_id)
    assert row is not None and row.status is SegmentStatus.OPEN


def test_a_file_a_recorder_is_writing_is_left_alone(store: SegmentStore, hour_dir: Path) -> None:
    """A volume that comes back takes new segments at once: a file just opened there (still
    empty) is no crash's leftover, and moving it away would move the live file with it."""
    live = hour_dir / "33.36.mp4"
    live.touch()
    live_id = _open_row(store, live)
    left = hour_dir / "gone.mp4"
    left_id = _open_row(store, left, minute=1)

    report = repair_open_segments(store, only_under=[hour_dir], being_written=[str(live)])

    assert [outcome.path for outcome in report.outcomes] == [left]
    assert live.exists()
    row = store.get(live_id)
    assert row is not None and row.status is SegmentStatus.OPEN
    gone = store.get(left_id)
    assert gone is not None and gone.status is SegmentStatus.MISSING
