"""Database: file creation, pragmas, idempotent migration, use from several threads."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from vigil.store.db import Database


def _pragma(db: Database, name: str) -> object:
    with db.engine.connect() as connection:
        return connection.execute(text(f"PRAGMA {name}")).scalar()


def test_creates_parent_directory_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "vigil.db"
    with Database(path, busy_timeout_ms=1234) as db:
        db.migrate()
        assert path.is_file()
        assert _pragma(db, "journal_mode") == "wal"
        assert _pragma(db, "synchronous") == 1  # NORMAL
        assert _pragma(db, "foreign_keys") == 1
        assert _pragma(db, "busy_timeout") == 1234


def test_migrate_twice_is_harmless(tmp_path: Path) -> None:
    with Database(tmp_path / "vigil.db") as db:
        db.migrate()
        db.migrate()
        with db.engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == "0004"


def test_begin_commits_and_rolls_back(db: Database) -> None:
    with db.begin() as session:
        session.execute(
            text("INSERT INTO gaps (stream, start_us, reason) VALUES ('cam', 1, 'kept')")
        )
    try:
        with db.begin() as session:
            session.execute(
                text("INSERT INTO gaps (stream, start_us, reason) VALUES ('cam', 2, 'lost')")
            )
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    with db.session() as session:
        reasons = session.execute(text("SELECT reason FROM gaps")).scalars().all()
    assert reasons == ["kept"]


def test_readers_on_other_threads_see_committed_rows(db: Database) -> None:
    with db.begin() as session:
        session.execute(text("INSERT INTO gaps (stream, start_us, reason) VALUES ('cam', 1, 'x')"))
    counts: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            with db.session() as session:
                counts.append(session.execute(text("SELECT count(*) FROM gaps")).scalar_one())
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert counts == [1, 1, 1, 1]
