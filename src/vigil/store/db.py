"""The SQLite database file: engine, connection settings, migrations and transactions.

Threads: the service writes from a single thread; readers may run on other threads. WAL
journaling lets them read while the writer writes, and the engine is opened with
``check_same_thread=False`` so pooled connections may be used from whichever thread checks
them out (each connection is used by one thread at a time; the pool guarantees that).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# The newest migration's revision id. Kept by hand, in step with migrations/versions/ (a test
# compares it with Alembic's head): knowing it without Alembic lets a start on a current
# schema skip importing and running Alembic (0.2 s of every start).
HEAD_REVISION = "0004"
DEFAULT_BUSY_TIMEOUT_MS = 5000


class Database:
    """One SQLite database file, opened with WAL and the pragmas Vigil relies on."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._busy_timeout_ms = busy_timeout_ms
        self.engine: Engine = create_engine(
            f"sqlite:///{path}", connect_args={"check_same_thread": False}
        )
        event.listen(self.engine, "connect", self._configure_connection)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def _configure_connection(self, dbapi_connection: sqlite3.Connection, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            # journal_mode is stored in the file; the others are per connection.
            cursor.execute("PRAGMA journal_mode=WAL")
            # NORMAL under WAL never corrupts; a power cut may lose the last commits only.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(self._busy_timeout_ms)}")
        finally:
            cursor.close()

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic ``upgrade head``); idempotent.
        A database already at `HEAD_REVISION` is left as it is without loading Alembic."""
        if self.schema_revisions() == {HEAD_REVISION}:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as connection:
            # env.py runs on this connection, so the pragmas above apply to migrations too.
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def schema_revisions(self) -> set[str]:
        """The revision ids in the database's ``alembic_version`` table; empty when there is
        no such table (a new database) or it cannot be read."""
        try:
            with self.engine.connect() as connection:
                rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
                return {row[0] for row in rows}
        except DBAPIError:
            # No such table, or a file SQLite cannot read: `migrate` leaves it to Alembic,
            # which fails (or not) exactly as it did before this shortcut.
            return set()

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """A session in a transaction: committed when the block ends, rolled back on error."""
        with self._sessions.begin() as session:
            yield session

    def session(self) -> Session:
        """A plain session for reads; the caller closes it (``with db.session() as s:``)."""
        return self._sessions()

    def close(self) -> None:
        """Close every pooled connection; the object must not be used afterwards."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
