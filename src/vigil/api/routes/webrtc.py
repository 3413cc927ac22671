"""WHEP playback and WHIP ingest endpoints (the IETF WHEP/WHIP drafts), outside /api/v1:

- ``POST /{stream}/whep`` (SDP offer) → 201 with the answer, ``Location`` of the session,
  ``ETag``, ``Link`` (ICE servers), ``Accept-Patch``; ``POST /{stream}/whip`` the same.
- ``PATCH /{stream}/whep/{session}`` (trickle-ICE SDP fragment) → 204; an ICE restart → 422.
- ``DELETE /{stream}/whep/{session}`` → 200, the session ends.
- ``OPTIONS`` on both → 204 with ``Accept-Post`` / ``Accept-Patch`` (CORS preflights are
  answered by the CORS middleware for the origins in ``api.cors_origins``).

WHEP needs the viewer role, WHIP the operator role (bearer tokens as for the API).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam

from vigil.api.auth import Principal, require
from vigil.api.deps import Services
from vigil.api.errors import ERROR_RESPONSES, ApiError, ErrorResponse
from vigil.api.services import ApiServices, WebRtcGateway
from vigil.config.streams import STREAM_NAME_PATTERN
from vigil.serve.sessions import SessionKind
from vigil.serve.webrtc.signalling import Answer, SignallingError
from vigil.store.tokens import Role

SDP = "application/sdp"
TRICKLE = "application/trickle-ice-sdpfrag"
# An offer with every candidate of a multi-homed browser is a few KiB; this is generous.
MAX_BODY_BYTES = 64 * 1024

router = APIRouter(tags=["webrtc"])

Stream = Annotated[str, PathParam(max_length=64, pattern=STREAM_NAME_PATTERN,
                                  description="The stream's name.")]  # fmt: skip
SessionId = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$",
                                     description="The session (see Location).")]  # fmt: skip


def _error(status: int, description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


_REFUSALS: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    406: _error(406, "the offer has no format the stream can be sent in (no transcoding)"),
    413: _error(413, "the body is too large"),
    415: _error(415, "wrong Content-Type"),
    503: _error(503, "the stream is not streaming now (see Retry-After), or WebRTC is off"),
}
# The bodies (application/sdp, application/trickle-ice-sdpfrag) are read raw and described in
# words rather than as OpenAPI request bodies: generic clients and schemathesis have no
# serializer for those media types and would otherwise fail on the description itself.
_CREATED: dict[int | str, dict[str, Any]] = {
    201: {
        "description": "The SDP answer; the session's URL is in Location.",
        "content": {SDP: {"schema": {"type": "string"}}},
        "headers": {
            name: {"schema": {"type": "string"}, "description": text}
            for name, text in (
                ("Location", "The session's URL (PATCH, DELETE)."),
                ("ETag", "The ICE session's tag, for If-Match on PATCH."),
                ("Link", 'ICE servers (rel="ice-server"), when configured.'),
                ("Accept-Patch", "application/trickle-ice-sdpfrag"),
            )
        },
    },
    **_REFUSALS,
}


def _gateway(services: ApiServices) -> WebRtcGateway:
    if services.webrtc is None:
        raise ApiError(503, "WebRTC is not enabled on this Vigil (webrtc.enabled)")
    return services.webrtc


def _refused(error: SignallingError) -> ApiError:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after is not None else None
    return ApiError(error.status, error.message, code=error.code, headers=headers)


async def _body(request: Request, media_type: str) -> str:
    given = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if given != media_type:
        raise ApiError(415, f"the body must be {media_type} (Content-Type: {given or 'none'})")
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8 text") from None


def _remote(request: Request) -> str:
    client = request.client
    if client is None:
        return "unknown"
    host = f"[{client.host}]" if ":" in client.host else client.host
    return f"{host}:{client.port}"


def _created(request: Request, gateway: WebRtcGateway, answer: Answer) -> Response:
    response = Response(content=answer.sdp, status_code=201, media_type=SDP)
    response.headers["Location"] = f"{request.url.path.rstrip('/')}/{answer.session_id}"
    response.headers["ETag"] = answer.etag
    response.headers["Accept-Patch"] = TRICKLE
    for link in gateway.ice_links():
        response.headers.append("Link", link)
    return response


def _add_endpoints(kind: SessionKind, role: Role, verb: str) -> None:
    """The four routes of one protocol; WHEP and WHIP differ in role and in what POST does."""
    path = f"/{{stream}}/{kind.value}"
    # A default rather than an Annotated alias: annotations are strings here (PEP 563), and a
    # local alias would not resolve when FastAPI reads them.
    caller = Depends(require(role))
    name = kind.value.upper()

    @router.options(path, status_code=204, response_class=Response,
                    operation_id=f"{kind.value}_options",
                    summary=f"{name}: what the endpoint accepts")  # fmt: skip
    async def endpoint_options(stream: Stream) -> Response:
        return Response(status_code=204, headers={"Accept-Post": SDP, "Allow": "OPTIONS, POST"})

    @router.post(path, status_code=201, response_class=Response, responses=_CREATED,
                 operation_id=f"{kind.value}_offer",
                 description="The body is the SDP offer (Content-Type: application/sdp).",
                 summary=f"{name}: {verb} (SDP offer in, answer out; {role} role)")  # fmt: skip
    async def offer(
        stream: Stream, request: Request, services: Services, principal: Principal = caller
    ) -> Response:
        gateway = _gateway(services)
        text = await _body(request, SDP)
        start = gateway.play if kind is SessionKind.WHEP else gateway.publish
        try:
            answer = await start(stream, text, remote=_remote(request), user=principal.name)
        except SignallingError as error:
            raise _refused(error) from None
        return _created(request, gateway, answer)

    @router.options(f"{path}/{{session_id}}", status_code=204, response_class=Response,
                    operation_id=f"{kind.value}_session_options",
                    summary=f"{name} session: what it accepts")  # fmt: skip
    async def session_options(stream: Stream, session_id: SessionId) -> Response:
        return Response(
            status_code=204,
            headers={"Accept-Patch": TRICKLE, "Allow": "OPTIONS, PATCH, DELETE"},
        )

    @router.patch(f"{path}/{{session_id}}", status_code=204, response_class=Response,
                  responses={**_REFUSALS, 412: _error(412, "If-Match does not match the ETag")},
                  operation_id=f"{kind.value}_trickle",
                  summary=f"{name} session: trickle ICE candidates ({role} role)")  # fmt: skip
    async def trickle(
        stream: Stream, session_id: SessionId, request: Request, services: Services,
        _caller: Principal = caller,
    ) -> Response:  # fmt: skip
        """The body is an SDP fragment with candidates (Content-Type:
        application/trickle-ice-sdpfrag, RFC 8840); If-Match may carry the ETag. ICE restarts
        are not supported: 422."""
        gateway = _gateway(services)
        text = await _body(request, TRICKLE)
        try:
            await gateway.trickle(kind, stream, session_id, text, request.headers.get("if-match"))
        except SignallingError as error:
            raise _refused(error) from None
        return Response(status_code=204)

    @router.delete(f"{path}/{{session_id}}", status_code=200, response_class=Response,
                   responses={200: {"description": "The session ended."}, **_REFUSALS},
                   operation_id=f"{kind.value}_end",
                   summary=f"{name} session: end it ({role} role)")  # fmt: skip
    async def end(
        stream: Stream, session_id: SessionId, services: Services, _caller: Principal = caller
    ) -> Response:
        gateway = _gateway(services)
        try:
            await gateway.end(kind, stream, session_id)
        except SignallingError as error:
            raise _refused(error) from None
        return Response(status_code=200)


_add_endpoints(SessionKind.WHEP, Role.VIEWER, "play a stream")
_add_endpoints(SessionKind.WHIP, Role.OPERATOR, "publish into a stream")
