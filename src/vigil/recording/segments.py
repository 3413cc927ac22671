"""Segment lifecycle: a row when a file opens, completed from the file itself when it closes.

Facts arrive from the media layer in order (opened, then closed, per file) on the event loop.
Database writes and file probes run on the single DB-writer thread, so the loop never blocks and
rows are written in the order files were opened. Every row written is also an event on the bus.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

from vigil.events import EventBus, SegmentClosed, SegmentOpened
from vigil.recording.mp4probe import Mp4Error, probe_mp4
from vigil.store.models import SegmentStatus
from vigil.store.recordings import SegmentStore

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _OpenFile:
    stream: str
    start: datetime
    segment_id: asyncio.Future[int]


class SegmentIndex:
    """Keeps the `segments` table in step with the files the recorders write."""

    def __init__(self, store: SegmentStore, bus: EventBus, writer: Executor) -> None:
        self._store = store
        self._bus = bus
        self._writer = writer
        self._open: dict[str, _OpenFile] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def _write(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._writer, call)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(_log_failure)

    # -- facts from the recorders (called on the loop, in order) ------------------------------

    def opened(
        self,
        stream: str,
        location: str,
        start: datetime,
        codec: str | None,
        width: int | None,
        height: int | None,
    ) -> None:
        """A recorder opened `location`; insert its row."""
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._open[location] = _OpenFile(stream, start, future)
        self._spawn(self._insert(stream, location, start, codec, width, height, future))

    async def _insert(
        self,
        stream: str,
        location: str,
        start: datetime,
        codec: str | None,
        width: int | None,
        height: int | None,
        future: asyncio.Future[int],
    ) -> None:
        try:
            segment_id = await self._write(
                partial(
                    self._store.open_segment,
                    stream=stream,
                    path=Path(location),
                    start=start,
                    codec=codec,
                    width=width,
                    height=height,
                )
            )
        except BaseException as exc:
            future.set_exception(exc)
            raise
        future.set_result(segment_id)
        self._bus.publish(
            SegmentOpened(stream=stream, segment_id=segment_id, path=location, start=start)
        )
        logger.debug("%s: segment %d opened %s", stream, segment_id, location)

    def closed(self, stream: str, location: str, duration_hint: float) -> None:
        """A recorder finished `location`; complete its row from the file."""
        entry = self._open.pop(location, None)
        if entry is None:
            logger.warning("%s: closed %s, which was never reported open", stream, location)
            return
        self._spawn(self._complete(entry, location, duration_hint, status=SegmentStatus.COMPLETE))

    async def _complete(
        self, entry: _OpenFile, location: str, duration_hint: float, *, status: SegmentStatus
    ) -> None:
        segment_id = await entry.segment_id
        facts = await self._write(partial(_file_facts, Path(location), duration_hint))
        duration, size, codec, width, height = facts
        end = entry.start + timedelta(seconds=duration)
        await self._write(
            partial(
                self._store.close_segment,
                segment_id,
                end=end,
                duration_s=duration,
                size_bytes=size,
                codec=codec,
                width=width,
                height=height,
                status=status,
            )
        )
        self._bus.publish(
            SegmentClosed(
                stream=entry.stream,
                segment_id=segment_id,
                path=location,
                start=entry.start,
                end=end,
                duration_s=duration,
                size_bytes=size,
            )
        )
        logger.debug(
            "%s: segment %d closed (%.2f s, %d bytes)", entry.stream, segment_id, duration, size
        )

    def abandon(self, stream: str) -> None:
        """The stream's pipeline died mid-file: complete its open rows from what reached disk."""
        for location, entry in list(self._open.items()):
            if entry.stream == stream:
                del self._open[location]
                self._spawn(self._complete(entry, location, 0.0, status=SegmentStatus.REPAIRED))

    def open_locations(self, stream: str) -> list[str]:
        """Files of `stream` reported open and not yet closed."""
        return [loc for loc, entry in self._open.items() if entry.stream == stream]

    async def drain(self) -> None:
        """Wait until every pending row write is done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _file_facts(
    path: Path, duration_hint: float
) -> tuple[float, int, str | None, int | None, int | None]:
    """(duration, size, codec, width, height) of a finished segment, trusting the file."""
    try:
        info = probe_mp4(path)
    except (Mp4Error, OSError) as exc:
        logger.warning("cannot probe %s (%s); using the recorder's duration", path, exc)
        size = path.stat().st_size if path.exists() else 0
        return duration_hint, size, None, None, None
    return info.duration_s, info.file_size, info.codec, info.width, info.height


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("recording index update failed", exc_info=task.exception())
