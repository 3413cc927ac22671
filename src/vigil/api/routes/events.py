"""Events: the stored history (`GET /events`) and the live bus (`WS /events`), both in the one
JSON form of `vigil.events.event_to_dict`; a detection event's snapshot and clip.

In the history, an event's `snapshot` (a key of the snapshot store, meaningless to clients) is
replaced by `snapshot_url`, and object events get a `clip_url`: the recording around the object,
cut by the export machinery exactly as `GET /streams/{name}/export.mp4` cuts it.

A WebSocket client gets its own bounded queue on the bus. One that lets it fill is closed with
4008 rather than handed an incomplete story or allowed to hold memory: the bus never waits for
a client, so a stuck client cannot slow Vigil or the clients that keep up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from datetime import datetime, timedelta
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, WebSocket
from fastapi.responses import FileResponse, JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.websockets import WebSocketDisconnect

from vigil.api.auth import Authenticator, Viewer
from vigil.api.deps import Services
from vigil.api.errors import ERROR_RESPONSES, ApiError, ErrorResponse
from vigil.api.routes.recordings import EXPORT_ERRORS, MP4, export_response
from vigil.api.services import ApiServices, SnapshotFiles
from vigil.config.streams import STREAM_NAME_PATTERN
from vigil.events import Event, Subscription, event_to_dict, to_json_value, type_matches, utc_now
from vigil.observability.metrics import WEBSOCKET_CLIENTS, WEBSOCKET_SLOW_DISCONNECTS
from vigil.store.events import EventQuery, EventRecord, EventStore
from vigil.store.tokens import Role

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/events", tags=["events"], responses=ERROR_RESPONSES)

# WebSocket close codes: the 4000 range mirrors the HTTP status (4401 = 401), 4008 mirrors
# 1008 (policy violation: the client read too slowly).
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_SLOW = 4008
# How long the close frame to a slow client may wait for room in its socket before giving up.
CLOSE_TIMEOUT_S = 10.0
# Browsers cannot set headers on a WebSocket: they offer the token as a subprotocol instead.
BEARER_SUBPROTOCOL = "bearer."
SUBPROTOCOL = "vigil"

_TYPE_ITEM = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_STREAM_ITEM = re.compile(STREAM_NAME_PATTERN)
# Labels are the model's class names ("person", "traffic light"): anything but commas and
# control characters; they are only ever compared, as bound SQL parameters.
_LABEL_ITEM = re.compile(r"[^,\x00-\x1f\x7f]{1,64}")
_MAX_ITEMS = 50

TYPE_HELP = (
    "Comma-separated event types; a type also selects the types below it "
    "(`stream` selects `stream.state`, `segment` both segment events). Empty: every type."
)
STREAM_HELP = "Comma-separated stream names; events about other streams are left out."
LABEL_HELP = (
    "Comma-separated object labels (`person,car`): only detection events about those objects."
)
# Detection events about one tracked object: they have a clip of the recording around it.
OBJECT_TYPES = frozenset(
    {"object.entered", "object.left", "object.zone_entered", "object.zone_left"}
)
JPEG = "image/jpeg"
MAX_EVENT_ID = 2**62

EventId = Path(ge=1, le=MAX_EVENT_ID, description="The event's `id` (from the history).")


class EventOut(BaseModel):
    """One event: the keys every event has, then the event's own fields (they vary by type)."""

    model_config = ConfigDict(extra="allow")

    id: int = Field(description="Increases in the order events were stored; the paging cursor.")
    type: str = Field(description="Dotted event type, e.g. `stream.state`, `segment.closed`.")
    at: datetime = Field(description="When it happened (UTC).")
    stream: str | None = Field(
        default=None, description="The stream it is about; absent for events about no stream."
    )
    snapshot_url: str | None = Field(
        default=None,
        description="Detection events: where their snapshot JPEG is (null: none was saved).",
    )
    clip_url: str | None = Field(
        default=None, description="Object events: an MP4 of the recording around the object."
    )


class EventPage(BaseModel):
    """Stored events, newest first."""

    events: list[EventOut]
    next: str | None = Field(
        description="Path and query of the next (older) page; null on the last page."
    )


