"""Snapshots: a stream's latest frame as a JPEG, decoded when asked."""

from __future__ import annotations

from fastapi import APIRouter, Path
from fastapi.responses import Response

from vigil.api.auth import Viewer
from vigil.api.deps import Services
from vigil.api.errors import ERROR_RESPONSES, ApiError
from vigil.config.streams import STREAM_NAME_PATTERN
from vigil.streams.state import StreamState

router = APIRouter(tags=["streams"], responses=ERROR_RESPONSES)

StreamName = Path(pattern=STREAM_NAME_PATTERN, description="The stream's name.")


@router.get(
    "/streams/{name}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "The latest keyframe"}},
    summary="The stream's latest frame as a JPEG",
)
async def snapshot(services: Services, _caller: Viewer, name: str = StreamName) -> Response:
    """The latest keyframe the stream received, at the stream's size (so at most one GOP old:
    decoding only keyframes costs nothing while nobody asks). 409 while the stream is not
    streaming: an old frame shown as the current one would mislead."""
    status = services.streams.status(name)
    if status is None:
        raise ApiError(404, f"no stream named '{name}' is running")
    if status.state is not StreamState.STREAMING:
        raise ApiError(409, f"stream '{name}' is {status.state.value} ({status.reason}): "
                            "no live frame to show", code="not_streaming")  # fmt: skip
    jpeg = await services.streams.snapshot(name)
    if jpeg is None:
        raise ApiError(409, f"stream '{name}' has not received a keyframe yet",
                       code="not_streaming")  # fmt: skip
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "no-store"})
