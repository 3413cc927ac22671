"""Detections: what each stream's detector saw last, for a live overlay or a quick look."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vigil.api.auth import Viewer
from vigil.api.deps import Services
from vigil.api.errors import ERROR_RESPONSES, ApiError
from vigil.config.streams import STREAM_NAME_PATTERN

router = APIRouter(tags=["detections"], responses=ERROR_RESPONSES)

StreamName = Path(pattern=STREAM_NAME_PATTERN, description="The stream's name.")


class DetectionOut(BaseModel):
    """One object in the last frame the detector looked at."""

    label: str = Field(description="The model's class name, e.g. `person`.")
    score: float = Field(description="Confidence, 0..1.")
    box: tuple[float, float, float, float] = Field(
        description="x1, y1, x2, y2 as fractions (0..1) of the frame's width and height."
    )
    object_id: str | None = Field(
        default=None, description="The tracked object it belongs to; null while not tracked."
    )
    zones: list[str] = Field(default_factory=list, description="Zones its foot point is in.")


class LatestDetections(BaseModel):
    """The detector's last look at a stream, and how detection is doing there."""

    # The detector may report more than is documented here; it is passed on, not dropped.
    model_config = ConfigDict(extra="allow")

    stream: str
    at: datetime | None = Field(
        description="When the frame was taken (UTC); null before the first frame."
    )
    mode: Literal["keyframes", "all"] | None = Field(
        default=None,
        description="`keyframes`: only keyframes are decoded (the rate allows it); `all`: every "
        "frame is decoded and sampled; null while the stream's detection branch is not built.",
    )
    fps: float = Field(description="Frames per second the detector is asked to look at.")
    motion: dict[str, Any] | bool | None = Field(
        default=None,
        description="What the motion gate saw last (`moving`, `changed`: the share of the "
        "picture that changed, `moving_frames`, `still_frames`); null before it saw a frame "
        "or without a gate.",
    )
    detections: list[DetectionOut]
    skipped_fps: float = Field(
        description="Frames per second not looked at (no motion, or the detector was busy)."
    )
    processed_fps: float = Field(description="Frames per second the model actually ran on.")
    provider: str | None = Field(
        default=None, description="ONNX Runtime's execution provider (`CPUExecutionProvider`…)."
    )
    in_view: dict[str, int] = Field(
        default_factory=dict, description="Tracked objects in view now, by label."
    )
    in_zones: dict[str, dict[str, int]] = Field(
        default_factory=dict,
        description="Tracked objects in view now by zone (where their box's foot stands), then "
        "by label.",
    )
    state: str = Field(description="`starting`, `running` or `failed`.")
    reason: str = Field(description="Why it is in that state, in words.")


@router.get(
    "/streams/{name}/detections/latest",
    response_model=LatestDetections,
    summary="What the detector saw last in a stream",
)
async def latest_detections(
    services: Services, _caller: Viewer, name: str = StreamName
) -> LatestDetections:
    """The objects in the last frame the detector looked at, with the detect rate, the motion
    gate, and how many frames per second were looked at or skipped. 404 for an unknown stream;
    409 (`detection_off`) when detection does not run for it."""
    if services.streams.status(name) is None:
        raise ApiError(404, f"no stream named '{name}' is running")
    detection = services.detection
    if detection is None:
        raise ApiError(409, "detection is not enabled in this Vigil (no `detection` section in "
                            "the configuration)", code="detection_off")  # fmt: skip
    latest = detection.latest(name)
    if latest is None:
        raise ApiError(409, f"detection is not enabled for stream '{name}'",
                       code="detection_off")  # fmt: skip
    try:
        return LatestDetections.model_validate(latest)
    except ValidationError as error:
        # The detector broke its contract: say so plainly rather than half an answer.
        raise ApiError(500, f"stream '{name}': the detector's report is malformed "
                            f"({error.error_count()} problems)") from None  # fmt: skip
