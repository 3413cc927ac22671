"""The ``database`` section: where Vigil keeps its SQLite database."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from vigil.config.base import BaseConfig


class DatabaseConfig(BaseConfig):
    """Location of the SQLite database (recordings index, runtime streams, events, audit)."""

    path: Path | None = Field(
        default=None,
        description=(
            "SQLite database file. Unset: <data_dir>/vigil.db. "
            "Relative paths are relative to the config file."
        ),
    )
