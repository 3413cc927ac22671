"""The in-process event bus: how services tell each other (and later the API) what happened.

Events are frozen dataclasses. Publishing never blocks and never fails: each subscriber owns a
bounded queue, and a subscriber that falls behind loses its oldest events (and is told how many)
rather than slowing the publisher. Publishing is only legal on the event loop's thread; other
threads (GStreamer's) hand events over with `publish_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

logger = logging.getLogger(__name__)


def utc_now() -> datetime:
    """The wall clock as an aware UTC datetime (the one clock events use)."""
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Event:
    """Base of every event: when it happened (wall clock, UTC)."""

    at: datetime = field(default_factory=utc_now)

    @property
    def type(self) -> str:
        """Stable, dotted event type name used by filters and (later) the API."""
        return _type_name(type(self))


@dataclass(frozen=True, kw_only=True)
class StreamStateChanged(Event):
    """A stream moved from one state to another; `reason` says why in words."""

    stream: str
    old: str
    new: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class SegmentOpened(Event):
    """The recorder started writing a new segment file."""

    stream: str
    segment_id: int
    path: str
    start: datetime


@dataclass(frozen=True, kw_only=True)
class SegmentClosed(Event):
    """A segment file was finished and its index row completed."""

    stream: str
    segment_id: int
    path: str
    start: datetime
    end: datetime
    duration_s: float
    size_bytes: int


@dataclass(frozen=True, kw_only=True)
class GapOpened(Event):
    """A stream stopped being recorded (its reason says why); the gap lasts until it resumes."""

    stream: str
    gap_id: int
    start: datetime
    reason: str


@dataclass(frozen=True, kw_only=True)
class GapClosed(Event):
    """Recording of a stream resumed: the gap is over."""

    stream: str
    gap_id: int
    end: datetime


@dataclass(frozen=True, kw_only=True)
class RecordingRepaired(Event):
    """Start-up repair completed rows left open by a crash."""

    repaired: int
    missing: int
    quarantined: int


@dataclass(frozen=True, kw_only=True)
class ConfigApplied(Event):
    """A new configuration (file edit, API change, reload) is running; what changed."""

    source: str  # "file", "api" or "reload"
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ConfigRejected(Event):
    """A new configuration was refused; the running one stays. `problems` name each key."""

    source: str
    problems: tuple[str, ...]


_TYPE_NAMES: dict[type[Event], str] = {
    StreamStateChanged: "stream.state",
    SegmentOpened: "segment.opened",
    SegmentClosed: "segment.closed",
    GapOpened: "gap.opened",
    GapClosed: "gap.closed",
    RecordingRepaired: "recording.repaired",
    ConfigApplied: "config.applied",
    ConfigRejected: "config.rejected",
}


def _type_name(cls: type[Event]) -> str:
    return _TYPE_NAMES.get(cls, cls.__name__)


class Subscription:
    """One subscriber's bounded queue; iterate it with ``async for``."""

    def __init__(self, bus: EventBus, maxsize: int, accept: Callable[[Event], bool]) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self._accept = accept
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if not self._accept(event):
            return
        if self._queue.full():
            # Drop the oldest: a slow subscriber must never slow the publisher.
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(event)

    async def get(self) -> Event:
        """Wait for the next event."""
        return await self._queue.get()

    def get_nowait(self) -> Event | None:
        """The next queued event, or None."""
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def close(self) -> None:
        """Stop receiving events."""
        self._bus._unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self._queue.get()


class EventBus:
    """Fan events out to subscribers; bound to the event loop it was created on."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._subscribers: list[Subscription] = []

    def subscribe(
        self, accept: Callable[[Event], bool] | None = None, *, maxsize: int = 1000
    ) -> Subscription:
        """Start receiving events (those `accept` returns True for)."""
        sub = Subscription(self, maxsize, accept or (lambda _event: True))
        self._subscribers.append(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subscribers:
            self._subscribers.remove(sub)

    def publish(self, event: Event) -> None:
        """Deliver `event` to every subscriber. Call on the loop's thread only."""
        for sub in list(self._subscribers):
            sub._offer(event)

    def publish_threadsafe(self, event: Event) -> None:
        """Deliver `event` from any thread (GStreamer's, the GLib loop's)."""
        try:
            self._loop.call_soon_threadsafe(self.publish, event)
        except RuntimeError:
            logger.debug("event loop closed; dropped %s", event.type)
