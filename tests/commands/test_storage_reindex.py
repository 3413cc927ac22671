"""`vigil storage reindex` on real fragmented MP4 segments laid out as the recorder lays them
out, and a real SQLite index: a lost database is rebuilt with the same segments, a corrupt one is
moved aside, volumes are chosen by id, a second run finds nothing new, and a running Vigil (the
real one) is left alone."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.recording.recorded_media import (
    FRAGMENTED,
    H264,
    ffprobe_packet_durations,
    record,
    tools_missing,
)
from tests.support.cli import Ran
from tests.support.media import segment_files
from tests.support.service import ClosedSegments, running_vigil, until
from vigil.cli import app
from vigil.recording.identity import IDENTITY_FILE, create_identity, read_identity
from vigil.recording.paths import segment_path
from vigil.recording.rebuild import RECONSTRUCTED_GAP_REASON
from vigil.store.db import Database
from vigil.store.models import SegmentStatus
from vigil.store.recordings import GapRow, GapStore, SegmentRow, SegmentStore

FPS = 25
FRAME_S = 1 / FPS
STREAMS = ["cam1", "cam2"]
SOURCE = "test://ball?size=160x120&fps=10"


def _vigil_yaml(data_dir: Path, *, listen: str = "127.0.0.1:0", extra: str = "") -> str:
    streams = "\n".join(f'  - {{name: {name}, source: "{SOURCE}"}}' for name in STREAMS)
    return (
        f"data_dir: {data_dir}\n"
        f'api: {{listen: "{listen}"}}\n'
        "recording: {segment_seconds: 2}\n"
        f"{extra}"
        f"streams:\n{streams}\n"
    )


@dataclass(frozen=True)
class Source:
    """A recorded segment file and its duration as ffprobe reads it."""

    path: Path
    duration_s: float


@dataclass(frozen=True)
class Placed:
    """A segment as the recorder would have indexed it, relative to its volume."""

    stream: str
    start: datetime  # the instant recording began: within the second the name gives
    source: Source

    def relative(self) -> Path:
        return segment_path(Path(), self.stream, self.start)


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> list[Source]:
    """Two fragmented H.264 segments of 5 s, recorded with splitmuxsink as the recorder does."""
    reason = tools_missing()
    if reason is not None:
        pytest.skip(reason)
    files = record(tmp_path_factory.mktemp("sources"), H264, FRAGMENTED, buffers=250)
    assert len(files) == 2
    durations = [ffprobe_packet_durations(path) for path in files]
    return [Source(path, sum(d)) for path, d in zip(files, durations, strict=True) if d]


@pytest.fixture
def segments(sources: list[Source]) -> list[Placed]:
    """cam1 recording back to back from 12:00:00.4; cam2 across midnight; starts as the
    recorder takes them (sub-second), each the previous one's end."""
    placed: list[Placed] = []
    for stream, start in [
        ("cam1", datetime(2025, 3, 1, 12, 0, 0, 400_000, tzinfo=UTC)),
        ("cam2", datetime(2025, 3, 1, 23, 59, 50, 700_000, tzinfo=UTC)),
    ]:
        for index in range(4):
            source = sources[index % 2]
            placed.append(Placed(stream, start, source))
            start += timedelta(seconds=source.duration_s)
    return placed


def _lay_out(root: Path, segments: list[Placed]) -> Path:
    for segment in segments:
        path = root / segment.relative()
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(segment.source.path, path)
    return root


def _index_as_recorded(
    database: Path, root: Path, segments: list[Placed], volume: str | None
) -> None:
    """The rows the recorder writes for `segments` (complete, exact start and duration)."""
    with Database(database) as db:
        db.migrate()
        store = SegmentStore(db)
        for segment in segments:
            path = root / segment.relative()
            duration = segment.source.duration_s
            store.add_complete(
                stream=segment.stream, path=path, start=segment.start,
                end=segment.start + timedelta(seconds=duration), duration_s=duration,
                size_bytes=path.stat().st_size, codec="h264", width=320, height=240,
                status=SegmentStatus.COMPLETE, volume=volume,
            )  # fmt: skip


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "vigil.yml"
    path.write_text(text)
    return path


