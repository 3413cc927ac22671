"""Storage: volumes (state, space, eject, attach), retention figures, and holds that keep
recordings from retention."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import APIRouter, Body, Path, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from vigil.api.auth import Admin, Operator, Viewer
from vigil.api.deps import Services
from vigil.api.errors import ERROR_RESPONSES, ApiError
from vigil.api.services import ApiServices
from vigil.config.streams import STREAM_NAME_PATTERN
from vigil.recording.storage import StorageManager
from vigil.recording.volumes import VolumeError, VolumeView
from vigil.store.holds import HoldNotFoundError, HoldRow, HoldStore

router = APIRouter(tags=["storage"], responses=ERROR_RESPONSES)

VolumeId = Path(
    min_length=1, max_length=36, pattern=r"^[0-9a-f-]+$",
    description="The volume's id (its UUID, or a unique prefix of it).",
)  # fmt: skip
HoldId = Path(ge=1, le=2**63 - 1, description="The hold's id.")


class VolumeOut(BaseModel):
    """A recording volume."""

    id: str | None = Field(description="UUID from the volume's identity file; null if unknown.")
    path: str = Field(description="Where the volume is (or was last) mounted.")
    configured_path: str
    configured: bool = Field(description="False for a volume attached at a path of its own.")
    priority: int
    state: str = Field(description="online, full, ejecting, offline or failed.")
    reason: str
    since: datetime
    total_bytes: int | None
    used_bytes: int | None
    free_bytes: int | None
    usage_percent: float | None
    max_usage_percent: float
    min_free_bytes: int
    write_errors: int
    bytes_deleted: int = Field(description="Bytes retention deleted here since Vigil started.")
    segments_deleted: int


class StorageOut(BaseModel):
    """Every volume, and what retention did."""

    policy: str
    volumes: list[VolumeOut]
    bytes_deleted: int = Field(description="Bytes retention deleted since Vigil started.")
    segments_deleted: int
    oldest_recording: datetime | None = Field(description="Start of the oldest recording kept.")
    last_retention: datetime | None
    blocked: bool = Field(
        description="True when every volume is full and retention found nothing to delete."
    )
    blocked_streams: list[str] = Field(description="Streams that cannot record now (no space).")


class AttachIn(BaseModel):
    """Where the volume is mounted now (default: where it was)."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(default=None, min_length=1, max_length=4096)


class HoldIn(BaseModel):
    """Keep recordings from retention."""

    model_config = ConfigDict(extra="forbid")

    stream: str | None = Field(
        default=None, pattern=STREAM_NAME_PATTERN, description="Null: every stream."
    )
    start: AwareDatetime
    end: AwareDatetime
    until: AwareDatetime | None = Field(default=None, description="Null: for ever.")
    reason: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _ordered(self) -> HoldIn:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class HoldOut(BaseModel):
    """A hold: recordings of `stream` (every stream if null) in [start, end) are kept until
    `until` (for ever if null), whatever retention says."""

    id: int
    stream: str | None
    start: datetime
    end: datetime
    until: datetime | None
    reason: str
    created_at: datetime


def _storage(services: ApiServices) -> StorageManager:
    if services.storage is None:
        raise ApiError(503, "storage is not available in this API instance")
    return services.storage


def _holds(services: ApiServices) -> HoldStore:
    if services.holds is None:
        raise ApiError(503, "holds are not available in this API instance")
    return services.holds


def _volume(view: VolumeView) -> VolumeOut:
    usage = (
        round(100.0 * view.used_bytes / view.total_bytes, 2)
        if view.used_bytes is not None and view.total_bytes
        else None
    )
    return VolumeOut(
        id=view.id, path=str(view.path), configured_path=str(view.configured_path),
        configured=view.configured, priority=view.priority, state=view.state.value,
        reason=view.reason, since=view.since, total_bytes=view.total_bytes,
        used_bytes=view.used_bytes, free_bytes=view.free_bytes, usage_percent=usage,
        max_usage_percent=view.max_usage_percent, min_free_bytes=view.min_free_bytes,
        write_errors=view.write_errors, bytes_deleted=view.bytes_deleted,
        segments_deleted=view.segments_deleted,
    )  # fmt: skip


def _hold(row: HoldRow) -> HoldOut:
    return HoldOut(
        id=row.id, stream=row.stream, start=row.start, end=row.end, until=row.until,
        reason=row.reason, created_at=row.created_at,
    )  # fmt: skip