def parse_list(text: str | None, pattern: re.Pattern[str], what: str) -> tuple[str, ...]:
    """Split a comma-separated filter; `ValueError` naming the first bad item."""
    if not text:
        return ()
    items = tuple(item.strip() for item in text.split(",") if item.strip())
    if len(items) > _MAX_ITEMS:
        raise ValueError(f"{what}: at most {_MAX_ITEMS} items")
    for item in items:
        if not pattern.fullmatch(item):
            raise ValueError(f"{what}: '{item[:70]}' is not a valid name")
    return items


def _filters(type_text: str | None, stream_text: str | None) -> tuple[tuple[str, ...], ...]:
    try:
        return (parse_list(type_text, _TYPE_ITEM, "type"),
                parse_list(stream_text, _STREAM_ITEM, "stream"))  # fmt: skip
    except ValueError as error:
        raise ApiError(422, str(error)) from None


@router.get(
    "",
    response_model=EventPage,
    summary="Stored events, newest first, paged",
    description="The event history (kept `events.retention_days`, at most `events.max_rows`). "
    'Newest first: follow `next` (also sent as a `Link: <…>; rel="next"` header) for older '
    "events. `since` is inclusive, `until` exclusive; times need a zone (`Z`). Events reach the "
    "history within about half a second of happening.",
)
async def list_events(
    request: Request,
    services: Services,
    _caller: Viewer,
    type: Annotated[str | None, Query(description=TYPE_HELP, max_length=2000)] = None,
    stream: Annotated[str | None, Query(description=STREAM_HELP, max_length=4000)] = None,
    label: Annotated[str | None, Query(description=LABEL_HELP, max_length=4000)] = None,
    since: Annotated[AwareDatetime | None, Query(description="Events at or after.")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Events before.")] = None,
    before: Annotated[
        int | None, Query(ge=1, le=2**62, description="Only events with a smaller `id`.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="Events per page.")] = 100,
) -> JSONResponse:
    types, streams = _filters(type, stream)
    try:
        labels = parse_list(label, _LABEL_ITEM, "label")
    except ValueError as error:
        raise ApiError(422, str(error)) from None
    query = EventQuery(types=types, streams=streams, labels=labels, since=since, until=until,
                       before=before, limit=limit + 1)  # fmt: skip
    records = await services.run(partial(EventStore(services.db).list_events, query))
    page, more = records[:limit], len(records) > limit
    body: dict[str, object] = {"events": [_public(r) for r in page], "next": None}
    headers = {}
    if more:
        url = request.url.include_query_params(before=page[-1].id)
        body["next"] = f"{url.path}?{url.query}"
        headers["Link"] = f'<{body["next"]}>; rel="next"'
    return JSONResponse(body, headers=headers)


def _public(record: EventRecord) -> dict[str, Any]:
    """A stored event as the history lists it: links instead of the snapshot store's key."""
    data: dict[str, Any] = {"id": record.id, **record.data}
    if "snapshot" in data:
        key = data.pop("snapshot")
        data["snapshot_url"] = f"/api/v1/events/{record.id}/snapshot.jpg" if key else None
    if data.get("type") in OBJECT_TYPES:
        data["clip_url"] = f"/api/v1/events/{record.id}/clip.mp4"
    return data


async def _stored_event(services: ApiServices, event_id: int) -> EventRecord:
    record = await services.run(partial(EventStore(services.db).get, event_id))
    if record is None:
        raise ApiError(404, f"no event with id {event_id} (events are kept "
                            f"{services.events_config.retention_days:g} days)")  # fmt: skip
    return record


@router.get(
    "/{event_id}/snapshot.jpg",
    response_class=Response,
    responses={200: {"content": {JPEG: {}}, "description": "The frame, the object's box drawn"}},
    summary="A detection event's snapshot",
)
async def event_snapshot(services: Services, _caller: Viewer, event_id: int = EventId) -> Response:
    """The JPEG saved with a detection event: the frame it was seen in (for `object.left`, the
    one it was seen best in) with its box and label drawn. 404 (`no_snapshot`) when the event
    has none, 404 (`snapshot_gone`) when it was deleted by snapshot retention."""
    record = await _stored_event(services, event_id)
    key = record.data.get("snapshot")
    if not isinstance(key, str) or not key:
        raise ApiError(404, f"event {event_id} ({record.data.get('type')}) has no snapshot",
                       code="no_snapshot")  # fmt: skip
    store = services.snapshots
    if store is None:
        raise ApiError(404, "this Vigil keeps no detection snapshots", code="no_snapshot")
    jpeg = await services.run(partial(_read_snapshot, store, key))
    if jpeg is None:
        raise ApiError(404, f"the snapshot of event {event_id} is gone: snapshots are deleted "
                            "after their retention", code="snapshot_gone")  # fmt: skip
    # A snapshot never changes once its event is stored; private: it needs a token to see.
    return Response(jpeg, media_type=JPEG, headers={"Cache-Control": "private, max-age=3600"})


def _read_snapshot(store: SnapshotFiles, key: str) -> bytes | None:
    """The snapshot's bytes, or None if it is not there (read whole: a file pruned between a
    check and the sending would otherwise fail half-way)."""
    path = store.path(key)
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError:
        return None


@router.get(
    "/{event_id}/clip.mp4",
    response_class=FileResponse,
    response_model=None,
    responses={200: {"content": {MP4: {}}, "description": "The recording around the object"},
               503: {"model": ErrorResponse, "description": "exports are not available"},
               **EXPORT_ERRORS},
    summary="An object event's clip: the recording around the object",
)  # fmt: skip
async def event_clip(services: Services, _caller: Viewer, event_id: int = EventId) -> FileResponse:
    """One MP4 of the event's stream, as `GET /streams/{name}/export.mp4` makes it: for
    `object.left` from `first_seen` - pre to `last_seen` + post, for `object.entered` and the
    zone events from `at` - pre to `at` + post (pre and post: `clip_padding_s`, 5 s each by
    default)."""
    record = await _stored_event(services, event_id)
    stream, start, end = _clip_range(record, services.clip_padding_s)
    return await export_response(services, stream, start, end, label=f"-event{event_id}")


def _clip_range(
    record: EventRecord, padding_s: tuple[float, float]
) -> tuple[str, datetime, datetime]:
    """(stream, start, end) of an object event's clip; 404 for any other event."""
    data = record.data
    kind, stream = data.get("type"), data.get("stream")
    if kind not in OBJECT_TYPES or not isinstance(stream, str):
        raise ApiError(404, f"event {record.id} ({kind}) is not about an object: it has no "
                            "clip", code="no_clip")  # fmt: skip
    pre, post = (timedelta(seconds=seconds) for seconds in padding_s)
    try:
        if kind == "object.left":
            first, last = _time(data["first_seen"]), _time(data["last_seen"])
        else:
            first = last = _time(data["at"])
    except (KeyError, TypeError, ValueError):
        raise ApiError(404, f"event {record.id} does not say when the object was seen",
                       code="no_clip") from None  # fmt: skip
    return stream, first - pre, last + post


def _time(value: object) -> datetime:
    if not isinstance(value, str):
        raise TypeError(value)
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(value)
    return moment


@router.websocket("")
async def live_events(websocket: WebSocket) -> None:
    """The live bus: `?type=a,b&stream=x&label=y` filter as for GET; see docs/API.md for the
    protocol."""
    services: ApiServices = websocket.app.state.services
    auth: Authenticator = websocket.app.state.auth
    token, subprotocol = _credentials(websocket)
    await websocket.accept(subprotocol=subprotocol)
    # Refusals are close codes after the handshake: a browser never sees an HTTP status.
    try:
        principal = await auth.identify(token)
    except ApiError as error:
        await websocket.close(CLOSE_UNAUTHORIZED, error.message)
        return
    if not principal.role.allows(Role.VIEWER):
        await websocket.close(CLOSE_FORBIDDEN, "the viewer role is needed")
        return
    try:
        types = parse_list(websocket.query_params.get("type"), _TYPE_ITEM, "type")
        streams = parse_list(websocket.query_params.get("stream"), _STREAM_ITEM, "stream")
        labels = parse_list(websocket.query_params.get("label"), _LABEL_ITEM, "label")
    except ValueError as error:
        await websocket.close(CLOSE_BAD_REQUEST, str(error))
        return

    def wanted(event: Event) -> bool:
        return (
            type_matches(event.type, types)
            and (not streams or getattr(event, "stream", None) in streams)
            and (not labels or getattr(event, "label", None) in labels)
        )

    settings = services.events_config
    overflowed = asyncio.Event()
    subscription = services.bus.subscribe(
        wanted, maxsize=settings.websocket_queue, on_overflow=overflowed.set
    )
    WEBSOCKET_CLIENTS.inc()
    try:
        await _serve(websocket, subscription, overflowed, settings.heartbeat_s)
    finally:
        subscription.close()
        WEBSOCKET_CLIENTS.dec()


def _credentials(websocket: WebSocket) -> tuple[str | None, str | None]:
    """(token, subprotocol to answer): from `Authorization: Bearer`, `?token=` or a
    `bearer.<token>` subprotocol. The answered subprotocol is `vigil` if offered, else the
    first offered: a browser fails the handshake if none of its offers is answered."""
    offered: list[str] = list(websocket.scope.get("subprotocols") or [])
    answer = SUBPROTOCOL if SUBPROTOCOL in offered else (offered[0] if offered else None)
    scheme, _, credentials = websocket.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip(), answer
    if token := websocket.query_params.get("token"):
        return token, answer
    for protocol in offered:
        if protocol.startswith(BEARER_SUBPROTOCOL):
            return protocol.removeprefix(BEARER_SUBPROTOCOL), answer
    return None, answer


async def _serve(
    websocket: WebSocket, subscription: Subscription, overflowed: asyncio.Event, heartbeat_s: float
) -> None:
    """Send events until the client leaves, fails, or falls `maxsize` events behind."""
    sender = asyncio.create_task(_send(websocket, subscription, heartbeat_s))
    receiver = asyncio.create_task(_until_client_leaves(websocket))
    overflow = asyncio.create_task(overflowed.wait())
    tasks = {sender, receiver, overflow}
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled():
                task.exception()  # retrieved: looked at below where it matters
    if receiver.done() and not receiver.cancelled():
        return  # the client closed or vanished
    if overflowed.is_set():
        subscription.close()  # its queue is full; free it now, not after the close handshake
        WEBSOCKET_SLOW_DISCONNECTS.inc()
        logger.warning("event WebSocket %s: disconnected, %d events unread",
                       _peer(websocket), subscription.dropped + subscription.queued)  # fmt: skip
        await _close(websocket, CLOSE_TOO_SLOW,
                     f"too slow: more than {subscription.maxsize} events unread")  # fmt: skip
        return
    error = None if sender.cancelled() else sender.exception()
    if error is not None and not isinstance(error, WebSocketDisconnect):
        logger.error("event WebSocket %s failed", _peer(websocket), exc_info=error)
        await _close(websocket, 1011, "internal error")


async def _send(websocket: WebSocket, subscription: Subscription, heartbeat_s: float) -> None:
    # The first heartbeat says the subscription is live: every event from now on is delivered.
    await websocket.send_text(_heartbeat())
    while True:
        try:
            async with asyncio.timeout(heartbeat_s):
                event = await subscription.get()
        except TimeoutError:
            await websocket.send_text(_heartbeat())
            continue
        await websocket.send_text(json.dumps(event_to_dict(event), separators=(",", ":"),
                                             ensure_ascii=False))  # fmt: skip


async def _until_client_leaves(websocket: WebSocket) -> None:
    # Clients have nothing to say; reading still notices a close at once instead of at the
    # next send, which may be a heartbeat away.
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    # A client that does not read may leave no room for the close frame either; after the
    # timeout the server drops the connection without it.
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, TimeoutError):
        async with asyncio.timeout(CLOSE_TIMEOUT_S):
            await websocket.close(code, reason)


def _heartbeat() -> str:
    return json.dumps({"type": "heartbeat", "at": to_json_value(utc_now())})


def _peer(websocket: WebSocket) -> str:
    client = websocket.client
    return f"{client.host}:{client.port}" if client else "?"
