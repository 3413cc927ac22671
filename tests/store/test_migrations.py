"""The hand-written migrations and the ORM models describe the same schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, inspect

from vigil.store.db import MIGRATIONS_DIR, Database
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