@router.get("/storage", response_model=StorageOut, summary="Volumes and retention")
async def get_storage(services: Services, _caller: Viewer) -> StorageOut:
    """Every volume with its state and space, and what retention deleted."""
    summary = _storage(services).summary()
    return StorageOut(
        policy=summary.policy, volumes=[_volume(v) for v in summary.volumes],
        bytes_deleted=summary.bytes_deleted, segments_deleted=summary.segments_deleted,
        oldest_recording=summary.oldest_recording, last_retention=summary.last_retention,
        blocked=summary.exhausted,
        blocked_streams=[s.name for s in services.streams.statuses() if s.recording_blocked],
    )  # fmt: skip


@router.get("/storage/volumes/{volume_id}", response_model=VolumeOut, summary="One volume")
async def get_volume(services: Services, _caller: Viewer, volume_id: str = VolumeId) -> VolumeOut:
    try:
        return _volume(_storage(services).pool.view(volume_id))
    except VolumeError as exc:
        raise ApiError(404, str(exc)) from None


@router.post(
    "/storage/volumes/{volume_id}/eject",
    response_model=VolumeOut,
    summary="Eject a volume (admin): answers once it can be unmounted",
)
async def eject_volume(services: Services, _caller: Admin, volume_id: str = VolumeId) -> VolumeOut:
    """No new segments go to the volume; the segments open on it move to another volume at
    their next keyframe (no frame lost); the answer comes when the last one is closed and the
    volume is `offline`: it may be unmounted then. 404: no such volume; 409: it is offline
    already, or segments did not close in time."""
    storage = _storage(services)
    try:
        storage.pool.view(volume_id)
    except VolumeError as exc:
        raise ApiError(404, str(exc)) from None
    try:
        return _volume(await storage.eject(volume_id))
    except VolumeError as exc:
        raise ApiError(409, str(exc)) from None


@router.post(
    "/storage/volumes/{volume_id}/attach",
    response_model=VolumeOut,
    summary="Attach a volume again (admin), at its old path or a new one",
)
async def attach_volume(
    services: Services,
    _caller: Admin,
    volume_id: str = VolumeId,
    body: Annotated[AttachIn | None, Body()] = None,
) -> VolumeOut:
    """The volume's identity file must be at `path` (default: where it was). Its recordings
    are indexed again (rows follow the disk to its new path) and it takes segments again.
    404: no such volume; 409: the path holds no or another volume, or it is attached already."""
    storage = _storage(services)
    try:
        storage.pool.view(volume_id)
    except VolumeError as exc:
        raise ApiError(404, str(exc)) from None
    path = None
    if body is not None and body.path is not None:
        path = FilePath(body.path)
        if not path.is_absolute():
            raise ApiError(422, "path must be absolute")
    try:
        return _volume(await storage.attach(volume_id, path))
    except VolumeError as exc:
        raise ApiError(409, str(exc)) from None


@router.get("/recordings/holds", response_model=list[HoldOut], summary="Holds on recordings")
async def list_holds(services: Services, _caller: Viewer) -> list[HoldOut]:
    """Every hold, in force or expired (expired ones no longer protect anything)."""
    holds = _holds(services)
    return [_hold(row) for row in await services.run(holds.list)]


@router.post(
    "/recordings/holds",
    response_model=HoldOut,
    status_code=201,
    summary="Keep recordings from retention (operator)",
)
async def add_hold(
    body: HoldIn, services: Services, response: Response, _caller: Operator
) -> HoldOut:
    """Retention (by age or for space) deletes nothing a hold in force covers. When every
    volume is full of held recordings, recording stops (`recording blocked`) until space is
    freed."""
    holds = _holds(services)
    row = await services.run(
        partial(
            holds.add,
            stream=body.stream,
            start=body.start,
            end=body.end,
            until=body.until,
            reason=body.reason,
        )
    )
    response.headers["Location"] = f"/api/v1/recordings/holds/{row.id}"
    return _hold(row)


@router.delete("/recordings/holds/{hold_id}", status_code=204, summary="Remove a hold (operator)")
async def remove_hold(services: Services, _caller: Operator, hold_id: int = HoldId) -> Response:
    holds = _holds(services)
    try:
        await services.run(partial(holds.remove, hold_id))
    except HoldNotFoundError:
        raise ApiError(404, f"no hold has id {hold_id}") from None
    if services.storage is not None:
        services.storage.request_clean()
    return Response(status_code=204)
