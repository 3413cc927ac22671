"""The ``backup`` section: scheduled backups of the database and the configuration."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from vigil.config.base import BaseConfig


class BackupConfig(BaseConfig):
    """Where backups go, how often they are made and how many are kept.

    `vigil backup create` makes one on demand, into the same directory, with the same retention.
    """

    dir: Path | None = Field(
        default=None,
        description=(
            "Directory backup archives (vigil-backup-<UTC time>.tar: the database, the "
            "configuration file and a manifest with checksums) are written to. Unset: "
            "<data_dir>/backups. Relative paths are relative to the config file. Archives hold "
            "camera passwords: they are created readable by Vigil's user only."
        ),
    )
    interval_hours: float = Field(
        default=0,
        ge=0,
        le=24 * 365,
        description=(
            "Make a backup this often while Vigil runs (e.g. 24 for daily), counted from the "
            "newest archive in the directory, so restarts never postpone one; 0 turns "
            "scheduled backups off."
        ),
    )
    keep: int = Field(
        default=7,
        ge=1,
        le=10_000,
        description=(
            "Keep this many archives (the newest); older vigil-backup-*.tar files in the "
            "directory are deleted after each backup. Other files there are never touched."
        ),
    )
