"""Fixtures every test package may use: a migrated database in a temporary directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.store.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "state" / "vigil.db")
    database.migrate()
    with database:
        yield database
