"""Making backups of Vigil's state, listing and pruning them, and the scheduler that makes them
while Vigil runs.

An archive (format: ``vigil.ops.archive``) is named ``vigil-backup-<UTC YYYYMMDDTHHMMSSZ>[-N].tar``.
The database is copied with SQLite's online backup API, so a backup can be taken while Vigil
writes. The archive is written into a hidden temporary directory beside its final name and
published with a hard link, which never replaces an existing file: nobody sees half an archive.
Archives hold the configuration (camera passwords) and token hashes, so they are readable by their
owner only (0600). Restoring is ``vigil.ops.restore``.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import shutil
import sqlite3
import tarfile
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vigil import __version__
from vigil.config.resolve import ResolvedConfig
from vigil.ops.archive import (
    CONFIG_MEMBER,
    DATABASE_MEMBER,
    MANIFEST_MEMBER,
    TEMP_PREFIX,
    BackupError,
    InvalidArchiveError,
    Manifest,
    check_database_file,
    digest_file,
    fsync_directory,
    verify_archive,
)
from vigil.store.timestamps import utc_now

logger = logging.getLogger(__name__)

ARCHIVE_PATTERN = re.compile(r"^vigil-backup-(\d{8}T\d{6}Z)(?:-(\d+))?\.tar$")
NAME_TIME_FORMAT = "%Y%m%dT%H%M%SZ"
# The source database may be busy for a moment (a checkpoint); wait rather than fail a backup.
SOURCE_BUSY_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class ArchiveInfo:
    """One archive in a backup directory: its manifest if it verifies, else the problem."""

    path: Path
    name_time: datetime
    size_bytes: int
    manifest: Manifest | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


# --- names and retention (pure) ------------------------------------------------------------


def archive_name(created_at: datetime, attempt: int = 0) -> str:
    """The file name of an archive made at `created_at`; `attempt` > 0 adds ``-N``."""
    stamp = created_at.astimezone(UTC).strftime(NAME_TIME_FORMAT)
    return f"vigil-backup-{stamp}{f'-{attempt}' if attempt else ''}.tar"


def parse_archive_name(name: str) -> tuple[datetime, int] | None:
    """(time, attempt) of an archive's file name; None for anything that is not one of ours."""
    match = ARCHIVE_PATTERN.match(name)
    if match is None:
        return None
    try:
        moment = datetime.strptime(match[1], NAME_TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment, int(match[2] or 0)


def newest_first(names: Iterable[str]) -> list[str]:
    """The archive names among `names`, newest first; other names are left out."""
    parsed = [(key, name) for name in names if (key := parse_archive_name(name)) is not None]
    return [name for _, name in sorted(parsed, reverse=True)]


def names_to_prune(names: Iterable[str], keep: int) -> list[str]:
    """The archive names to delete so that the newest `keep` remain; others are never chosen."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1, not {keep}")
    return newest_first(names)[keep:]


def next_backup_due(newest: datetime | None, interval: timedelta, now: datetime) -> datetime:
    """When the next scheduled backup is due: `interval` after the newest archive, at once if
    there is none or that time has passed (so restarting Vigil never postpones a backup)."""
    if newest is None or newest + interval <= now:
        return now
    return newest + interval


# --- making an archive -------------------------------------------------------------------------


def copy_database(source: Path, destination: Path) -> str:
    """Copy the SQLite database `source` to the new file `destination` with the online backup
    API; return the copy's schema revision.

    The copy is one read transaction (all pages in one step), so it is consistent even while
    other connections write (under WAL they are not blocked). It is left in rollback-journal mode
    so that it is one self-contained file; Vigil turns WAL back on when it opens it.
    """
    if not source.is_file():
        raise BackupError(f"database {source} does not exist")
    # mode=rw: a wrong path must not create an empty database.
    source_connection = sqlite3.connect(
        source.resolve().as_uri() + "?mode=rw", uri=True, timeout=SOURCE_BUSY_TIMEOUT_S
    )
    try:
        target = sqlite3.connect(destination, isolation_level=None)
        try:
            source_connection.backup(target)
            target.execute("PRAGMA journal_mode=DELETE")
        finally:
            target.close()
    except sqlite3.Error as error:
        raise BackupError(f"cannot copy database {source}: {error}") from None
    finally:
        source_connection.close()
    try:
        return check_database_file(destination)
    except InvalidArchiveError as error:
        raise BackupError(f"database {source}: {error}") from None


def _tar_entry(name: str, size: int, mtime: datetime) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime.timestamp())
    info.mode = 0o600
    return info


def _publish(temporary: Path, directory: Path, created_at: datetime) -> Path:
    """Give `temporary` its archive name in `directory` without ever replacing a file."""
    for attempt in range(1000):
        final = directory / archive_name(created_at, attempt)
        try:
            os.link(temporary, final)
        except FileExistsError:
            continue
        except OSError:
            # No hard links on this file system (vfat, some network mounts): rename instead.
            if final.exists():
                continue
            os.replace(temporary, final)
        return final
    raise BackupError(f"too many archives named after {archive_name(created_at)}")


@dataclass(frozen=True, slots=True)
class BackupResult:
    """An archive just written."""

    path: Path
    manifest: Manifest
    size_bytes: int


def create_backup(
    database: Path,
    backup_dir: Path,
    *,
    config: Path | None = None,
    now: datetime | None = None,
) -> BackupResult:
    """Write an archive of `database` (and the configuration file `config`) into `backup_dir`.

    `now` (default: the current time) names the archive and is its ``created_at``. Raises
    `BackupError` if the database is missing, unreadable, damaged or not a Vigil database, or the
    configuration file cannot be read; nothing is left behind then.
    """
    created_at = (now or utc_now()).astimezone(UTC)
    backup_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=TEMP_PREFIX, suffix=".tmp", dir=backup_dir))
    try:
        database_copy = staging / DATABASE_MEMBER
        revision = copy_database(database, database_copy)
        files = {DATABASE_MEMBER: database_copy}
        if config is not None:
            try:
                shutil.copyfile(config, staging / CONFIG_MEMBER)
            except OSError as error:
                raise BackupError(f"cannot read configuration file {config}: {error}") from None
            files[CONFIG_MEMBER] = staging / CONFIG_MEMBER
        manifest = Manifest(
            vigil_version=__version__,
            created_at=created_at,
            schema_revision=revision,
            database_source=str(database.resolve()),
            config_source=str(config.resolve()) if config is not None else None,
            members={name: digest_file(path) for name, path in files.items()},
        )
        manifest_bytes = manifest.to_json()
        archive = staging / "archive.tar"
        descriptor = os.open(archive, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                info = _tar_entry(MANIFEST_MEMBER, len(manifest_bytes), created_at)
                tar.addfile(info, io.BytesIO(manifest_bytes))
                for name, path in files.items():
                    with path.open("rb") as member:
                        tar.addfile(_tar_entry(name, manifest.members[name].size, created_at),
                                    member)  # fmt: skip
            raw.flush()
            os.fsync(raw.fileno())
        final = _publish(archive, backup_dir, created_at)
        fsync_directory(backup_dir)
        return BackupResult(path=final, manifest=manifest, size_bytes=final.stat().st_size)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# --- a backup directory --------------------------------------------------------------------------


def archive_paths(backup_dir: Path) -> list[Path]:
    """The archives in `backup_dir`, newest first (by the time in their names)."""
    try:
        names = [entry.name for entry in os.scandir(backup_dir) if entry.is_file()]
    except FileNotFoundError:
        return []
    return [backup_dir / name for name in newest_first(names)]


def inspect_archives(backup_dir: Path) -> list[ArchiveInfo]:
    """Every archive in `backup_dir`, newest first, each verified completely."""
    infos = []
    for path in archive_paths(backup_dir):
        parsed = parse_archive_name(path.name)
        assert parsed is not None  # archive_paths returns only our names
        manifest: Manifest | None = None
        problem: str | None = None
        try:
            size = path.stat().st_size
            manifest = verify_archive(path)
        except FileNotFoundError:
            continue  # pruned meanwhile
        except BackupError as error:
            problem = str(error)
        infos.append(ArchiveInfo(path, parsed[0], size, manifest, problem))
    return infos


def prune_archives(backup_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` archives in `backup_dir`; return what was deleted.

    Only files named like our archives are considered; anything else there is left alone.
    """
    names = [path.name for path in archive_paths(backup_dir)]
    deleted = []
    for name in names_to_prune(names, keep):
        try:
            (backup_dir / name).unlink()
        except FileNotFoundError:
            continue
        deleted.append(backup_dir / name)
    return deleted


# --- the scheduler -------------------------------------------------------------------------------


class BackupScheduler:
    """Makes a backup every `interval_hours` while Vigil runs and keeps the newest `keep`.

    The first backup is due `interval_hours` after the newest archive already in `backup_dir`
    (at once if there is none), so restarts never postpone backups. The copy runs in a thread.
    A failed backup is logged and retried after `retry_after_s` (or the interval, if shorter).
    `interval_hours` 0 turns it off: `start()` then does nothing.
    """

    def __init__(
        self,
        database_path: Path,
        backup_dir: Path,
        *,
        interval_hours: float,
        keep: int,
        config_path: Path | None = None,
        clock: Callable[[], datetime] = utc_now,
        retry_after_s: float = 600.0,
    ) -> None:
        if interval_hours < 0:
            raise ValueError(f"interval_hours must not be negative, not {interval_hours}")
        if keep < 1:
            raise ValueError(f"keep must be at least 1, not {keep}")
        self._database_path = database_path
        self._backup_dir = backup_dir
        self._interval = timedelta(hours=interval_hours)
        self._keep = keep
        self._config_path = config_path
        self._clock = clock
        self._retry_after = min(timedelta(seconds=retry_after_s), self._interval)
        self._task: asyncio.Task[None] | None = None
        self._in_flight: asyncio.Task[BackupResult] | None = None

    @classmethod
    def from_config(
        cls, resolved: ResolvedConfig, *, config_path: Path | None = None
    ) -> BackupScheduler:
        """A scheduler for the ``backup`` section of `resolved`; `config_path` is the file
        Vigil was started with (None: the built-in configuration, nothing to back up)."""
        section = resolved.config.backup
        return cls(
            resolved.database_path,
            resolved.backup_dir or resolved.data_dir / "backups",
            interval_hours=section.interval_hours,
            keep=section.keep,
            config_path=config_path,
        )

    @property
    def enabled(self) -> bool:
        return self._interval > timedelta(0)

    def start(self) -> None:
        """Start scheduling on the running loop (idempotent; nothing when turned off)."""
        if not self.enabled:
            logger.info("scheduled backups are off (backup.interval_hours: 0)")
            return
        if self._task is not None and not self._task.done():
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="backup-scheduler")

    async def stop(self) -> None:
        """Stop scheduling (idempotent). A backup being copied is finished, not abandoned."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
            if not task.cancelled() and task.exception() is not None:
                logger.error("backup scheduler failed", exc_info=task.exception())
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is not None:
            await asyncio.wait({in_flight})
            if not in_flight.cancelled() and in_flight.exception() is not None:
                logger.error("backup failed", exc_info=in_flight.exception())

    async def _run(self) -> None:
        newest = await asyncio.to_thread(self._newest_archive_time)
        due = next_backup_due(newest, self._interval, self._clock())
        logger.info(
            "scheduled backups every %s h into %s (keeping %d); next at %s",
            self._interval / timedelta(hours=1), self._backup_dir, self._keep, due.isoformat(),
        )  # fmt: skip
        while True:
            delay = (due - self._clock()).total_seconds()
            if delay > 0:
                await asyncio.sleep(delay)
            loop = asyncio.get_running_loop()
            self._in_flight = loop.create_task(asyncio.to_thread(self._backup_once))
            try:
                # Shielded: stop() cancels the wait, not the copy, then waits for the copy.
                result = await asyncio.shield(self._in_flight)
            except Exception:
                logger.exception("scheduled backup failed; next attempt in %s", self._retry_after)
                due = self._clock() + self._retry_after
            else:
                due = result.manifest.created_at + self._interval
            finally:
                if self._in_flight is not None and self._in_flight.done():
                    self._in_flight = None

    def _newest_archive_time(self) -> datetime | None:
        paths = archive_paths(self._backup_dir)
        parsed = parse_archive_name(paths[0].name) if paths else None
        return parsed[0] if parsed else None

    def _backup_once(self) -> BackupResult:
        config = self._config_path if self._config_path and self._config_path.is_file() else None
        result = create_backup(self._database_path, self._backup_dir, config=config,
                               now=self._clock())  # fmt: skip
        logger.info(
            "backup written: %s (%d bytes, schema %s)",
            result.path, result.size_bytes, result.manifest.schema_revision,
        )  # fmt: skip
        for path in prune_archives(self._backup_dir, self._keep):
            logger.info("backup deleted (keeping the newest %d): %s", self._keep, path.name)
        return result
