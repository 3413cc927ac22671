"""Backups and restores with real SQLite databases, real files and real tar archives: round trips,
backups taken while another connection writes, damaged archives refused without a change,
retention, and the scheduler."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vigil import __version__
from vigil.ops.archive import (
    CONFIG_MEMBER,
    DATABASE_MEMBER,
    MANIFEST_MEMBER,
    BackupError,
    InvalidArchiveError,
    known_schema_revisions,
    verify_archive,
)
from vigil.ops.backup import (
    BackupScheduler,
    archive_name,
    archive_paths,
    create_backup,
    inspect_archives,
    names_to_prune,
    next_backup_due,
    parse_archive_name,
    prune_archives,
)
from vigil.ops.restore import DatabaseInUseError, database_in_use, restore_backup
from vigil.store.db import Database
from vigil.store.models import SegmentStatus
from vigil.store.recordings import SegmentStore
from vigil.store.tokens import Role, TokenStore

T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
CONFIG_TEXT = "data_dir: ./data\nbackup:\n  keep: 3\n"


@dataclass
class Site:
    """A Vigil's state on disk: its data directory, database, configuration and backups."""

    root: Path

    @property
    def database(self) -> Path:
        return self.root / "data" / "vigil.db"

    @property
    def config(self) -> Path:
        return self.root / "vigil.yml"

    @property
    def backups(self) -> Path:
        return self.root / "data" / "backups"

    def open(self) -> Database:
        db = Database(self.database)
        db.migrate()
        return db


def add_segments(db: Database, count: int, *, stream: str = "gate", first: int = 0) -> None:
    store = SegmentStore(db)
    for index in range(first, first + count):
        start = T0 + timedelta(seconds=4 * index)
        store.add_complete(
            stream=stream, path=db.path.parent / f"{stream}/{index}.mp4", start=start,
            end=start + timedelta(seconds=4), duration_s=4.0, size_bytes=1000 + index,
            codec="h264", width=320, height=240, status=SegmentStatus.COMPLETE,
        )  # fmt: skip


def token_names(db: Database) -> list[str]:
    return sorted(row.name for row in TokenStore(db).list())


