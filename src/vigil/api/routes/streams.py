"""Streams: what each is told to do (its configuration, and where that comes from) and what it
is doing; creating, changing, deleting, starting and stopping them.

Changes are validated first (nothing is stored when invalid), stored in the database (they
survive restarts; see docs/API.md for how they layer over the file) and applied at once to the
stream concerned only.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from vigil.api.auth import Admin, Operator, Viewer
from vigil.api.deps import Services
from vigil.api.errors import ERROR_RESPONSES, ApiError
from vigil.api.services import ApiServices
from vigil.config.errors import ConfigError
from vigil.config.recording import MAX_SEGMENT_SECONDS, MIN_SEGMENT_SECONDS
from vigil.config.sources import Transport
from vigil.config.streams import SOURCE_PATTERN, STREAM_NAME_PATTERN, StreamConfig
from vigil.streams.desired import (
    ConfiguredStream,
    DesiredState,
    StreamExistsError,
    StreamNotFoundError,
)
from vigil.streams.status import StreamStatus

router = APIRouter(prefix="/streams", tags=["streams"], responses=ERROR_RESPONSES)

StreamName = Path(pattern=STREAM_NAME_PATTERN, description="The stream's name.")


class StreamState(BaseModel):
    """A stream's live state."""

    name: str
    state: str
    reason: str
    since: datetime | None
    source: str
    reconnects: int
    transitions: int
    fps: float = Field(default=0.0, description="Video frames per second over the last 5 s.")
    bitrate_bps: float = Field(
        default=0.0, description="Video bits per second over the last 5 s (no RTP overhead)."
    )
    last_frame_age_s: float | None = Field(
        default=None,
        description="Seconds since the last video frame (to within 1 s); null before the first.",
    )
    recording_blocked: str | None = Field(
        default=None,
        description="While no segment can be written: 'recording blocked: no space ...' with "
        "why; null when recording normally (or not recording).",
    )


class StreamSettings(BaseModel):
    """A stream's configuration as it applies now (the password of the source is masked)."""

    source: str
    transport: str
    record: bool
    enabled: bool
    segment_seconds: int | None
    detect: dict[str, Any] = Field(
        default_factory=dict, description="Object detection settings (`detect` in the config)."
    )


class DetectionSummary(BaseModel):
    """A detected stream's detection at a glance (the details: `…/detections/latest`)."""

    state: str = Field(description="starting, running or failed.")
    reason: str
    mode: str | None = Field(default=None, description="What is decoded: keyframes or all.")
    processed_fps: float = Field(default=0.0, description="Frames looked at per second.")
    skipped_fps: float = Field(default=0.0, description="Frames due but skipped (busy) per s.")
    in_view: dict[str, int] = Field(
        default_factory=dict, description="Tracked objects in view now, by label."
    )


class StreamView(StreamState):
    """A stream: configuration, where it comes from, and live state."""

    origin: str = Field(description="file, api (added through the API) or file+api (changed).")
    config: StreamSettings
    detection: DetectionSummary | None = Field(
        default=None, description="Object detection's state; null when it is off."
    )


class StreamChanges(BaseModel):
    """Keys of a stream to change; the others keep their value. Renaming is not possible."""

    model_config = ConfigDict(extra="forbid", strict=True)

    source: str | None = Field(default=None, min_length=1, pattern=SOURCE_PATTERN)
    transport: Transport | None = None
    record: bool | None = None
    enabled: bool | None = None
    segment_seconds: int | None = Field(
        default=None, ge=MIN_SEGMENT_SECONDS, le=MAX_SEGMENT_SECONDS
    )
    retain_days: float | None = Field(default=None, gt=0, le=36500)
    detect: dict[str, Any] | None = Field(
        default=None,
        description="The whole `detect` section (object detection), replacing the current one; "
        "applied without restarting the stream.",
    )


class RecordingSwitch(BaseModel):
    """Recording on or off."""

    model_config = ConfigDict(extra="forbid", strict=True)

    enabled: bool


def _view(status: StreamStatus) -> StreamState:
    return StreamState(
        name=status.name, state=status.state.value, reason=status.reason, since=status.since,
        source=status.source, reconnects=status.restarts, transitions=status.transitions,
        fps=round(status.fps, 2), bitrate_bps=round(status.bitrate_bps),
        last_frame_age_s=_rounded(status.last_frame_age_s),
        recording_blocked=(
            None if status.recording_blocked is None
            else f"recording blocked: {status.recording_blocked}"
        ),
    )  # fmt: skip


def _rounded(seconds: float | None) -> float | None:
    return round(seconds, 3) if seconds is not None else None


