"""The ``recording`` section: where segments go and how they are cut."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from vigil.config.base import BaseConfig, located_error

MIN_SEGMENT_SECONDS, MAX_SEGMENT_SECONDS = 2, 3600
DEFAULT_SEGMENT_SECONDS = 60

SEGMENT_SECONDS_DESCRIPTION = (
    "Length of each recorded file in seconds; files are cut on the first keyframe after this."
)
RETAIN_DAYS_DESCRIPTION = (
    "Recordings older than this many days are deleted (unless held); space retention may "
    "delete sooner when every volume is full."
)


class RecordingConfig(BaseConfig):
    """Recording defaults for every stream (a stream may override ``segment_seconds``)."""

    root: Path | None = Field(
        default=None,
        description=(
            "Directory segments are written under (as <root>/<stream>/<date>/...). "
            "Unset: <data_dir>/recordings. Relative paths are relative to the config file."
        ),
    )
    segment_seconds: int = Field(
        default=DEFAULT_SEGMENT_SECONDS,
        ge=MIN_SEGMENT_SECONDS,
        le=MAX_SEGMENT_SECONDS,
        description=SEGMENT_SECONDS_DESCRIPTION,
    )
    fragment_seconds: float = Field(
        default=1.0,
        ge=0.2,
        le=10.0,
        description=(
            "Length of each fragment of the fragmented MP4: what a power cut or crash can lose "
            "at the end of the segment being written."
        ),
    )

    retain_days: float | None = Field(
        default=None,
        gt=0,
        le=36500,
        description=RETAIN_DAYS_DESCRIPTION + " Unset: kept until the space is needed.",
    )

    @model_validator(mode="after")
    def _fragment_fits_in_segment(self) -> Self:
        if self.fragment_seconds > self.segment_seconds:
            raise located_error(
                ("fragment_seconds",),
                "fragment_longer_than_segment",
                "fragment_seconds ({fragment}) must not exceed segment_seconds ({segment})",
                fragment=self.fragment_seconds,
                segment=self.segment_seconds,
            )
        return self
