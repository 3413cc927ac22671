"""The database file when it may be lost or damaged: check it, and move a corrupt one aside so
that a fresh one can be built (`vigil storage reindex`). Nothing is ever deleted.

Corrupt means: the file does not start with SQLite's header, SQLite cannot read it,
``PRAGMA integrity_check`` reports a problem, or the migrations fail on it (its schema revision
is not one of ours, or migrating raises). Such a file, with
its ``-wal`` and ``-shm``, is renamed to ``<db>.corrupt-<UTC time>`` (``-wal``/``-shm``
appended, as SQLite pairs them, so ``sqlite3 <db>.corrupt-…`` opens it with its log for
whoever wants to salvage it).

Care is needed because SQLite itself changes files: a read-write connection removes a
``-wal`` beside a database that is missing, empty, unreadable or not in WAL mode, and resets
one it cannot make sense of. So a file is checked read-only first (``mode=ro`` changes
nothing), only a sound one is ever opened read-write, and a log SQLite would remove is moved
aside as ``<db>.orphan-<UTC time>-wal`` before that.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

from vigil.store.db import MIGRATIONS_DIR, Database
from vigil.store.recordings import Clock
from vigil.store.timestamps import utc_now

COMPANION_SUFFIXES = ("-wal", "-shm")
INTEGRITY_MESSAGES_SHOWN = 5
SQLITE_MAGIC = b"SQLite format 3\x00"
_HEADER_BYTES = 100
_WAL_MODE = b"\x02\x02"  # header bytes 18-19, the file format versions: 2 is WAL


class DatabaseState(StrEnum):
    """What `open_checked` found, and so what it did."""

    EXISTING = "existing"  # there and sound: used as it is
    CREATED = "created"  # no file: a new, empty one was made
    REPLACED = "replaced"  # corrupt: moved aside, and a new, empty one made


class CorruptDatabaseError(Exception):
    """The database is corrupt and the caller did not allow it to be replaced."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


@dataclass(frozen=True, slots=True)
class CheckedDatabase:
    """An open, migrated database and how it came to be; `moved_to` lists the files set aside
    and `problem` why (a corrupt database, or a log without its database)."""

    db: Database
    state: DatabaseState
    problem: str | None = None
    moved_to: tuple[Path, ...] = ()


def database_problem(path: Path) -> str | None:
    """Why the existing file at `path` is not a usable SQLite database, or None if it passes
    ``PRAGMA integrity_check`` (which reads all of it). Opens it read-only: nothing is changed
    or removed (SQLite may add an empty ``-shm``)."""
    try:
        header = _header(path)
    except OSError as exc:
        return f"cannot be read: {exc}"
    if header and not header.startswith(SQLITE_MAGIC):
        return "not an SQLite database (it does not start with SQLite's header)"
    try:
        connection = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return f"cannot be opened: {exc}"
    try:
        messages = [str(row[0]) for row in connection.execute("PRAGMA integrity_check")]
        if messages == ["ok"]:
            return _revision_problem(connection)
    except sqlite3.Error as exc:
        return f"not a readable SQLite database: {exc}"
    finally:
        connection.close()
    shown = "; ".join(messages[:INTEGRITY_MESSAGES_SHOWN])
    more = len(messages) - INTEGRITY_MESSAGES_SHOWN
    return f"integrity check failed: {shown}" + (f" (and {more} more)" if more > 0 else "")


def _revision_problem(connection: sqlite3.Connection) -> str | None:
    """Why the migrations would fail on this database: its schema revision is not one of ours.
    Asked read-only, before anything opens the file read-write."""
    has_version = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
    ).fetchone()
    if has_version is None:
        return None  # empty, or from before migrations: the migrations build on it
    found = {str(row[0]) for row in connection.execute("SELECT version_num FROM alembic_version")}
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
    unknown = sorted(found - known)
    if unknown:
        return (
            f"migrations failed: schema revision {', '.join(unknown)} is not one this Vigil "
            "knows (a newer Vigil's database?)"
        )
    return None


