"""Restoring a backup archive: verify all of it first, then swap the database (and, if asked, the
configuration file) in with ``os.replace``, keeping what was there beside it.

Nothing is changed unless the whole archive verifies (``vigil.ops.archive.verify_archive``). The
members are extracted into a hidden directory beside their target (same file system, so the final
rename is atomic). The previous database stays reachable under its own name until the new one
replaces it (a hard link makes ``<db>.before-restore-<UTC time>``), and its ``-wal``/``-shm``
files move to that name plus the same suffix, so SQLite still opens the old copy with its
journal. A failure half-way puts everything back.

Whether Vigil is running on the database is asked of SQLite itself (`database_in_use`).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import stat
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vigil.config import ConfigError, load_config_text
from vigil.ops.archive import (
    CONFIG_MEMBER,
    DATABASE_MEMBER,
    BackupError,
    Manifest,
    fsync_directory,
    verify_archive,
)
from vigil.ops.backup import NAME_TIME_FORMAT
from vigil.store.recovery import database_in_use as _in_use
from vigil.store.timestamps import utc_now

logger = logging.getLogger(__name__)

ASIDE_INFIX = ".before-restore-"
# SQLite's files beside a database: they belong to it and must never meet another database.
DATABASE_SIDECARS = ("-wal", "-shm", "-journal")


class DatabaseInUseError(BackupError):
    """Another connection has the database open: Vigil (or a tool) is running on it."""


@dataclass(frozen=True, slots=True)
class RestoreResult:
    """What a restore did. The `*_aside` paths hold what was replaced (None: nothing was)."""

    manifest: Manifest
    database: Path
    database_aside: Path | None
    config: Path | None = None
    config_aside: Path | None = None


def database_in_use(path: Path) -> bool:
    """True when another connection, in this process or any other, has the database open
    (SQLite's own lock: see `vigil.store.recovery.database_in_use`, which also never opens a
    file that is not a WAL database, so a damaged file's log is left as it is)."""
    try:
        return _in_use(path)
    except (sqlite3.Error, OSError) as error:
        raise BackupError(f"cannot check whether database {path} is in use: {error}") from None


def _with_suffix(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def aside_path(target: Path, stamp: str, sidecars: tuple[str, ...] = ()) -> Path:
    """A free ``<target>.before-restore-<stamp>[-N]`` (with its sidecar names free too)."""
    for attempt in range(1000):
        candidate = _with_suffix(target, f"{ASIDE_INFIX}{stamp}{f'-{attempt}' if attempt else ''}")
        names = [candidate, *(_with_suffix(candidate, suffix) for suffix in sidecars)]
        if not any(os.path.lexists(name) for name in names):
            return candidate
    raise BackupError(f"too many earlier restores of {target} named after {stamp}")


class _Swap:
    """Puts a new file at `target`, keeping the old one (and its sidecar files) at `aside`.

    `apply` either completes or undoes itself; `undo` reverses a completed swap.
    """

    def __init__(self, target: Path, aside: Path, sidecars: tuple[str, ...] = ()) -> None:
        self.target = target
        self.aside = aside
        self._sidecars = sidecars
        self._kept = False  # the old file is at `aside`
        self._linked = False  # ...and, being a hard link, still at `target` too
        self._moved: list[tuple[Path, Path]] = []
        self._replaced = False

    @property
    def kept_aside(self) -> Path | None:
        return self.aside if self._kept else None

    def apply(self, new: Path) -> None:
        try:
            if self.target.exists():
                try:
                    os.link(self.target, self.aside)
                    self._linked = True
                except OSError:
                    # No hard links here (vfat, some network mounts): the target is briefly absent.
                    os.replace(self.target, self.aside)
                self._kept = True
            for suffix in self._sidecars:
                source = _with_suffix(self.target, suffix)
                if source.exists():
                    destination = _with_suffix(self.aside, suffix)
                    os.replace(source, destination)
                    self._moved.append((source, destination))
            os.replace(new, self.target)
            self._replaced = True
        except BaseException:
            self.undo()
            raise

    def undo(self) -> None:
        if self._kept and self._linked and not self._replaced:
            self.aside.unlink()
        elif self._kept:
            os.replace(self.aside, self.target)
        elif self._replaced:
            self.target.unlink()
        for source, destination in reversed(self._moved):
            os.replace(destination, source)
        self._kept = self._linked = self._replaced = False
        self._moved.clear()


def _take_ownership_of(previous: Path, new: Path) -> None:
    """Give `new` the owner and mode of `previous` (a root-run restore must leave a database the
    service user can write), or owner-only access when there is no previous file."""
    try:
        previous_stat = previous.stat()
    except FileNotFoundError:
        os.chmod(new, 0o600)
        return
    os.chmod(new, stat.S_IMODE(previous_stat.st_mode))
    if (previous_stat.st_uid, previous_stat.st_gid) != (os.getuid(), os.getgid()):
        try:
            os.chown(new, previous_stat.st_uid, previous_stat.st_gid)
        except PermissionError:
            logger.warning("cannot give %s the owner of %s", new, previous)


def _check_config(path: Path) -> None:
    try:
        load_config_text(path.read_text(encoding="utf-8"), source_name=CONFIG_MEMBER, env={})
    except (ConfigError, UnicodeDecodeError) as error:
        first = error.issues[0] if isinstance(error, ConfigError) else error
        raise BackupError(
            f"the archive's configuration is not valid for this Vigil: {first}"
        ) from None


def _stage_beside(source: Path, target: Path) -> Path:
    """Copy `source` to a hidden temporary file in `target`'s directory."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, name = tempfile.mkstemp(prefix=f".{target.name}.restore-", dir=target.parent)
    with os.fdopen(descriptor, "wb") as staged, source.open("rb") as original:
        shutil.copyfileobj(original, staged)
        staged.flush()
        os.fsync(staged.fileno())
    return Path(name)


def restore_backup(
    archive: Path,
    database_path: Path,
    *,
    config_path: Path | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> RestoreResult:
    """Replace the database at `database_path` (and, with `config_path`, that configuration
    file) by the archive's copies.

    Refuses, raising `BackupError` and changing nothing, when the archive does not verify, when
    `config_path` is given but the archive holds no valid configuration, or (unless `force`)
    when the database is in use (`DatabaseInUseError`). The replaced files are kept as
    ``<name>.before-restore-<now>``. The restored database is at a schema revision this Vigil
    knows; Vigil migrates it to the newest when it starts.
    """
    stamp = (now or utc_now()).astimezone(UTC).strftime(NAME_TIME_FORMAT)
    database_path = Path(os.path.abspath(database_path))
    database_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(
        tempfile.mkdtemp(prefix=f".{database_path.name}.restore-", dir=database_path.parent)
    )
    staged_config: Path | None = None
    try:
        manifest = verify_archive(archive, extract_to=staging)
        if config_path is not None:
            if not manifest.has_config:
                raise BackupError(f"{archive.name} holds no configuration file to restore")
            _check_config(staging / CONFIG_MEMBER)
            staged_config = _stage_beside(staging / CONFIG_MEMBER, config_path)
            _take_ownership_of(config_path, staged_config)
        if not force and database_in_use(database_path):
            raise DatabaseInUseError(
                f"database {database_path} is in use (is Vigil running?); stop Vigil first, "
                "or use --force if you are sure the holder is not Vigil"
            )
        new_database = staging / DATABASE_MEMBER
        _take_ownership_of(database_path, new_database)
        database_swap = _Swap(
            database_path,
            aside_path(database_path, stamp, DATABASE_SIDECARS),
            DATABASE_SIDECARS,
        )
        try:
            database_swap.apply(new_database)
        except OSError as error:
            raise BackupError(
                f"cannot replace {database_path}: {error}; nothing was changed"
            ) from None
        config_swap: _Swap | None = None
        if config_path is not None and staged_config is not None:
            config_swap = _Swap(config_path, aside_path(config_path, stamp))
            try:
                config_swap.apply(staged_config)
            except BaseException as error:
                database_swap.undo()
                if isinstance(error, OSError):
                    raise BackupError(
                        f"cannot replace {config_path}: {error}; nothing was changed"
                    ) from None
                raise
            fsync_directory(config_path.parent)
        fsync_directory(database_path.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if staged_config is not None:
            staged_config.unlink(missing_ok=True)
    logger.info(
        "restored %s (made %s, schema %s) into %s; the previous database is kept as %s",
        archive, manifest.created_at.isoformat(), manifest.schema_revision, database_path,
        database_swap.kept_aside,
    )  # fmt: skip
    return RestoreResult(
        manifest=manifest,
        database=database_path,
        database_aside=database_swap.kept_aside,
        config=config_path if config_swap is not None else None,
        config_aside=config_swap.kept_aside if config_swap is not None else None,
    )
