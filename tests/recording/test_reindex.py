"""reindex with real recordings laid out under a volume, and a real SQLite index."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from recorded_media import (
    FPS,
    cut_copy,
    ffprobe_format_duration,
    ffprobe_packet_durations,
    fragments,
    top_level_boxes,
)

from vigil.recording import reindex as reindex_module
from vigil.recording.reindex import ReindexAction, ReindexReport, reindex, segment_of
from vigil.recording.repair import QUARANTINE_DIR_NAME
from vigil.store.db import Database
from vigil.store.models import SegmentStatus
from vigil.store.recordings import SegmentRow, SegmentStore

DAY = "2025-03-01"
NOON = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SegmentStore]:
    with Database(tmp_path / "vigil.db") as db:
        db.migrate()
        yield SegmentStore(db)


@pytest.fixture
def volume(tmp_path: Path) -> Path:
    root = tmp_path / "volume"
    root.mkdir()
    return root


def _place(volume: Path, relative: str, source: Path | None = None, data: bytes = b"") -> Path:
    """Put a copy of `source` (or `data`) at `volume/relative`."""
    path = volume / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if source is not None:
        shutil.copyfile(source, path)
    else:
        path.write_bytes(data)
    return path


def _fragments(path: Path) -> list[tuple[int, int]]:
    """(start, end) of each moof+mdat pair."""
    return [(moof.start, mdat.end) for moof, mdat in fragments(top_level_boxes(path))]


def _row(store: SegmentStore, path: Path) -> SegmentRow:
    row = store.get_by_path(path)
    assert row is not None, f"no row for {path}"
    return row


def _snapshot(root: Path) -> dict[Path, bytes]:
    """Every file under `root` (links not followed) with its content."""
    return {
        path: path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not path.is_symlink()
    }


def _all_rows(store: SegmentStore) -> list[SegmentRow]:
    return store.list_segments(limit=1_000_000)


# --- the whole tree, as a crash or a restored disk leaves it ------------------------------


def test_a_tree_left_by_a_crash(
    store: SegmentStore, volume: Path, h264_segments: list[Path], tmp_path: Path
) -> None:
    first, second = h264_segments
    hour = f"cam1/{DAY}/12"
    # Known to the index: must stay exactly as it is (size 1 proves the row was not rewritten).
    known = _place(volume, f"{hour}/00.00.mp4", first)
    known_id = store.add_complete(
        stream="cam1",
        path=known,
        start=NOON,
        end=NOON + timedelta(seconds=5),
        duration_s=5.0,
        size_bytes=1,
        codec="h264",
        width=320,
        height=240,
        status=SegmentStatus.COMPLETE,
    )
    # Unknown, complete.
    whole = _place(volume, f"{hour}/00.05.mp4", second)
    duplicate = _place(volume, f"{hour}/00.05-1.mp4", first)
    other_stream = _place(volume, f"cam2/{DAY}/23/59.59.mp4", first)
    # Unknown, cut by the crash inside the fourth moof.
    moof_cut_at = _fragments(first)[3][0] + 50
    truncated = cut_copy(first, volume / hour / "00.10.mp4", moof_cut_at)
    # Unknown, unusable.
    empty = _place(volume, f"{hour}/01.00.mp4")
    garbage = _place(volume, f"{hour}/01.01.mp4", data=bytes(range(256)) * 64)
    header_only = cut_copy(first, volume / hour / "01.02.mp4", _fragments(first)[0][0])
    unusable = {path: path.read_bytes() for path in (empty, garbage, header_only)}
    # Not ours: left alone, whatever they hold.
    notes = _place(volume, "notes.mp4", first)
    readme = _place(volume, "cam1/readme.txt", data=b"hello")
    # Earlier quarantines (under the root and beside the file): never walked.
    earlier = [
        _place(volume, f"{QUARANTINE_DIR_NAME}/cam1/{DAY}/11/59.00.mp4", first),
        _place(volume, f"{QUARANTINE_DIR_NAME}/cam1/{DAY}/11/59.30.mp4"),
        _place(volume, f"{hour}/{QUARANTINE_DIR_NAME}/02.00.mp4", second),
    ]
    untouched = {path: path.read_bytes() for path in (known, notes, readme, *earlier)}

    report = reindex(store, [volume])

    assert (report.indexed, report.quarantined, report.ignored, report.errors) == (4, 3, 2, 0)
    assert (report.known, report.recent, report.files) == (1, 0, 10)
    assert report.summary() == (
        "10 files: 4 indexed, 3 quarantined, 2 ignored, 0 errors, 1 already indexed, 0 too recent"
    )
    assert set(report.ignored_examples) == {notes, readme}
    for path, content in untouched.items():
        assert path.read_bytes() == content
    assert _row(store, known).id == known_id
    assert _row(store, known).size_bytes == 1

    # Complete files: rows from the path and the probe; durations agree with ffprobe.
    for path, start in [
        (whole, NOON + timedelta(seconds=5)),
        (duplicate, NOON + timedelta(seconds=5)),
        (other_stream, NOON + timedelta(hours=11, minutes=59, seconds=59)),
    ]:
        row = _row(store, path)
        packets = ffprobe_packet_durations(path)
        assert packets is not None
        assert row.stream == path.relative_to(volume).parts[0]
        assert row.status is SegmentStatus.REPAIRED
        assert row.start == start
        assert row.duration_s == pytest.approx(sum(packets))
        assert row.duration_s == pytest.approx(ffprobe_format_duration(path), abs=1 / FPS)
        assert row.end == start + timedelta(seconds=sum(packets))
        assert row.size_bytes == path.stat().st_size
        assert (row.codec, row.width, row.height) == ("h264", 320, 240)
    assert whole.read_bytes() == second.read_bytes()

    # The file cut inside a moof is trimmed back to its third fragment and plays again.
    row = _row(store, truncated)
    third_end = _fragments(first)[2][1]
    assert truncated.stat().st_size == row.size_bytes == third_end
    packets = ffprobe_packet_durations(truncated)
    assert packets is not None, "ffprobe cannot open the trimmed file"
    assert len(packets) == 3 * FPS
    assert row.duration_s == pytest.approx(sum(packets))
    (outcome,) = [outcome for outcome in report.outcomes if outcome.path == truncated]
    assert outcome.trimmed_bytes == moof_cut_at - third_end

    # Unusable files are moved under the root's quarantine, intact, and get no row.
    for path, content in unusable.items():
        moved = volume / QUARANTINE_DIR_NAME / "cam1" / DAY / "12" / path.name
        assert not path.exists()
        assert moved.read_bytes() == content, "a quarantined file must be kept intact"
        assert store.get_by_path(path) is None
        assert store.get_by_path(moved) is None
    by_path = {outcome.path: outcome for outcome in report.outcomes}
    assert (
        by_path[empty].moved_to == volume / QUARANTINE_DIR_NAME / "cam1" / DAY / "12" / "01.00.mp4"
    )
    assert "empty" in by_path[empty].detail
    assert "no complete fragment" in by_path[header_only].detail
    assert len(_all_rows(store)) == 5

    # Nothing new the second time round.
    rows = _all_rows(store)
    again = reindex(store, [volume])
    assert again.outcomes == ()
    assert (again.known, again.ignored, again.files) == (5, 2, 7)
    assert _all_rows(store) == rows


def test_h265_segments_are_indexed(store: SegmentStore, volume: Path, h265_segment: Path) -> None:
    path = _place(volume, f"cam1/{DAY}/12/00.00.mp4", h265_segment)

    report = reindex(store, [volume])

    assert report.indexed == 1
    row = _row(store, path)
    assert (row.codec, row.width, row.height) == ("h265", 320, 240)
    packets = ffprobe_packet_durations(path)
    assert packets is not None
    assert row.duration_s == pytest.approx(sum(packets))


def test_a_file_cut_inside_an_mdat_keeps_its_bytes(
    store: SegmentStore, volume: Path, h264_segments: list[Path], tmp_path: Path
) -> None:
    source = h264_segments[0]
    (_, second_end), (third_start, third_end) = _fragments(source)[1:3]
    cut_at = (third_start + third_end) // 2
    (volume / "cam1" / DAY / "12").mkdir(parents=True)
    path = cut_copy(source, volume / "cam1" / DAY / "12" / "00.00.mp4", cut_at)
    reindex(store, [volume])
    row = _row(store, path)
    reference = ffprobe_packet_durations(cut_copy(source, tmp_path / "ref.mp4", second_end))
    assert reference is not None
    assert row.duration_s == pytest.approx(sum(reference))
    assert row.size_bytes == cut_at == path.stat().st_size


def test_no_trim_when_asked_not_to(
    store: SegmentStore, volume: Path, h264_segments: list[Path]
) -> None:
    cut_at = _fragments(h264_segments[0])[3][0] + 50
    (volume / "cam1" / DAY / "12").mkdir(parents=True)
    path = cut_copy(h264_segments[0], volume / "cam1" / DAY / "12" / "00.00.mp4", cut_at)
    report = reindex(store, [volume], trim_cut_moof=False)
    assert report.indexed == 1
    assert report.outcomes[0].trimmed_bytes == 0
    assert path.stat().st_size == cut_at == _row(store, path).size_bytes


# --- what is not ours ---------------------------------------------------------------------


def test_only_files_named_as_the_recorder_names_them_are_touched(
    store: SegmentStore, volume: Path, h264_segments: list[Path], tmp_path: Path
) -> None:
    garbage = bytes(range(256))
    outside = tmp_path / "elsewhere"
    _place(outside, f"cam9/{DAY}/12/00.00.mp4", h264_segments[0])
    (volume / "cam9").symlink_to(outside / "cam9")  # a linked stream directory
    _place(volume, f"cam1/{DAY}/12/04.00.mp4")
    (volume / "cam1" / DAY / "12" / "03.00.mp4").symlink_to(h264_segments[0])
    strays = [
        _place(volume, f"cam1/{DAY}/12/00.00-copy.mp4", data=garbage),
        _place(volume, f"cam1/{DAY}/12/00.00.1.mp4", data=garbage),
        _place(volume, f"cam1/{DAY}/12/0.0.mp4", data=garbage),
        _place(volume, f"cam1/{DAY}/12/00.00-0.mp4", data=garbage),
        _place(volume, f"cam1/{DAY}/12/00.00.MP4", data=garbage),
        _place(volume, f"cam1/{DAY}/12/._00.00.mp4", data=garbage),
        _place(volume, "cam1/2025-3-1/12/00.00.mp4", data=garbage),
        _place(volume, f"cam1/{DAY}/7/00.00.mp4", data=garbage),
        _place(volume, f"cam1/{DAY}/12/extra/00.00.mp4", data=garbage),
        _place(volume, f"cam1/{DAY}/00.00.mp4", data=garbage),
        _place(volume, f"cam1/{DAY}/12/00.00.mp4.part", data=garbage),
    ]
    before = _snapshot(volume)

    report = reindex(store, [volume])

    links = {volume / "cam9", volume / "cam1" / DAY / "12" / "03.00.mp4"}
    assert report.ignored == len(strays) + len(links)
    assert len(report.ignored_examples) == reindex_module.IGNORED_EXAMPLES
    assert set(report.ignored_examples) <= {*strays, *links}
    assert report.quarantined == 1  # 04.00.mp4, empty: the only file of ours
    del before[volume / "cam1" / DAY / "12" / "04.00.mp4"]
    after = _snapshot(volume)
    assert {path: content for path, content in after.items() if path in before} == before
    assert [row.path for row in _all_rows(store)] == []


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        (f"cam1/{DAY}/12/00.00.mp4", ("cam1", NOON)),
        (f"cam1/{DAY}/12/59.59.mp4", ("cam1", NOON + timedelta(minutes=59, seconds=59))),
        (f"cam1/{DAY}/12/00.01-1.mp4", ("cam1", NOON + timedelta(seconds=1))),
        (f"cam1/{DAY}/12/00.01-12.mp4", ("cam1", NOON + timedelta(seconds=1))),
        (f"cam1/{DAY}/12/00.00-0.mp4", None),
        (f"cam1/{DAY}/12/00.00-01.mp4", None),
        (f"cam1/{DAY}/12/00.00-copy.mp4", None),
        (f"cam1/{DAY}/12/00.00.1.mp4", None),
        (f"cam1/{DAY}/12/0.0.mp4", None),
        (f"cam1/{DAY}/12/00.60.mp4", None),
        (f"cam1/{DAY}/12/00.00.MP4", None),
        ("cam1/2025-3-1/12/00.00.mp4", None),
        (f"cam1/{DAY}/7/00.00.mp4", None),
        (f"cam1/{DAY}/24/00.00.mp4", None),
        ("cam1/2025-02-30/12/00.00.mp4", None),
        (f"cam1/{DAY}/12/x/00.00.mp4", None),
        (f"{DAY}/12/00.00.mp4", None),
    ],
)
def test_segment_of(relative: str, expected: tuple[str, datetime] | None) -> None:
    root = Path("/volume")
    assert segment_of(root, root / relative) == expected


# --- errors, timing, roots ------------------------------------------------------------------


def test_an_unlistable_directory_is_reported_and_the_rest_is_indexed(
    store: SegmentStore,
    volume: Path,
    h264_segments: list[Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Faked: the suite runs as root here, where permissions do not stop a listing.
    locked = volume / "cam1" / DAY / "13"
    _place(volume, f"cam1/{DAY}/13/00.00.mp4", h264_segments[0])
    readable = _place(volume, f"cam1/{DAY}/12/00.00.mp4", h264_segments[0])
    real_scandir: Callable[[Path], object] = os.scandir

    def scandir(path: Path) -> object:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    missing_root = volume.parent / "not-mounted"

    report = reindex(store, [missing_root, volume])

    assert report.indexed == 1
    assert report.errors == 2
    errors = {outcome.path: outcome for outcome in report.outcomes if outcome.action == "error"}
    assert "Permission denied" in errors[locked].detail
    assert "cannot list" in errors[missing_root].detail
    assert _row(store, readable).status is SegmentStatus.REPAIRED
    assert (locked / "00.00.mp4").exists()


def test_an_unreadable_file_is_left_in_place(
    store: SegmentStore, volume: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _place(volume, f"cam1/{DAY}/12/00.00.mp4", data=b"x")

    def probe(_: Path) -> object:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(reindex_module, "probe_mp4", probe)
    report = reindex(store, [volume])

    assert (report.errors, report.quarantined) == (1, 0)
    assert "Permission denied" in report.outcomes[0].detail
    assert path.read_bytes() == b"x"


def test_a_failed_quarantine_is_an_error(store: SegmentStore, volume: Path) -> None:
    path = _place(volume, f"cam1/{DAY}/12/00.00.mp4")
    blocker = volume / "not-a-directory"
    blocker.touch()

    report = reindex(store, [volume], quarantine_dir_for=lambda _: blocker / "q")

    assert report.errors == 1
    assert "could not quarantine" in report.outcomes[0].detail
    assert path.exists()


def test_files_still_being_written_wait_for_a_later_run(
    store: SegmentStore, volume: Path, h264_segments: list[Path]
) -> None:
    old = _place(volume, f"cam1/{DAY}/12/00.00.mp4", h264_segments[0])
    fresh = _place(volume, f"cam1/{DAY}/12/00.05.mp4")  # just claimed by a recorder
    now = NOON + timedelta(minutes=1)
    os.utime(old, (now.timestamp() - 120, now.timestamp() - 120))
    os.utime(fresh, (now.timestamp() - 5, now.timestamp() - 5))

    first = reindex(store, [volume], min_age=timedelta(seconds=30), clock=lambda: now)

    assert (first.indexed, first.recent, first.quarantined) == (1, 1, 0)
    assert fresh.exists()
    assert first.summary().endswith("1 too recent")

    later = reindex(
        store, [volume], min_age=timedelta(seconds=30), clock=lambda: now + timedelta(minutes=1)
    )

    assert (later.recent, later.quarantined, later.known) == (0, 1, 1)
    assert not fresh.exists()


def test_relative_roots_index_absolute_paths(
    store: SegmentStore, volume: Path, h264_segments: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _place(volume, f"cam1/{DAY}/12/00.00.mp4", h264_segments[0])
    _place(volume, f"cam1/{DAY}/12/00.05.mp4")
    monkeypatch.chdir(volume.parent)

    report = reindex(store, [Path("volume"), Path("volume/../volume")])

    assert (report.indexed, report.quarantined, report.known) == (1, 1, 0)
    assert _row(store, path).path == path
    assert (volume / QUARANTINE_DIR_NAME / "cam1" / DAY / "12" / "00.05.mp4").exists()


def test_summary() -> None:
    report = ReindexReport(outcomes=(), files=3, known=1, ignored=2, ignored_examples=(), recent=0)
    assert report.summary() == (
        "3 files: 0 indexed, 0 quarantined, 2 ignored, 0 errors, 1 already indexed, 0 too recent"
    )
    assert list(ReindexAction) == ["indexed", "quarantined", "error"]


# --- the store query reindex relies on -----------------------------------------------------


def test_known_paths_are_those_below_the_directory(store: SegmentStore) -> None:
    paths = [
        Path("/v/cam1/2025-03-01/12/00.00.mp4"),
        Path("/v/cam1/2025-03-02/00/00.00.mp4"),
        Path("/v/cam10/2025-03-01/12/00.00.mp4"),
        Path("/v/cam1-b/2025-03-01/12/00.00.mp4"),
        Path("/v/cam1.mp4"),
        Path("/w/cam1/2025-03-01/12/00.00.mp4"),
    ]
    for minute, path in enumerate(paths):
        start = NOON + timedelta(minutes=minute)
        store.open_segment(stream="cam1", path=path, start=start)

    strings = [str(path) for path in paths]
    assert store.known_paths(Path("/v/cam1")) == set(strings[:2])
    assert store.known_paths(Path("/v/cam1/2025-03-01")) == {strings[0]}
    assert store.known_paths(Path("/v")) == set(strings[:5])
    assert store.known_paths(Path("/")) == set(strings)
    assert store.known_paths(Path("/x")) == set()
    with pytest.raises(ValueError, match="absolute"):
        store.known_paths(Path("v"))