def database_in_use(path: Path) -> bool:
    """True when another connection (this process or another) has the database at `path` open.

    Vigil keeps its WAL-mode database open while it runs, and an open WAL connection holds a
    shared lock, so an exclusive lock taken without waiting fails exactly then (the technique
    of `vigil backup restore`). Unlike probing the API it does not depend on the listen address
    and cannot go stale after a crash: the kernel drops a dead process's locks.

    It opens the file read-write, so ask only about a database `database_problem` found sound
    (a log left by a crash is then recovered into it, as Vigil's own start would do). A file
    that is not an SQLite database in WAL mode is not one a Vigil uses, and is not opened.
    Other failures raise `sqlite3.Error` or `OSError`.
    """
    header = _header(path) if path.exists() else b""
    if not (header.startswith(SQLITE_MAGIC) and header[18:20] == _WAL_MODE):
        return False
    connection = sqlite3.connect(
        f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=0, isolation_level=None
    )
    try:
        connection.execute("PRAGMA locking_mode=EXCLUSIVE")
        connection.execute("BEGIN EXCLUSIVE")
        connection.execute("ROLLBACK")
    except sqlite3.Error as error:
        if error.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
            return True
        if error.sqlite_errorcode in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
            return False
        raise
    finally:
        connection.close()
    return False


def open_checked(
    path: Path, *, problem: str | None, replace_corrupt: bool = True, clock: Clock = utc_now
) -> CheckedDatabase:
    """Open the database at `path` migrated to the newest schema, making a new one if there is
    none and, if `replace_corrupt`, if it is corrupt (the old one is moved aside, see the module
    docstring). `problem` is what `database_problem(path)` said (None when there is no file):
    the caller checks first, to know whether `database_in_use` may be asked. Raises
    `CorruptDatabaseError` for a corrupt one when not `replace_corrupt`, and whatever
    `Database.migrate` raises if even a new, empty database cannot be migrated."""
    if not path.exists():
        moved = set_aside(path, "orphan", clock(), companions_only=True)
        db = Database(path)
        _migrate_or_close(db)
        problem = "a log was left without its database" if moved else None
        return CheckedDatabase(db, DatabaseState.CREATED, problem=problem, moved_to=moved)
    if problem is None:
        moved = ()
        if _header(path)[18:20] != _WAL_MODE:
            # Empty, or not in WAL mode: SQLite would delete a log beside it.
            moved = set_aside(path, "orphan", clock(), companions_only=True)
        db = Database(path)
        try:
            db.migrate()
        except (SQLAlchemyError, CommandError) as exc:
            db.close()
            problem = f"migrations failed: {exc}"
        else:
            why = "a log was left beside a database not using it" if moved else None
            return CheckedDatabase(db, DatabaseState.EXISTING, problem=why, moved_to=moved)
    if not replace_corrupt:
        raise CorruptDatabaseError(path, problem)
    moved = set_aside(path, "corrupt", clock())
    db = Database(path)
    _migrate_or_close(db)
    return CheckedDatabase(db, DatabaseState.REPLACED, problem=problem, moved_to=moved)


def set_aside(
    path: Path, label: str, now: datetime, *, companions_only: bool = False
) -> tuple[Path, ...]:
    """Rename `path` (unless `companions_only`) and its ``-wal``/``-shm`` (those that exist)
    to ``<path>.<label>-<UTC time>`` plus the same suffix, never over an existing file; return
    the new names. Raises `OSError` if a rename fails."""
    suffixes = COMPANION_SUFFIXES if companions_only else ("", *COMPANION_SUFFIXES)
    sources = [Path(f"{path}{suffix}") for suffix in suffixes]
    if not any(source.exists() for source in sources):
        return ()
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    base = path.with_name(f"{path.name}.{label}-{stamp}")
    counter = 1
    while any(Path(f"{base}{suffix}").exists() for suffix in ("", *COMPANION_SUFFIXES)):
        base = path.with_name(f"{path.name}.{label}-{stamp}.{counter}")
        counter += 1
    moved: list[Path] = []
    # The main file first: should a later rename fail, SQLite no longer pairs what is left
    # with anything.
    for suffix, source in zip(suffixes, sources, strict=True):
        if source.exists():
            target = Path(f"{base}{suffix}")
            os.rename(source, target)
            moved.append(target)
    return tuple(moved)


def _header(path: Path) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(_HEADER_BYTES)


def _migrate_or_close(db: Database) -> None:
    try:
        db.migrate()
    except BaseException:
        db.close()
        raise
