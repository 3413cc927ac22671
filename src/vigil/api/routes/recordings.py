"""Recordings: segments and gaps by stream and time range, segment files, exports.

Files are found through the index only: a request names a stream, a time range or a segment id,
never a path, and a file is served only from inside a recording root (`recording/files.py`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from functools import partial
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import AwareDatetime, BaseModel
from starlette.types import Receive, Scope, Send

from vigil.api.auth import Viewer
from vigil.api.deps import Services
from vigil.api.errors import ERROR_RESPONSES, ApiError, ErrorResponse
from vigil.api.services import ApiServices
from vigil.config.streams import STREAM_NAME_PATTERN
from vigil.recording.export import (
    ExportedClip,
    ExportError,
    InvalidExportRange,
    NotEnoughSpace,
    NoVideoInRange,
    TooManyExports,
    check_export_range,
)
from vigil.recording.files import SegmentFileUnavailable, segment_file
from vigil.store.models import SegmentStatus
from vigil.store.recordings import GapRow, SegmentRow
from vigil.store.timestamps import from_us, to_us

router = APIRouter(tags=["recordings"], responses=ERROR_RESPONSES)

DEFAULT_PAGE = 100
MAX_PAGE = 1000
MAX_GAPS = 10_000
MAX_SEGMENT_ID = 2**63 - 1  # SQLite's largest integer
MP4 = "video/mp4"

StreamName = Path(pattern=STREAM_NAME_PATTERN, description="The stream's name.")
SegmentId = Path(ge=1, le=MAX_SEGMENT_ID, description="The segment's id (from a listing).")
Start = Annotated[
    AwareDatetime | None,
    Query(description="ISO 8601 with a zone, e.g. 2026-11-24T07:00:00Z; default: the beginning"),
]
End = Annotated[
    AwareDatetime | None,
    Query(description="ISO 8601 with a zone; default: now and after (still recording)"),
]


class SegmentView(BaseModel):
    """One recorded file."""

    id: int
    stream: str
    start: datetime
    end: datetime | None
    duration_s: float | None
    size_bytes: int | None
    codec: str | None
    width: int | None
    height: int | None
    status: str  # open (being written), complete, repaired, missing (file gone)
    url: str  # where to download the file (MP4)


class SegmentPage(BaseModel):
    """Segments overlapping the range, oldest first, one page at a time."""

    stream: str
    segments: list[SegmentView]
    cursor: str | None  # pass as `cursor` for the next page; None on the last page
    next: str | None  # the next page's URL (path and query), also in the `Link` header


class GapView(BaseModel):
    """A stretch of time not recorded; `end` is None while it lasts."""

    start: datetime
    end: datetime | None
    duration_s: float | None
    reason: str


class GapList(BaseModel):
    """Gaps overlapping the range, oldest first."""

    stream: str
    gaps: list[GapView]
    truncated: bool  # more than `limit` gaps: ask again from the last one's start


def _segment_view(row: SegmentRow) -> SegmentView:
    return SegmentView(
        id=row.id, stream=row.stream, start=row.start, end=row.end, duration_s=row.duration_s,
        size_bytes=row.size_bytes, codec=row.codec, width=row.width, height=row.height,
        status=row.status.value, url=f"/api/v1/segments/{row.id}/file",
    )  # fmt: skip


def _gap_view(gap: GapRow) -> GapView:
    duration = None if gap.end is None else (gap.end - gap.start).total_seconds()
    return GapView(start=gap.start, end=gap.end, duration_s=duration, reason=gap.reason)


def _encode_cursor(row: SegmentRow) -> str:
    raw = f"{to_us(row.start)}.{row.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        start_us, segment_id = (int(part) for part in raw.split("."))
        return from_us(start_us), segment_id
    except (ValueError, binascii.Error, OverflowError):
        problem = [{"location": "query.cursor", "message": "unknown cursor"}]
        message = "cursor is not one this API gave out: start again without it"
        raise ApiError(422, message, details=problem) from None


def _check_range(start: datetime | None, end: datetime | None) -> None:
    if start is not None and end is not None and end <= start:
        problem = [{"location": "query.end", "message": "not after start"}]
        message = f"end ({end.isoformat()}) must be after start ({start.isoformat()})"
        raise ApiError(422, message, details=problem)


async def _require_stream(services: ApiServices, name: str) -> None:
    """404 unless the stream runs here or has recordings (a removed stream's are still served)."""
    if services.streams.status(name) is not None:
        return
    if not await services.run(partial(services.segments.has_segments, name)):
        raise ApiError(404, f"no stream named '{name}' and no recordings of one")


@router.get(
    "/streams/{name}/segments", response_model=SegmentPage,
    summary="Recorded segments of a stream in a time range (paged)",
)  # fmt: skip
async def list_segments(
    request: Request,
    response: Response,
    services: Services,
    _caller: Viewer,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Segments per page")] = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(max_length=64, description="From `cursor`")] = None,
    name: str = StreamName,
) -> SegmentPage:
    """Segments overlapping ``[start, end)``, oldest first. An open segment (still being
    written) overlaps everything after its start."""
    _check_range(start, end)
    after = _decode_cursor(cursor) if cursor else None
    await _require_stream(services, name)
    rows = await services.run(partial(
        services.segments.list_segments, stream=name, start=start, end=end, limit=limit + 1,
        after=after,
    ))  # fmt: skip
    page, more = rows[:limit], len(rows) > limit
    next_cursor = _encode_cursor(page[-1]) if more else None
    next_url = None
    if next_cursor is not None:
        query = {**request.query_params, "cursor": next_cursor}
        next_url = f"{request.url.path}?{urlencode(query)}"
        response.headers["Link"] = f'<{next_url}>; rel="next"'
    return SegmentPage(
        stream=name, segments=[_segment_view(row) for row in page], cursor=next_cursor,
        next=next_url,
    )  # fmt: skip


@router.get(
    "/streams/{name}/gaps", response_model=GapList,
    summary="Times a stream was not recorded, in a time range",
)  # fmt: skip
async def list_gaps(
    services: Services,
    _caller: Viewer,
    start: Start = None,
    end: End = None,
    limit: Annotated[int, Query(ge=1, le=MAX_GAPS, description="Gaps at most")] = MAX_GAPS,
    name: str = StreamName,
) -> GapList:
    """Each interruption of recording: from the last frame written before it to the first one
    after it (`end` None while it lasts), with the reason."""
    _check_range(start, end)
    await _require_stream(services, name)
    gaps = await services.run(partial(
        services.gaps.list_gaps, stream=name, start=start, end=end, limit=limit + 1,
    ))  # fmt: skip
    return GapList(stream=name, gaps=[_gap_view(gap) for gap in gaps[:limit]],
                   truncated=len(gaps) > limit)  # fmt: skip


@router.get(
    "/segments/{segment_id}/file",
    response_class=FileResponse,
    response_model=None,
    responses={200: {"content": {MP4: {}}, "description": "The segment (fragmented MP4)"}},
    summary="Download one segment",
)
async def segment_download(
    services: Services, _caller: Viewer, segment_id: int = SegmentId
) -> FileResponse | StreamingResponse:
    """The segment's MP4 (byte ranges supported). A segment still being written is sent as far
    as it is written at the time of the request, without ranges."""
    row = await services.run(partial(services.segments.get, segment_id))
    if row is None:
        raise ApiError(404, f"no segment with id {segment_id}")
    try:
        path = await services.run(partial(segment_file, row, tuple(services.recording_roots)))
    except SegmentFileUnavailable as why:
        raise ApiError(404, str(why), code="file_missing") from None
    filename = f"{row.stream}-{row.start.strftime('%Y%m%dT%H%M%SZ')}.mp4"
    if row.status is SegmentStatus.OPEN:
        size = (await anyio.Path(path).stat()).st_size
        return StreamingResponse(
            _read_up_to(path, size), media_type=MP4,
            headers={"Content-Length": str(size),
                     "Content-Disposition": f'inline; filename="{filename}"'},
        )  # fmt: skip
    return FileResponse(path, media_type=MP4, filename=filename, content_disposition_type="inline")


async def _read_up_to(path: FilePath, size: int) -> AsyncIterator[bytes]:
    """The first `size` bytes of a file that keeps growing (a plain FileResponse would send
    more than the Content-Length it announced)."""
    async with await anyio.open_file(path, "rb") as file:
        while size > 0:
            chunk = await file.read(min(size, 256 * 1024))
            if not chunk:
                return
            size -= len(chunk)
            yield chunk


class _ClipResponse(FileResponse):
    """A kept export: released whatever happens to the sending (a client that goes away
    mid-file makes `send` raise, and a `background` task would then never run)."""

    def __init__(self, clip: ExportedClip, release: Callable[[ExportedClip], None],
                 **kwargs: Any) -> None:  # fmt: skip
        super().__init__(clip.path, **kwargs)
        self._clip = clip
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release(self._clip)


EXPORT_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "no such stream, or no video in the range "
          "(`details.before` / `details.after`: the nearest video around it)"},
    422: {"model": ErrorResponse, "description": "bad range (end not after start, too long)"},
    429: {"model": ErrorResponse, "description": "too many exports running"},
    507: {"model": ErrorResponse, "description": "not enough disk space for the export"},
}  # fmt: skip


