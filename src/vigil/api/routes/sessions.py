"""Sessions: who is watching (RTSP, WHEP) or publishing (RTSP RECORD, WHIP) which stream, and
ending one."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from vigil.api.auth import Operator
from vigil.api.deps import Services
from vigil.api.errors import ERROR_RESPONSES, ApiError
from vigil.api.services import ApiServices
from vigil.serve.sessions import Session, SessionKind, SessionNotFound, SessionRegistry

router = APIRouter(tags=["sessions"], responses=ERROR_RESPONSES)

SessionId = Path(
    min_length=1, max_length=64, pattern=r"^[0-9a-f]+$", description="The session's id."
)


class SessionOut(BaseModel):
    """One open session."""

    id: str
    kind: SessionKind = Field(description="rtsp-play, rtsp-publish, whep or whip.")
    stream: str
    remote: str = Field(description="The client's address and port.")
    transport: str = Field(description="tcp, udp, udp-multicast or webrtc.")
    user: str | None = Field(description="Who authenticated (token or RTSP user name).")
    started_at: datetime
    bytes: int | None = Field(description="Bytes sent (viewers) or received (publishers).")


def _registry(services: ApiServices) -> SessionRegistry:
    if services.sessions is None:
        raise ApiError(503, "serving is not available in this API instance")
    return services.sessions


def _out(session: Session) -> SessionOut:
    return SessionOut(
        id=session.id, kind=session.kind, stream=session.stream, remote=session.remote,
        transport=session.transport, user=session.user, started_at=session.started_at,
        bytes=session.bytes(),
    )  # fmt: skip


@router.get("/sessions", response_model=list[SessionOut], summary="Open viewer/publisher sessions")
async def list_sessions(
    services: Services,
    _caller: Operator,
    stream: Annotated[str | None, Query(max_length=64, description="Only this stream.")] = None,
    kind: Annotated[SessionKind | None, Query(description="Only this kind.")] = None,
) -> list[SessionOut]:
    return [_out(s) for s in _registry(services).list(stream=stream, kind=kind)]


@router.delete(
    "/sessions/{session_id}", status_code=204, response_class=Response,
    summary="End a session (the client is disconnected)",
)  # fmt: skip
async def kick_session(
    services: Services, _caller: Operator, session_id: str = SessionId
) -> Response:
    registry = _registry(services)
    try:
        await services.run(lambda: registry.kick(session_id))
    except SessionNotFound:
        raise ApiError(404, f"no open session {session_id}") from None
    return Response(status_code=204)