def count_rows(database: Path, table: str) -> int:
    connection = sqlite3.connect(database)
    try:
        return int(connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        connection.close()


def snapshot(directory: Path) -> dict[str, str]:
    """Every file under `directory` with its SHA-256: a change anywhere shows."""
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A stopped Vigil: two tokens, three segments and a configuration file."""
    site = Site(tmp_path)
    site.config.write_text(CONFIG_TEXT)
    with site.open() as db:
        TokenStore(db).create("ops", Role.OPERATOR)
        TokenStore(db).create("prometheus", Role.VIEWER)
        add_segments(db, 3)
    yield site


def test_round_trip_brings_back_the_rows_and_keeps_what_it_replaced(site: Site) -> None:
    made = create_backup(site.database, site.backups, config=site.config, now=T0)
    assert made.path == site.backups / "vigil-backup-20261124T060000Z.tar"
    assert made.path.stat().st_mode & 0o777 == 0o600  # it holds camera passwords
    assert made.manifest.schema_revision == known_schema_revisions()[-1]
    assert made.manifest.vigil_version == __version__
    assert sorted(made.manifest.members) == [CONFIG_MEMBER, DATABASE_MEMBER]

    with site.open() as db:  # life goes on after the backup
        TokenStore(db).create("later", Role.ADMIN)
        TokenStore(db).revoke("ops")
        add_segments(db, 2, first=3)

    restored = restore_backup(made.path, site.database, now=T0 + timedelta(days=1))
    assert restored.database_aside == site.root / "data/vigil.db.before-restore-20261125T060000Z"
    assert restored.config is None  # only with config_path
    with site.open() as db:  # migrates at start, as Vigil does
        assert token_names(db) == ["ops", "prometheus"]
        assert all(row.revoked_at is None for row in TokenStore(db).list())
        assert count_rows(site.database, "segments") == 3
    assert restored.database_aside is not None
    with Database(restored.database_aside) as before:  # nothing was thrown away
        assert token_names(before) == ["later", "ops", "prometheus"]
    assert count_rows(restored.database_aside, "segments") == 5


def test_list_shows_each_archive_newest_first_and_whether_it_verifies(site: Site) -> None:
    older = create_backup(site.database, site.backups, now=T0)
    newer = create_backup(
        site.database, site.backups, config=site.config, now=T0 + timedelta(hours=1)
    )
    (site.backups / "notes.txt").write_text("not ours")
    damaged = site.backups / archive_name(T0 - timedelta(hours=1))
    damaged.write_bytes(older.path.read_bytes()[:3000])

    infos = inspect_archives(site.backups)
    assert [info.path for info in infos] == [newer.path, older.path, damaged]
    assert [info.ok for info in infos] == [True, True, False]
    assert infos[0].manifest is not None and infos[0].manifest.has_config
    assert infos[1].manifest is not None and not infos[1].manifest.has_config
    assert infos[0].size_bytes == newer.path.stat().st_size
    assert infos[2].problem is not None and "truncated" in infos[2].problem
    assert not list(site.backups.glob(".*")), "verification leaves no scratch files"


def test_a_backup_taken_while_another_connection_writes_is_consistent(site: Site) -> None:
    written = 0
    failure: list[BaseException] = []
    stop = threading.Event()

    def write() -> None:
        nonlocal written
        try:
            with site.open() as db:
                while not stop.is_set():
                    add_segments(db, 1, stream="busy", first=written)
                    written += 1
        except BaseException as error:  # reported by the test thread
            failure.append(error)

    writer = threading.Thread(target=write)
    writer.start()
    counts = []
    try:
        for index in range(5):
            seen = written
            deadline = datetime.now(UTC) + timedelta(seconds=30)
            while written <= seen and not failure and datetime.now(UTC) < deadline:
                stop.wait(0.01)  # until the writer has committed something new
            made = create_backup(site.database, site.backups, now=T0 + timedelta(minutes=index))
            extracted = site.root / f"check{index}"
            extracted.mkdir()
            verify_archive(made.path, extract_to=extracted)  # includes PRAGMA integrity_check
            counts.append(count_rows(extracted / DATABASE_MEMBER, "segments"))
    finally:
        stop.set()
        writer.join()
    assert not failure, failure
    assert counts == sorted(counts) and len(set(counts)) == 5, counts
    assert counts[0] > 3 and counts[-1] <= 3 + written


def integrity(database: Path) -> str:
    connection = sqlite3.connect(database)
    try:
        return str(connection.execute("PRAGMA integrity_check").fetchone()[0])
    except sqlite3.DatabaseError as error:
        return str(error)
    finally:
        connection.close()


def test_restore_repairs_a_corrupted_database(site: Site) -> None:
    made = create_backup(site.database, site.backups, now=T0)
    size = site.database.stat().st_size
    with site.database.open("r+b") as file:  # a disk that returned garbage past the header
        file.seek(100)
        file.write(os.urandom(size - 100))
    assert integrity(site.database) != "ok"

    restored = restore_backup(made.path, site.database)

    assert integrity(site.database) == "ok"
    with site.open() as db:
        assert token_names(db) == ["ops", "prometheus"]
    assert count_rows(site.database, "segments") == 3
    assert restored.database_aside is not None
    assert integrity(restored.database_aside) != "ok"  # kept as it was, for a post-mortem


# --- damaged or foreign archives: refused, nothing changed ---------------------------------


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {info.name: tar.extractfile(info).read() for info in tar}  # type: ignore[union-attr]


def _write_tar(archive: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(archive, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _offsets(archive: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(archive) as tar:
        return {info.name: info for info in tar}


def cut_inside_database(archive: Path) -> None:
    member = _offsets(archive)[DATABASE_MEMBER]
    os.truncate(archive, member.offset_data + member.size // 2)


def cut_before_config(archive: Path) -> None:
    os.truncate(archive, _offsets(archive)[CONFIG_MEMBER].offset)


def cut_inside_manifest(archive: Path) -> None:
    os.truncate(archive, _offsets(archive)[MANIFEST_MEMBER].offset_data + 20)


def flip_a_database_byte(archive: Path) -> None:
    member = _offsets(archive)[DATABASE_MEMBER]
    with archive.open("r+b") as file:
        file.seek(member.offset_data + member.size // 2)
        byte = file.read(1)
        file.seek(-1, os.SEEK_CUR)
        file.write(bytes([byte[0] ^ 0xFF]))


def edit_manifest(**changes: object) -> Callable[[Path], None]:
    def edit(archive: Path) -> None:
        members = _members(archive)
        manifest = json.loads(members[MANIFEST_MEMBER])
        manifest.update(changes)
        members[MANIFEST_MEMBER] = json.dumps(manifest).encode()
        _write_tar(archive, members)

    return edit


def drop_member(name: str) -> Callable[[Path], None]:
    def drop(archive: Path) -> None:
        members = _members(archive)
        del members[name]
        _write_tar(archive, members)

    return drop


def replace_with_noise(archive: Path) -> None:
    archive.write_bytes(os.urandom(4096))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (
            cut_inside_database,
            "archive is truncated or damaged: unexpected end of data in vigil.db",
        ),
        (cut_before_config, "archive is truncated or incomplete: config.yaml is missing"),
        (
            cut_inside_manifest,
            "archive is truncated or damaged: unexpected end of data in manifest.json",
        ),
        (flip_a_database_byte, "checksum mismatch for vigil.db"),
        (edit_manifest(format_version=2), "unknown backup format version 2"),
        (edit_manifest(format="something-else"), "does not describe a Vigil backup"),
        (edit_manifest(schema_revision="0001"), "the manifest says 0001"),
        (drop_member(MANIFEST_MEMBER), "archive has no manifest.json"),
        (replace_with_noise, "not a readable tar archive"),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_a_damaged_archive_is_refused_and_nothing_changes(
    site: Site, damage: Callable[[Path], None], message: str
) -> None:
    made = create_backup(site.database, site.backups, config=site.config, now=T0)
    with site.open() as db:
        TokenStore(db).create("after-backup", Role.VIEWER)
    damage(made.path)
    before = snapshot(site.root)

    with pytest.raises(InvalidArchiveError) as refused:
        restore_backup(made.path, site.database, config_path=site.config)

    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert snapshot(site.root) == before
    with site.open() as db:
        assert "after-backup" in token_names(db)


def test_a_database_from_a_newer_vigil_is_refused(site: Site) -> None:
    connection = sqlite3.connect(site.database)
    with connection:
        connection.execute("UPDATE alembic_version SET version_num = '9999'")
    connection.close()
    made = create_backup(site.database, site.backups, now=T0)
    assert made.manifest.schema_revision == "9999"
    before = snapshot(site.root)

    with pytest.raises(InvalidArchiveError, match=r"schema revision 9999.*from a newer Vigil"):
        restore_backup(made.path, site.database)
    assert snapshot(site.root) == before


def test_a_backup_of_a_damaged_database_is_not_made(site: Site) -> None:
    site.database.write_bytes(b"this is no database" * 1000)
    with pytest.raises(BackupError, match=r"cannot copy database .*: file is not a database"):
        create_backup(site.database, site.backups, now=T0)
    assert os.listdir(site.backups) == []
    with pytest.raises(BackupError, match="does not exist"):
        create_backup(site.root / "elsewhere.db", site.backups, now=T0)
    assert not (site.root / "elsewhere.db").exists()


# --- Vigil running on the database ------------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from vigil.store.db import Database
from vigil.store.tokens import TokenStore
db = Database(Path(sys.argv[1]))
db.migrate()
TokenStore(db).list()  # Vigil reads its tokens every second
print("ready", flush=True)
sys.stdin.read()
"""


def test_restore_is_refused_while_another_process_has_the_database_open(site: Site) -> None:
    made = create_backup(site.database, site.backups, now=T0)
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(site.database)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as holder:  # fmt: skip
        assert holder.stdin is not None and holder.stdout is not None
        try:
            assert holder.stdout.readline() == "ready\n"
            assert database_in_use(site.database)
            before = snapshot(site.root / "data")
            with pytest.raises(DatabaseInUseError, match=r"is in use .*is Vigil running"):
                restore_backup(made.path, site.database)
            assert snapshot(site.root / "data") == before
        finally:
            holder.stdin.close()  # the holder exits at end of input
            holder.wait(timeout=30)
    assert not database_in_use(site.database)
    restore_backup(made.path, site.database)


def test_an_open_connection_in_this_process_counts_and_force_overrides(site: Site) -> None:
    made = create_backup(site.database, site.backups, now=T0)
    with site.open() as db:
        token_names(db)
        with pytest.raises(DatabaseInUseError):
            restore_backup(made.path, site.database)
        restored = restore_backup(made.path, site.database, force=True)
    assert restored.database_aside is not None and restored.database_aside.exists()
    assert not database_in_use(site.database)


# --- the configuration file, owner and mode ---------------------------------------------------


def test_the_configuration_is_restored_only_when_asked(site: Site) -> None:
    made = create_backup(site.database, site.backups, config=site.config, now=T0)
    site.config.write_text("data_dir: ./data\nbackup:\n  keep: 9\n")

    restore_backup(made.path, site.database, now=T0)
    assert "keep: 9" in site.config.read_text()

    restored = restore_backup(made.path, site.database, config_path=site.config,
                              now=T0 + timedelta(seconds=1))  # fmt: skip
    assert site.config.read_text() == CONFIG_TEXT
    assert restored.config_aside == site.root / "vigil.yml.before-restore-20261124T060001Z"
    assert "keep: 9" in restored.config_aside.read_text()
    assert not [path for path in site.root.iterdir() if path.name.startswith(".")]


def test_a_configuration_is_not_restored_from_an_archive_without_a_valid_one(site: Site) -> None:
    without = create_backup(site.database, site.backups, now=T0)
    with pytest.raises(BackupError, match="holds no configuration file"):
        restore_backup(without.path, site.database, config_path=site.config)
    site.config.write_text("data_dir: ./data\nno_such_key: 1\n")
    invalid = create_backup(site.database, site.backups, config=site.config, now=T0)
    site.config.write_text(CONFIG_TEXT)
    before = snapshot(site.root / "data")
    with pytest.raises(
        BackupError, match=r"configuration is not valid for this Vigil.*no_such_key"
    ):
        restore_backup(invalid.path, site.database, config_path=site.config)
    assert site.config.read_text() == CONFIG_TEXT
    assert snapshot(site.root / "data") == before


def test_the_restored_database_keeps_the_mode_of_the_one_it_replaces(site: Site) -> None:
    made = create_backup(site.database, site.backups, now=T0)
    site.database.chmod(0o640)
    restore_backup(made.path, site.database)
    assert site.database.stat().st_mode & 0o777 == 0o640
    fresh = site.root / "fresh" / "vigil.db"  # a new machine: nothing to replace
    restored = restore_backup(made.path, fresh)
    assert restored.database_aside is None
    assert fresh.stat().st_mode & 0o777 == 0o600


# --- names, retention, the schedule -------------------------------------------------------------


@pytest.mark.parametrize(
    ("names", "keep", "deleted"),
    [
        ([], 3, []),
        (["vigil-backup-20261124T060000Z.tar"], 1, []),
        (
            ["vigil-backup-20261124T060000Z.tar", "vigil-backup-20261125T060000Z.tar",
             "vigil-backup-20261123T060000Z.tar"],
            2, ["vigil-backup-20261123T060000Z.tar"],
        ),
        (  # same second: -1 is newer than no suffix
            ["vigil-backup-20261124T060000Z-1.tar", "vigil-backup-20261124T060000Z.tar"],
            1, ["vigil-backup-20261124T060000Z.tar"],
        ),
        (  # never anything not named like ours
            ["notes.txt", "vigil-backup-latest.tar", "vigil-backup-20261124T060000Z.tar.part",
             "vigil-backup-20261399T060000Z.tar", "vigil-backup-20261124T060000Z.tar",
             "vigil-backup-20261125T060000Z.tar"],
            1, ["vigil-backup-20261124T060000Z.tar"],
        ),
    ],
)  # fmt: skip
def test_names_to_prune(names: list[str], keep: int, deleted: list[str]) -> None:
    assert names_to_prune(names, keep) == deleted


def test_archive_names_round_trip() -> None:
    assert archive_name(T0) == "vigil-backup-20261124T060000Z.tar"
    assert archive_name(T0, 2) == "vigil-backup-20261124T060000Z-2.tar"
    assert parse_archive_name(archive_name(T0, 2)) == (T0, 2)
    assert parse_archive_name("vigil-backup-20261124T060000Z.tar.tmp") is None


def test_pruning_keeps_the_newest_and_touches_nothing_else(site: Site) -> None:
    made = [
        create_backup(site.database, site.backups, now=T0 + timedelta(hours=hour)).path
        for hour in range(5)
    ]
    same_second = create_backup(site.database, site.backups, now=T0 + timedelta(hours=4))
    assert same_second.path.name == "vigil-backup-20261124T100000Z-1.tar"
    (site.backups / "notes.txt").write_text("mine")

    deleted = prune_archives(site.backups, 3)

    assert sorted(deleted) == made[:3]
    assert archive_paths(site.backups) == [same_second.path, made[4], made[3]]
    assert (site.backups / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("newest", "now", "due"),
    [
        (None, T0, T0),  # no backup yet: at once
        (T0 - timedelta(hours=1), T0, T0 + timedelta(hours=23)),  # a restart does not postpone
        (T0 - timedelta(hours=30), T0, T0),  # overdue: at once
        (T0 + timedelta(hours=1), T0, T0 + timedelta(hours=25)),  # clock went back: as planned
    ],
)
def test_next_backup_due(newest: datetime | None, now: datetime, due: datetime) -> None:
    assert next_backup_due(newest, timedelta(hours=24), now) == due


async def test_the_scheduler_makes_backups_and_applies_retention(site: Site) -> None:
    scheduler = BackupScheduler(
        site.database, site.backups, interval_hours=0.0002, keep=2, config_path=site.config
    )
    seen: set[Path] = set()
    scheduler.start()
    scheduler.start()  # idempotent
    try:
        async with asyncio.timeout(60):
            # Three backups made, the first of them pruned.
            while len(seen) < 3 or len(archive_paths(site.backups)) > 2:
                seen.update(await asyncio.to_thread(archive_paths, site.backups))
                await asyncio.sleep(0.05)
    finally:
        await scheduler.stop()
        await scheduler.stop()  # idempotent
    remaining = archive_paths(site.backups)
    assert len(remaining) == 2
    for path in remaining:
        manifest = verify_archive(path)
        assert manifest.has_config
    assert not [path for path in site.backups.iterdir() if path.name.startswith(".")]


async def test_a_scheduler_with_interval_zero_does_nothing(site: Site) -> None:
    scheduler = BackupScheduler(site.database, site.backups, interval_hours=0, keep=1)
    assert not scheduler.enabled
    scheduler.start()
    await scheduler.stop()
    assert archive_paths(site.backups) == []


async def test_stop_finishes_a_backup_being_copied_rather_than_abandoning_it(site: Site) -> None:
    scheduler = BackupScheduler(site.database, site.backups, interval_hours=1, keep=3)
    scheduler.start()  # no archive yet: one is due at once
    async with asyncio.timeout(60):
        while not site.backups.exists():  # made as the copy starts
            await asyncio.sleep(0)
    await scheduler.stop()
    # Whether or not the copy had begun, nothing half-made is left behind.
    assert not [path for path in site.backups.iterdir() if path.name.startswith(".")]
    for path in archive_paths(site.backups):
        verify_archive(path)


async def test_a_failed_scheduled_backup_is_logged_and_retried(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    missing = site.root / "later" / "vigil.db"
    scheduler = BackupScheduler(missing, site.backups, interval_hours=1, keep=3, retry_after_s=0.05)
    scheduler.start()
    try:
        async with asyncio.timeout(60):
            while "scheduled backup failed" not in caplog.text:
                await asyncio.sleep(0.02)
            assert f"database {missing} does not exist" in caplog.text
            with Database(missing) as db:  # the database appears; the next attempt succeeds
                db.migrate()
            while not archive_paths(site.backups):
                await asyncio.sleep(0.02)
    finally:
        await scheduler.stop()
    verify_archive(archive_paths(site.backups)[0])


def test_a_scheduler_from_the_configuration(site: Site) -> None:
    from vigil.config import load_config, resolve

    text = "data_dir: ./data\nbackup:\n  interval_hours: 24\n  keep: 4\n  dir: ./elsewhere\n"
    site.config.write_text(text)
    resolved = resolve(load_config(site.config, env={}), base_dir=site.root)
    scheduler = BackupScheduler.from_config(resolved, config_path=site.config)
    assert scheduler.enabled
    assert resolved.backup_dir == site.root / "elsewhere"
    off = resolve(load_config(site.config, env={"VIGIL_BACKUP__INTERVAL_HOURS": "0"}),
                  base_dir=site.root)  # fmt: skip
    assert not BackupScheduler.from_config(off).enabled