@router.get(
    "/streams/{name}/export.mp4",
    response_class=FileResponse,
    response_model=None,
    responses={200: {"content": {MP4: {}}, "description": "One MP4 of the range"},
               **EXPORT_ERRORS},
    summary="One MP4 of a stream's recordings in a time range",
)  # fmt: skip
async def export_mp4(
    services: Services,
    _caller: Viewer,
    start: Annotated[AwareDatetime, Query(description="ISO 8601 with a zone")],
    end: Annotated[AwareDatetime, Query(description="ISO 8601 with a zone")],
    name: str = StreamName,
) -> FileResponse:
    """The video of ``[start, end)`` as one MP4 (index in front: plays and seeks in browsers
    and ffplay), copied without re-encoding. It starts at the keyframe at or before `start`;
    gaps inside the range are skipped. Headers `X-Vigil-Start` / `X-Vigil-End` give the
    wall-clock times the clip covers, `X-Vigil-Skipped-Seconds` the gaps left out."""
    return await export_response(
        services, name, start, end, before=lambda: _require_stream(services, name)
    )


async def export_response(
    services: ApiServices,
    stream: str,
    start: datetime,
    end: datetime,
    *,
    label: str = "",
    before: Callable[[], Awaitable[object]] | None = None,
) -> FileResponse:
    """`stream`'s video of ``[start, end)`` as one MP4 response, with the X-Vigil-* headers;
    the one way the API hands out a clip (a range export, an object event's clip). `before`
    runs once the range is known to be valid (a check that the stream exists); `label` goes
    into the file name."""
    exports = services.exports
    if exports is None:
        raise ApiError(503, "exports are not available in this Vigil")
    try:
        check_export_range(start, end, exports.max_seconds)
    except InvalidExportRange as error:
        raise ApiError(422, error.message) from None
    if before is not None:
        await before()
    cancelled = threading.Event()
    try:
        clip = await services.run(partial(exports.export, stream, start, end, cancelled))
    except ExportError as error:
        raise _export_error(error) from None
    except asyncio.CancelledError:
        cancelled.set()
        raise
    headers = {
        "X-Vigil-Start": clip.first_frame.isoformat(),
        "X-Vigil-End": clip.end.isoformat(),
        "X-Vigil-Skipped-Seconds": f"{clip.skipped_s:.3f}",
        # A clip cut short by the recording's end so far must not be reused by the browser
        # either: asked again later, it is longer.
        "Cache-Control": "private, max-age=300" if clip.complete else "no-store",
    }
    if clip.ended_early:
        headers["X-Vigil-Ended-Early"] = clip.ended_early
    filename = f"{stream}{label}-{clip.first_frame.strftime('%Y%m%dT%H%M%SZ')}.mp4"
    return _ClipResponse(clip, exports.release, media_type=MP4, filename=filename,
                         content_disposition_type="inline", headers=headers)  # fmt: skip


def _export_error(error: ExportError) -> ApiError:
    if isinstance(error, NoVideoInRange):
        details = {
            "before": None if error.before is None else error.before.isoformat(),
            "after": None if error.after is None else error.after.isoformat(),
        }
        message = (
            f"{error.message}; nearest video: ends {details['before']} before, "
            f"starts {details['after']} after"
        )
        return ApiError(404, message, code="no_video", details=details)
    if isinstance(error, InvalidExportRange):
        return ApiError(422, error.message)
    if isinstance(error, TooManyExports):
        return ApiError(429, error.message, headers={"Retry-After": "10"})
    if isinstance(error, NotEnoughSpace):
        return ApiError(507, error.message, code="insufficient_storage")
    # ExportWriteFailed: the details are in the log.
    return ApiError(500, error.message, code="export_failed")