def _stream_view(services: ApiServices, configured: ConfiguredStream) -> StreamView:
    config = configured.config
    status = services.streams.status(config.name)
    if status is not None:
        live = _view(status).model_dump()
    else:
        reason = "disabled" if not config.enabled else "not running"
        live = StreamState(
            name=config.name, state="stopped", reason=reason, since=None, source="",
            reconnects=0, transitions=0,
        ).model_dump()  # fmt: skip
    settings = StreamSettings(
        source=config.redacted_source(), transport=config.transport.value, record=config.record,
        enabled=config.enabled, segment_seconds=config.segment_seconds,
        retain_days=config.retain_days, detect=config.detect.model_dump(mode="json"),
    )  # fmt: skip
    latest = services.detection.latest(config.name) if services.detection is not None else None
    detection = None
    if latest is not None:
        detection = DetectionSummary(
            state=str(latest.get("state", "")), reason=str(latest.get("reason", "")),
            mode=latest.get("mode"), processed_fps=float(latest.get("processed_fps") or 0),
            skipped_fps=float(latest.get("skipped_fps") or 0),
            in_view=dict(latest.get("in_view") or {}),
        )  # fmt: skip
    return StreamView(**live, origin=configured.origin.value, config=settings,
                      detection=detection)  # fmt: skip


def _desired(services: ApiServices) -> DesiredState:
    if services.desired is None:
        raise ApiError(503, "stream configuration is not available yet")
    return services.desired


async def _change(
    services: ApiServices, action: Callable[[DesiredState], Coroutine[Any, Any, Any]]
) -> Any:
    """Run a change, translating its failures into API errors."""
    try:
        return await action(_desired(services))
    except ConfigError as error:
        details = [{"location": i.location, "message": i.message} for i in error.issues]
        message = "; ".join(f"{i.location or 'stream'}: {i.message}" for i in error.issues)
        raise ApiError(422, message, details=details) from None
    except StreamExistsError as error:
        raise ApiError(409, str(error)) from None
    except StreamNotFoundError as error:
        raise ApiError(404, str(error)) from None


@router.get("", response_model=list[StreamView], summary="Every stream: configuration and state")
async def list_streams(services: Services, _caller: Viewer) -> list[StreamView]:
    return [_stream_view(services, s) for s in _desired(services).streams()]


@router.get("/{name}", response_model=StreamView, summary="One stream")
async def get_stream(services: Services, _caller: Viewer, name: str = StreamName) -> StreamView:
    configured = _desired(services).stream(name)
    if configured is None:
        raise ApiError(404, f"no stream named '{name}'")
    return _stream_view(services, configured)


@router.post(
    "", response_model=StreamView, status_code=201, summary="Add a stream (admin)",
    responses={201: {"headers": {"Location": {"description": "The new stream's URL."}}}},
)  # fmt: skip
async def create_stream(
    body: StreamConfig, services: Services, response: Response, _caller: Admin
) -> StreamView:
    entry = body.model_dump(mode="json", exclude_unset=True)
    entry["source"] = body.source
    created: ConfiguredStream = await _change(services, lambda d: d.create(entry))
    response.headers["Location"] = f"/api/v1/streams/{created.config.name}"
    return _stream_view(services, created)


@router.patch("/{name}", response_model=StreamView, summary="Change a stream (admin)")
async def update_stream(
    body: StreamChanges, services: Services, _caller: Admin, name: str = StreamName
) -> StreamView:
    changes = body.model_dump(mode="json", exclude_unset=True)
    changes = {key: value for key, value in changes.items() if value is not None}
    updated: ConfiguredStream = await _change(services, lambda d: d.update(name, changes))
    return _stream_view(services, updated)


@router.delete("/{name}", status_code=204, summary="Delete a stream (admin)")
async def delete_stream(services: Services, _caller: Admin, name: str = StreamName) -> Response:
    await _change(services, lambda d: d.delete(name))
    return Response(status_code=204)


@router.post(
    "/{name}/reset", response_model=StreamView,
    summary="Drop the API's changes of a stream: the file's entry applies again (admin)",
    responses={204: {"description": "The stream existed only through the API: it is gone."}},
)  # fmt: skip
async def reset_stream(
    services: Services, _caller: Admin, name: str = StreamName
) -> StreamView | Response:
    back: ConfiguredStream | None = await _change(services, lambda d: d.reset(name))
    return _stream_view(services, back) if back is not None else Response(status_code=204)


@router.post("/{name}/start", response_model=StreamView, summary="Start a stream (operator)")
async def start_stream(services: Services, _caller: Operator, name: str = StreamName) -> StreamView:
    done: ConfiguredStream = await _change(services, lambda d: d.update(name, {"enabled": True}))
    return _stream_view(services, done)


@router.post("/{name}/stop", response_model=StreamView, summary="Stop a stream (operator)")
async def stop_stream(services: Services, _caller: Operator, name: str = StreamName) -> StreamView:
    done: ConfiguredStream = await _change(services, lambda d: d.update(name, {"enabled": False}))
    return _stream_view(services, done)


@router.post(
    "/{name}/recording", response_model=StreamView, summary="Recording on or off (operator)"
)
async def switch_recording(
    body: RecordingSwitch, services: Services, _caller: Operator, name: str = StreamName
) -> StreamView:
    done: ConfiguredStream = await _change(
        services, lambda d: d.update(name, {"record": body.enabled})
    )
    return _stream_view(services, done)