def _reindex(*args: str) -> Ran:
    result = CliRunner().invoke(app, ["storage", "reindex", *args], env={"COLUMNS": "200"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Ran(result.exit_code, result.stdout, result.stderr)


def _rows(db_path: Path) -> list[SegmentRow]:
    with Database(db_path) as db:
        return SegmentStore(db).list_segments(limit=10_000)


def _gaps(db_path: Path) -> list[GapRow]:
    with Database(db_path) as db:
        return GapStore(db).list_gaps()


def _volume_id(root: Path) -> str:
    identity = read_identity(root)
    assert identity is not None, f"{root} has no identity file"
    return identity.id


# --- a lost database -------------------------------------------------------------------------


def test_a_lost_database_is_rebuilt_with_the_same_segments(
    segments: list[Placed], tmp_path: Path
) -> None:
    root = _lay_out(tmp_path / "data" / "recordings", segments)
    volume_id = create_identity(root).id
    database = tmp_path / "data" / "vigil.db"
    _index_as_recorded(database, root, segments, volume_id)
    recorded = _rows(database)
    config = _config(tmp_path, _vigil_yaml(tmp_path / "data"))
    database.unlink()

    ran = _reindex("-c", str(config))

    assert ran.exit_code == 0, ran.output
    count = len(segments)
    assert ran.stdout.splitlines() == [
        f"database {database}: none found, created",
        f"volume {volume_id} {root}: {count} files seen: {count} indexed, 0 already known, "
        "0 quarantined, 0 errors",
        "gaps: 0 reconstructed between segments (reason unknown)",
    ]
    rebuilt = {row.path: row for row in _rows(database)}
    assert set(rebuilt) == {row.path for row in recorded}
    for original in recorded:
        row = rebuilt[original.path]
        assert row.stream == original.stream
        assert row.volume == volume_id
        assert row.status is SegmentStatus.REPAIRED
        # The name gives the second the recording started in.
        assert timedelta(0) <= original.start - row.start < timedelta(seconds=1), row.path
        assert original.duration_s is not None and row.duration_s is not None
        assert row.duration_s == pytest.approx(original.duration_s, abs=1e-3)
        assert row.end == row.start + timedelta(seconds=row.duration_s)
        assert (row.size_bytes, row.codec, row.width, row.height) == (
            original.size_bytes, original.codec, original.width, original.height,
        )  # fmt: skip
    # Recorded back to back: rebuilding finds no gap, across midnight either.
    assert _gaps(database) == []

    # A second run finds nothing new and changes nothing.
    again = _reindex("-c", str(config), "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    (volume,) = report["volumes"]
    assert (volume["id"], volume["indexed"], volume["known"], volume["files"]) == (
        volume_id, 0, count, count,
    )  # fmt: skip
    assert (volume["quarantined"], volume["errors"], volume["outcomes"]) == (0, 0, [])
    assert (report["database"]["state"], report["gaps_reconstructed"]) == ("existing", None)
    assert list(rebuilt.values()) == _rows(database)
    assert _gaps(database) == []


def test_the_implicit_volume_is_given_an_identity(segments: list[Placed], tmp_path: Path) -> None:
    root = _lay_out(tmp_path / "data" / "recordings", segments)
    config = _config(tmp_path, _vigil_yaml(tmp_path / "data"))

    ran = _reindex("-c", str(config))

    assert ran.exit_code == 0, ran.output
    volume_id = _volume_id(root)
    assert f"volume {volume_id} {root}: {len(segments)} files seen" in ran.stdout
    assert "identity file created" in ran.stdout
    assert {row.volume for row in _rows(tmp_path / "data" / "vigil.db")} == {volume_id}


def test_a_missing_file_becomes_a_reconstructed_gap_only_when_rebuilding_from_nothing(
    segments: list[Placed], tmp_path: Path
) -> None:
    root = _lay_out(tmp_path / "data" / "recordings", segments)
    cam1 = [segment for segment in segments if segment.stream == "cam1"]
    lost = root / cam1[1].relative()
    kept = lost.read_bytes()
    lost.unlink()
    config = _config(tmp_path, _vigil_yaml(tmp_path / "data"))
    database = tmp_path / "data" / "vigil.db"

    ran = _reindex("-c", str(config))

    assert ran.exit_code == 0, ran.output
    by_path = {row.path: row for row in _rows(database)}
    before = by_path[root / cam1[0].relative()]
    after = by_path[root / cam1[2].relative()]
    assert [(g.stream, g.start, g.end, g.reason) for g in _gaps(database)] == [
        ("cam1", before.end, after.start, RECONSTRUCTED_GAP_REASON)
    ]
    assert "gaps: 1 reconstructed between segments (reason unknown)" in ran.stdout

    # The file comes back: it is indexed, and no gap is added (the index is not empty now).
    lost.write_bytes(kept)
    again = _reindex("-c", str(config))
    assert again.exit_code == 0, again.output
    assert ": 8 files seen: 1 indexed, 7 already known" in again.stdout
    assert "gaps: not reconstructed: the index was not empty" in again.stdout
    assert len(_gaps(database)) == 1


def test_rows_without_a_volume_are_given_it(segments: list[Placed], tmp_path: Path) -> None:
    root = _lay_out(tmp_path / "data" / "recordings", segments)
    database = tmp_path / "data" / "vigil.db"
    _index_as_recorded(database, root, segments[:3], volume=None)  # before volumes had ids
    config = _config(tmp_path, _vigil_yaml(tmp_path / "data"))

    ran = _reindex("-c", str(config))

    assert ran.exit_code == 0, ran.output
    volume_id = _volume_id(root)
    rows = _rows(database)
    assert len(rows) == len(segments)
    assert {row.volume for row in rows} == {volume_id}
    assert f"{len(segments) - 3} indexed, 3 already known" in ran.stdout
    assert "3 known rows given this volume" in ran.stdout
    assert _gaps(database) == []  # not rebuilt from nothing: no gap is made up


def test_an_open_row_left_by_a_crash_is_repaired(segments: list[Placed], tmp_path: Path) -> None:
    root = _lay_out(tmp_path / "data" / "recordings", segments)
    database = tmp_path / "data" / "vigil.db"
    with Database(database) as db:
        db.migrate()
        SegmentStore(db).open_segment(
            stream="cam1", path=root / segments[0].relative(), start=segments[0].start
        )
    config = _config(tmp_path, _vigil_yaml(tmp_path / "data"))

    ran = _reindex("-c", str(config))

    assert ran.exit_code == 0, ran.output
    assert "1 open rows left by a crash repaired" in ran.stdout
    row = next(row for row in _rows(database) if row.path == root / segments[0].relative())
    assert row.status is SegmentStatus.REPAIRED
    assert row.duration_s == pytest.approx(segments[0].source.duration_s, abs=1e-3)


# --- a corrupt database ----------------------------------------------------------------------


def _garbage(database: Path) -> None:
    database.write_bytes(b"this is not a database\n" * 100)


def _damaged_pages(database: Path) -> None:
    """Every page but the first (header and schema) overwritten with garbage."""
    data = database.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    assert len(data) > page_size, "the database has only one page"
    garbage = bytes(range(256)) * (len(data) // 256 + 1)
    database.write_bytes(data[:page_size] + garbage[: len(data) - page_size])


def _unknown_revision(database: Path) -> None:
    """A sound SQLite file the migrations cannot handle (a newer Vigil's, say)."""
    database.unlink()
    connection = sqlite3.connect(database)
    with connection:
        connection.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        connection.execute("INSERT INTO alembic_version VALUES ('from-a-future-vigil')")
    connection.close()


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (_garbage, "not an SQLite database"),
        (_damaged_pages, ""),
        (_unknown_revision, "migrations failed"),
    ],
    ids=["garbage", "damaged-pages", "migrations-fail"],
)
def test_a_corrupt_database_is_moved_aside_and_rebuilt(
    segments: list[Placed], tmp_path: Path, damage: object, problem: str
) -> None:
    root = _lay_out(tmp_path / "data" / "recordings", segments)
    database = tmp_path / "data" / "vigil.db"
    _index_as_recorded(database, root, segments, volume=None)
    config = _config(tmp_path, _vigil_yaml(tmp_path / "data"))
    assert callable(damage)
    damage(database)
    wal = Path(f"{database}-wal")
    wal.write_bytes(b"a log that belongs to the damaged file")
    damaged, damaged_wal = database.read_bytes(), wal.read_bytes()

    ran = _reindex("-c", str(config), "--json")

    assert ran.exit_code == 0, ran.output
    report = json.loads(ran.stdout)
    assert report["database"]["state"] == "replaced"
    assert problem in report["database"]["problem"]
    moved = [Path(path) for path in report["database"]["moved_to"]]
    assert moved[0].name.startswith("vigil.db.corrupt-")
    assert moved[0].parent == database.parent
    # Kept intact (nothing is ever deleted), its log beside it under the name SQLite pairs.
    assert moved[0].read_bytes() == damaged
    assert Path(f"{moved[0]}-wal") in moved
    assert Path(f"{moved[0]}-wal").read_bytes() == damaged_wal
    rows = _rows(database)
    assert sorted(row.path for row in rows) == sorted(root / s.relative() for s in segments)
    assert report["volumes"][0]["indexed"] == len(segments)


def test_a_log_left_without_its_database_is_moved_aside(
    segments: list[Placed], tmp_path: Path
) -> None:
    _lay_out(tmp_path / "data" / "recordings", segments)
    database = tmp_path / "data" / "vigil.db"
    orphan = Path(f"{database}-wal")
    orphan.write_bytes(b"the log of a database that was deleted")
    config = _config(tmp_path, _vigil_yaml(tmp_path / "data"))

    ran = _reindex("-c", str(config))

    assert ran.exit_code == 0, ran.output
    (kept,) = database.parent.glob("vigil.db.orphan-*-wal")
    assert kept.read_bytes() == b"the log of a database that was deleted"
    assert len(_rows(database)) == len(segments)


# --- choosing volumes ------------------------------------------------------------------------


def _three_volumes(segments: list[Placed], tmp_path: Path) -> tuple[Path, Path, Path, Path]:
    """Volumes a and b with an identity and the segments each, c without an identity (a mount
    point whose disk is missing, or someone else's disk); returns (config, a, b, c)."""
    a, b, c = (_lay_out(tmp_path / name, segments) for name in "abc")
    create_identity(a)
    create_identity(b)
    volumes = (
        "storage:\n  volumes:\n"
        f"    - {{path: {a}}}\n    - {{path: {b}, priority: 2}}\n    - {{path: {c}, priority: 3}}\n"
    )
    return _config(tmp_path, _vigil_yaml(tmp_path / "data", extra=volumes)), a, b, c


def test_every_volume_with_an_identity_is_indexed_under_its_id(
    segments: list[Placed], tmp_path: Path
) -> None:
    config, a, b, c = _three_volumes(segments, tmp_path)

    ran = _reindex("-c", str(config))

    assert ran.exit_code == 0, ran.output
    rows = _rows(tmp_path / "data" / "vigil.db")
    assert {row.volume for row in rows if row.path.is_relative_to(a)} == {_volume_id(a)}
    assert {row.volume for row in rows if row.path.is_relative_to(b)} == {_volume_id(b)}
    assert len(rows) == 2 * len(segments)
    assert (
        f"volume - {c}: skipped: no identity file: not a Vigil volume or not mounted" in ran.stdout
    )
    assert not (c / IDENTITY_FILE).exists(), "a configured volume is never given an identity"
    assert "gaps: not reconstructed: not every volume was indexed" in ran.stdout


def test_volume_selects_one_volume_by_a_prefix_of_its_id(
    segments: list[Placed], tmp_path: Path
) -> None:
    config, a, b, _c = _three_volumes(segments, tmp_path)
    b_id = _volume_id(b)

    ran = _reindex("-c", str(config), "--volume", b_id[:8].upper())

    assert ran.exit_code == 0, ran.output
    rows = _rows(tmp_path / "data" / "vigil.db")
    assert len(rows) == len(segments)
    assert all(row.path.is_relative_to(b) and row.volume == b_id for row in rows)
    assert str(a) not in ran.stdout


def test_an_unknown_volume_is_refused_naming_the_known_ones(
    segments: list[Placed], tmp_path: Path
) -> None:
    config, a, b, _c = _three_volumes(segments, tmp_path)

    ran = _reindex("-c", str(config), "--volume", "no-such-volume")

    assert ran.exit_code == 2, ran.output
    assert "no volume has id 'no-such-volume'" in ran.stderr
    assert f"{_volume_id(a)} ({a})" in ran.stderr
    assert f"{_volume_id(b)} ({b})" in ran.stderr
    assert not (tmp_path / "data").exists(), "nothing is touched"


def test_an_ambiguous_prefix_is_refused(tmp_path: Path) -> None:
    paths = []
    for index, volume_id in enumerate(
        ["aaaa1111-0000-4000-8000-000000000000", "aaaa2222-0000-4000-8000-000000000000"]
    ):
        path = tmp_path / f"v{index}"
        path.mkdir()
        (path / IDENTITY_FILE).write_text(
            json.dumps({"id": volume_id, "created": "2026-01-01T00:00:00+00:00"})
        )
        paths.append(path)
    volumes = "".join(f"    - {{path: {path}, priority: {i}}}\n" for i, path in enumerate(paths))
    extra = f"storage:\n  volumes:\n{volumes}"
    config = _config(tmp_path, _vigil_yaml(tmp_path / "data", extra=extra))

    ran = _reindex("-c", str(config), "--volume", "aaaa")

    assert ran.exit_code == 2, ran.output
    assert "volume id 'aaaa' is ambiguous" in ran.stderr
    assert _reindex("-c", str(config), "--volume", "aaaa2").exit_code == 0


def test_a_volume_whose_identity_cannot_be_read_is_an_error(
    segments: list[Placed], tmp_path: Path
) -> None:
    config, a, b, _c = _three_volumes(segments, tmp_path)
    (a / IDENTITY_FILE).write_text("not json")

    ran = _reindex("-c", str(config))

    assert ran.exit_code == 1, ran.output
    assert f"volume - {a}: failed: cannot read its identity" in ran.stdout
    assert (a / IDENTITY_FILE).read_text() == "not json", "never replaced"
    rows = _rows(tmp_path / "data" / "vigil.db")
    assert len(rows) == len(segments)
    assert all(row.path.is_relative_to(b) for row in rows), "the others still are indexed"


# --- alongside a running Vigil ---------------------------------------------------------------


@pytest.mark.integration
async def test_alongside_a_running_vigil_nothing_it_writes_is_touched(tmp_path: Path) -> None:
    async with running_vigil(_vigil_yaml(tmp_path / "data"), tmp_path) as vigil:
        closed = ClosedSegments(vigil)
        await until(lambda: closed.at_least(STREAMS, 2), 60, "two segments per camera")
        config = _config(tmp_path, _vigil_yaml(tmp_path / "data"))

        ran = await asyncio.to_thread(_reindex, "-c", str(config), "--json")
        await until(lambda: closed.at_least(STREAMS, 3), 60, "recording goes on")

    assert ran.exit_code == 0, ran.output
    database = tmp_path / "data" / "vigil.db"
    assert f"the database {database} is open in another program" in ran.stderr
    report = json.loads(ran.stdout)
    assert report["vigil_running"] is not None
    (volume,) = report["volumes"]
    assert (volume["indexed"], volume["quarantined"], volume["errors"]) == (0, 0, 0)
    assert volume["repaired"] == [], "the files Vigil is writing are not 'repaired'"
    assert report["gaps_reconstructed"] is None
    root = tmp_path / "data" / "recordings"
    assert not (root / ".quarantine").exists()
    rows = _rows(database)
    assert sorted(row.path for row in rows) == segment_files(root)
    assert all(row.status is SegmentStatus.COMPLETE for row in rows)


def test_files_are_left_while_the_database_is_open_elsewhere(
    segments: list[Placed], tmp_path: Path
) -> None:
    _lay_out(tmp_path / "data" / "recordings", segments)  # just now: modified moments ago
    database = tmp_path / "data" / "vigil.db"
    config = _config(tmp_path, _vigil_yaml(tmp_path / "data"))
    with Database(database) as db:
        db.migrate()
        SegmentStore(db).list_segments(limit=1)  # holds it open, as a running Vigil does

        cautious = _reindex("-c", str(config))
        forced = _reindex("-c", str(config), "--min-age", "0")

    assert cautious.exit_code == 0, cautious.output
    assert "is open in another program" in cautious.stderr
    assert f"0 indexed, 0 already known, 0 quarantined, 0 errors ({len(segments)} too recent" in (
        cautious.stdout
    )
    assert forced.exit_code == 0, forced.output
    assert f"{len(segments)} indexed" in forced.stdout
    assert "gaps: not reconstructed: Vigil is running" in forced.stdout
    assert len(_rows(database)) == len(segments)


class _Healthy(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 404)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def something_answering() -> Iterator[str]:
    """An HTTP server answering /healthz (as Vigil does) on loopback; yields HOST:PORT."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Healthy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_a_corrupt_database_is_not_replaced_under_a_running_vigil(
    tmp_path: Path, something_answering: str
) -> None:
    database = tmp_path / "data" / "vigil.db"
    database.parent.mkdir(parents=True)
    database.write_bytes(b"garbage" * 100)
    config = _config(tmp_path, _vigil_yaml(tmp_path / "data", listen=something_answering))

    ran = _reindex("-c", str(config))

    assert ran.exit_code == 2, ran.output
    assert "is corrupt" in ran.stderr and "stop Vigil" in ran.stderr
    assert database.read_bytes() == b"garbage" * 100
    assert [path.name for path in database.parent.iterdir()] == ["vigil.db"]
