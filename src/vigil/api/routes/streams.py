"""Streams: what each is told to do and what it is doing."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Path
from pydantic import BaseModel

from vigil.api.auth import Viewer
from vigil.api.deps import Services
from vigil.api.errors import ERROR_RESPONSES, ApiError
from vigil.config.streams import STREAM_NAME_PATTERN
from vigil.streams.status import StreamStatus

router = APIRouter(prefix="/streams", tags=["streams"], responses=ERROR_RESPONSES)

StreamName = Path(pattern=STREAM_NAME_PATTERN, description="The stream's name.")


class StreamState(BaseModel):
    """A stream's live state."""

    name: str
    state: str
    reason: str
    since: datetime
    source: str
    reconnects: int
    transitions: int


def _view(status: StreamStatus) -> StreamState:
    return StreamState(
        name=status.name, state=status.state.value, reason=status.reason, since=status.since,
        source=status.source, reconnects=status.restarts, transitions=status.transitions,
    )  # fmt: skip


@router.get("", response_model=list[StreamState], summary="Every stream and its state")
async def list_streams(services: Services, _caller: Viewer) -> list[StreamState]:
    return [_view(status) for status in services.streams.statuses()]


@router.get("/{name}", response_model=StreamState, summary="One stream and its state")
async def get_stream(services: Services, _caller: Viewer, name: str = StreamName) -> StreamState:
    status = services.streams.status(name)
    if status is None:
        raise ApiError(404, f"no stream named '{name}'")
    return _view(status)
