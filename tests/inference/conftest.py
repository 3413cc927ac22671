"""What the detection tests share: a migrated SQLite database of their own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from vigil.store.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(tmp_path / "vigil.db")
    database.migrate()
    with database:
        yield database
