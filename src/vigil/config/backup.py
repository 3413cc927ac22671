"""The ``backup`` section: scheduled backups of the database and the configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from vigil.config.base import BaseConfig


class BackupConfig(BaseConfig):
    """Where backups go, how often they are made and how many are kept."""

    dir: Path | None = Field(
        default=None,
        description=(
            "Directory backup archives are written to. Unset: <data_dir>/backups. Relative "
            "paths are relative to the config file."
        ),
    )
    interval_hours: float = Field(
        default=0,
        ge=0,
        le=24 * 365,
        description="Make a backup this often while Vigil runs; 0 turns scheduled backups off.",
    )
    keep: int = Field(
        default=7, ge=1, le=10_000, description="Keep this many backups; older ones are deleted."
    )
