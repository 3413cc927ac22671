"""The hand-written migrations and the ORM models describe the same schema."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect

from vigil.store.db import HEAD_REVISION, MIGRATIONS_DIR, Database
from vigil.store.models import Base


def _schema(engine: Engine) -> dict[str, Any]:
    inspector = inspect(engine)
    schema: dict[str, Any] = {}
    for table in sorted(inspector.get_table_names()):
        if table == "alembic_version":
            continue
        schema[table] = {
            "columns": [
                (column["name"], str(column["type"]), column["nullable"])
                for column in inspector.get_columns(table)
            ],
            "primary_key": inspector.get_pk_constraint(table)["constrained_columns"],
            "indexes": sorted(
                (index["name"], tuple(index["column_names"]), bool(index["unique"]))
                for index in inspector.get_indexes(table)
            ),
            "unique": sorted(
                tuple(constraint["column_names"])
                for constraint in inspector.get_unique_constraints(table)
            ),
            "checks": sorted(
                (constraint["name"], constraint["sqltext"])
                for constraint in inspector.get_check_constraints(table)
            ),
        }
    return schema


def test_upgrade_head_matches_models(tmp_path: Path) -> None:
    with Database(tmp_path / "migrated.db") as migrated:
        migrated.migrate()
        from_migrations = _schema(migrated.engine)
        with migrated.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)

    reference = create_engine(f"sqlite:///{tmp_path / 'from_models.db'}")
    try:
        Base.metadata.create_all(reference)
        from_models = _schema(reference)
    finally:
        reference.dispose()

    assert differences == []
    assert from_migrations == from_models
    assert set(from_migrations) == {
        "segments",
        "gaps",
        "api_tokens",
        "events",
        "stream_overlay",
        "volumes",
        "holds",
    }


def test_downgrade_to_base_and_back(tmp_path: Path) -> None:
    with Database(tmp_path / "vigil.db") as db:
        db.migrate()
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert set(inspect(db.engine).get_table_names()) == {"alembic_version"}
        db.migrate()
        assert {"segments", "gaps"} <= set(inspect(db.engine).get_table_names())


def test_a_database_of_the_previous_version_is_upgraded_keeping_its_rows(tmp_path: Path) -> None:
    """A Vigil that ran schema 0001 (issue 2/3 releases) is upgraded in place on start."""
    with Database(tmp_path / "vigil.db") as db:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
        with db.engine.begin() as connection:
            connection.exec_driver_sql(
                "INSERT INTO segments (stream, path, start_us, status, created_at_us) "
                "VALUES ('gate', '/r/gate/a.mp4', 1, 'complete', 2)"
            )
            connection.exec_driver_sql(
                "INSERT INTO gaps (stream, start_us, end_us, reason) VALUES ('gate', 5, 9, 'x')"
            )
        db.migrate()
        with db.engine.connect() as connection:
            version = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
            segments = connection.exec_driver_sql("SELECT stream, path FROM segments").all()
            gaps = connection.exec_driver_sql("SELECT reason FROM gaps").all()
    assert version == "0004"
    assert [tuple(r) for r in segments] == [("gate", "/r/gate/a.mp4")]
    assert [tuple(r) for r in gaps] == [("x",)]
    assert {"api_tokens", "events", "stream_overlay"} <= set(_tables(tmp_path / "vigil.db"))


def _tables(path: Path) -> list[str]:
    engine = create_engine(f"sqlite:///{path}")
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_head_revision_is_alembics_head() -> None:
    """`HEAD_REVISION` lets a start skip Alembic: a new migration must update it."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


def test_a_current_schema_is_used_without_loading_alembic(tmp_path: Path) -> None:
    """A start on a database already at head (every restart) neither imports nor runs Alembic:
    a new process, as `vigil run` is, opens and "migrates" it."""
    path = tmp_path / "vigil.db"
    with Database(path) as db:
        db.migrate()
    script = (
        "import sys; from pathlib import Path; from vigil.store.db import Database\n"
        f"with Database(Path({str(path)!r})) as db: db.migrate()\n"
        "print(sorted(m for m in sys.modules if m == 'alembic' or m.startswith('alembic.')))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert ran.stdout.strip() == "[]"
    assert _versions(path) == [HEAD_REVISION]


def test_an_older_schema_is_still_migrated(tmp_path: Path) -> None:
    """The shortcut is for the head only: a database at an older revision goes through Alembic
    (`upgrade head`) and ends at the head, with its tables."""
    path = tmp_path / "vigil.db"
    with Database(path) as db:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "0003")
        assert db.schema_revisions() == {"0003"}
        db.migrate()
        assert db.schema_revisions() == {HEAD_REVISION}
    assert _versions(path) == [HEAD_REVISION]
    with closing(sqlite3.connect(path)) as connection:  # 0004's column: the upgrade ran
        columns = [row[1] for row in connection.execute("PRAGMA table_info(events)")]
    assert "label" in columns


def _versions(path: Path) -> list[str]:
    with closing(sqlite3.connect(path)) as connection:
        return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]
