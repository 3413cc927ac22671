"""The ``storage`` section: the disks recordings go to, how segments are spread over them, and
how much space each keeps free."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Self

from pydantic import ByteSize, Field, field_validator, model_validator

from vigil.config.base import BaseConfig, located_error

DEFAULT_MIN_FREE = ByteSize(256 * 1024 * 1024)


class PlacementPolicy(StrEnum):
    """Where a new segment goes when several volumes have room."""

    FILL = "fill"  # the first by priority until it is full, then the next
    SPREAD = "spread"  # the least used (by percent) first


class VolumeConfig(BaseConfig):
    """One recording volume: a mount point (or a directory on one)."""

    path: Path = Field(
        description=(
            "Directory recordings are written under. It is never created: a disk that is not "
            "mounted leaves the volume offline instead of filling the root file system. "
            "Relative paths are relative to the config file."
        )
    )
    priority: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Lower first: with policy fill, volumes are filled in this order.",
    )
    max_usage_percent: float = Field(
        default=95.0,
        gt=0,
        le=100,
        description="The volume counts as full above this share of its capacity in use.",
    )
    require_mount: bool = Field(
        default=True,
        description=(
            "Only make a new volume here if the path is on a mounted file system other than "
            "the root one: an empty mount point whose disk is missing stays offline instead of "
            "filling the system disk. Set false for a volume on the root file system."
        ),
    )
    min_free_bytes: ByteSize = Field(
        default=DEFAULT_MIN_FREE,
        description=(
            "The volume counts as full with less than this free (e.g. 2GiB, 500MB). Keep it "
            "above what all streams write in one segment: segments open when a volume fills "
            "are finished on it."
        ),
    )


class StorageConfig(BaseConfig):
    """Recording volumes, segment placement and space retention."""

    policy: PlacementPolicy = Field(
        default=PlacementPolicy.FILL,
        description=(
            "fill: new segments go to the first volume by priority that has room; spread: to "
            "the least used volume."
        ),
    )
    volumes: list[VolumeConfig] = Field(
        default_factory=list,
        description=(
            "Recording volumes. Empty: one volume at recording.root (or <data_dir>/recordings)."
        ),
    )
    check_interval_s: float = Field(
        default=2.0,
        ge=0.5,
        le=10,
        description=(
            "How often volumes are checked (mounted, identity, free space) and retention runs; "
            "a write failing for lack of space runs it at once."
        ),
    )

    @field_validator("volumes")
    @classmethod
    def _distinct_paths(cls, volumes: list[VolumeConfig]) -> list[VolumeConfig]:
        seen: dict[Path, int] = {}
        for index, volume in enumerate(volumes):
            if volume.path in seen:
                raise located_error(
                    (index, "path"),
                    "duplicate_volume_path",
                    "volume path {path} is already storage.volumes[{first}]",
                    path=str(volume.path),
                    first=seen[volume.path],
                )
            seen[volume.path] = index
        return volumes

    @model_validator(mode="after")
    def _not_nested(self) -> Self:
        paths = [v.path for v in self.volumes]
        for index, path in enumerate(paths):
            for other in paths:
                if other != path and path.is_relative_to(other):
                    raise located_error(
                        ("volumes", index, "path"),
                        "nested_volume_path",
                        "volume path {path} lies inside volume {other}",
                        path=str(path),
                        other=str(other),
                    )
        return self
