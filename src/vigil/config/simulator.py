"""The ``simulator`` section: the built-in camera simulator ``vigil run`` can start beside it."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from vigil.config.base import BaseConfig
from vigil.config.video import (
    DEFAULT_BITRATE_KBIT,
    DEFAULT_FPS,
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    MAX_BITRATE_KBIT,
    MAX_FPS,
    MAX_GOP_FRAMES,
    MAX_HEIGHT,
    MAX_WIDTH,
    MIN_BITRATE_KBIT,
    MIN_FPS,
    MIN_GOP_FRAMES,
    MIN_HEIGHT,
    MIN_WIDTH,
    Codec,
    check_even,
)


class SimulatorConfig(BaseConfig):
    """Synthetic RTSP cameras ``cam1``..``camN``, encoded once and served to every client."""

    enabled: bool = Field(
        default=True, description="Start the simulator with `vigil run`; false keeps it off."
    )
    cameras: int = Field(default=4, ge=1, le=1000, description="Number of simulated cameras.")
    port: int = Field(
        default=8654, ge=1, le=65535, description="RTSP port the simulator serves on."
    )
    codec: Codec = Field(default=Codec.H264, description="Video codec of the simulated cameras.")
    width: int = Field(
        default=DEFAULT_WIDTH, ge=MIN_WIDTH, le=MAX_WIDTH, description="Picture width; even."
    )
    height: int = Field(
        default=DEFAULT_HEIGHT, ge=MIN_HEIGHT, le=MAX_HEIGHT, description="Picture height; even."
    )
    fps: int = Field(default=DEFAULT_FPS, ge=MIN_FPS, le=MAX_FPS, description="Frames per second.")
    bitrate_kbit: int = Field(
        default=DEFAULT_BITRATE_KBIT,
        ge=MIN_BITRATE_KBIT,
        le=MAX_BITRATE_KBIT,
        description="Encoder bitrate in kbit/s.",
    )
    gop_frames: int | None = Field(
        default=None,
        ge=MIN_GOP_FRAMES,
        le=MAX_GOP_FRAMES,
        description="Frames between keyframes. Unset: one keyframe per second (= fps).",
    )
    file: Path | None = Field(
        default=None,
        description=(
            "A video file looped instead of the test pattern. "
            "Relative paths are relative to the config file."
        ),
    )

    @field_validator("width", "height")
    @classmethod
    def _even(cls, value: int, info: ValidationInfo) -> int:
        return check_even(value, info.field_name or "size")

    @property
    def keyframe_interval_frames(self) -> int:
        """Frames between keyframes: `gop_frames`, or one keyframe per second when unset."""
        return self.gop_frames if self.gop_frames is not None else self.fps
