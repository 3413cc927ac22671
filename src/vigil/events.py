"""The in-process event bus: how services tell each other (and later the API) what happened.

Events are frozen dataclasses. Publishing never blocks and never fails: each subscriber owns a
bounded queue, and a subscriber that falls behind loses its oldest events (and is told how many)
rather than slowing the publisher. Publishing is only legal on the event loop's thread; other
threads (GStreamer's) hand events over with `publish_threadsafe`. `event_to_dict` is the one
JSON form of every event (WebSocket, stored history).
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import PurePath
from typing import Any

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
        """Stable, dotted event type name used by filters, the event history and the API."""
        return _type_name(type(self))


@dataclass(frozen=True, kw_only=True)
class StreamStateChanged(Event):
    """A stream moved from one state to another; `reason` says why in words."""

    stream: str
    old: str
    new: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class StreamHealing(Event):
    """A stream climbed a rung of its healing ladder: `step` is `rebuild_source`,
    `rebuild_pipeline` or `failed`; `attempt` counts the failures with this `reason` in a row."""

    stream: str
    step: str
    reason: str
    attempt: int


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


@dataclass(frozen=True, kw_only=True)
class VolumeStateChanged(Event):
    """A recording volume changed state (online, full, ejecting, offline, failed)."""

    volume: str
    path: str
    old: str
    new: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class RecordingBlocked(Event):
    """A stream cannot record: no volume has room (or none is usable); `reason` says which."""

    stream: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class RecordingResumed(Event):
    """A stream that was blocked records again."""

    stream: str


@dataclass(frozen=True, kw_only=True)
class RetentionRan(Event):
    """Retention deleted recordings: how many, how much, and why (age or space)."""

    segments: int
    bytes: int
    reason: str
    oldest_kept: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ObjectEntered(Event):
    """Detection started tracking an object: the first time it was seen with confidence.

    `box` is normalised (x1, y1, x2, y2 in 0..1 of the frame); `zones` are the configured zones
    its foot point is in; `snapshot` names the JPEG (the frame, box drawn) in the snapshot store.
    """

    stream: str
    object_id: str
    label: str
    score: float
    box: tuple[float, float, float, float]
    zones: tuple[str, ...] = ()
    snapshot: str | None = None


@dataclass(frozen=True, kw_only=True)
class ObjectLeft(Event):
    """A tracked object's track ended: `reason` "left" when it was not seen for the tracker's
    maximum age (it left, or hid); "stopped" when detection stopped while it was still tracked
    (detection turned off, the stream removed, its model changed, Vigil stopping).

    `score`, `box` and `snapshot` are from the frame it was seen best in; `first_seen` and
    `last_seen` (when it was last seen, whatever the reason) bound the recording that shows it."""

    stream: str
    object_id: str
    label: str
    score: float
    box: tuple[float, float, float, float]
    first_seen: datetime
    last_seen: datetime
    zones: tuple[str, ...] = ()
    snapshot: str | None = None
    reason: str = "left"  # "left" or "stopped"


@dataclass(frozen=True, kw_only=True)
class ObjectEnteredZone(Event):
    """A tracked object came into one of the stream's zones (its box's foot point, for two
    detector frames in a row; or it was first seen there). `score` and `box` are that frame's."""

    stream: str
    object_id: str
    label: str
    zone: str
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True, kw_only=True)
class ObjectLeftZone(Event):
    """A tracked object went out of a zone: stood outside it for two detector frames in a row,
    or its track ended while it was inside (then `at` is when it was last seen, and the
    `object.left` follows)."""

    stream: str
    object_id: str
    label: str
    zone: str
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True, kw_only=True)
class DetectionStateChanged(Event):
    """A stream's detection started, stopped or failed (a model that will not load, say);
    `reason` says why in words. Recording is never affected."""

    stream: str
    state: str  # "running", "off" or "failed"
    reason: str


_TYPE_NAMES: dict[type[Event], str] = {
    ObjectEntered: "object.entered",
    ObjectLeft: "object.left",
    ObjectEnteredZone: "object.zone_entered",
    ObjectLeftZone: "object.zone_left",
    DetectionStateChanged: "detection.state",
    VolumeStateChanged: "storage.volume",
    RecordingBlocked: "recording.blocked",
    RecordingResumed: "recording.resumed",
    RetentionRan: "storage.retention",
    StreamStateChanged: "stream.state",
    StreamHealing: "stream.healing",
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


# -- JSON form ------------------------------------------------------------------------------


def event_to_dict(event: Event) -> dict[str, Any]:
    """The JSON form of any event: ``{"type", "at", "stream"?, ...its other fields}``.

    Built from the dataclass fields, so a new event type needs no code here: times become ISO
    8601 in UTC with ``Z`` (as the REST API writes them), tuples lists, enums their value, paths
    strings, durations seconds; anything else unknown its ``str()``. `stream` is present only
    for events about one stream, so clients can filter on it without knowing the types. A field
    named ``type`` would be shadowed by the event type: do not name a field that.
    """
    out: dict[str, Any] = {"type": event.type, "at": to_json_value(event.at)}
    stream = getattr(event, "stream", None)
    if isinstance(stream, str):
        out["stream"] = stream
    for item in dataclasses.fields(event):
        if item.name not in out:
            out[item.name] = to_json_value(getattr(event, item.name))
    return out


def to_json_value(value: object) -> Any:
    """`value` as something ``json.dumps`` writes as strict JSON (see `event_to_dict`)."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        # NaN and infinities are not JSON; json.dumps would write them anyway.
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, enum.Enum):
        return to_json_value(value.value)
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(key): to_json_value(item) for key, item in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((to_json_value(item) for item in value), key=repr)
    if isinstance(value, Iterable) and not isinstance(value, (bytes, bytearray)):
        return [to_json_value(item) for item in value]
    return str(value)


def type_matches(event_type: str, patterns: Iterable[str]) -> bool:
    """True if `event_type` is selected by any of `patterns` (an empty list selects all).

    A pattern selects its exact type and every type below it: ``stream`` and ``stream.``
    select ``stream.state``; ``segment`` selects ``segment.opened`` and ``segment.closed``.
    """
    selected = False
    for pattern in patterns:
        selected = True
        prefix = pattern if pattern.endswith(".") else pattern + "."
        if event_type == pattern or event_type.startswith(prefix):
            return True
    return not selected


class Subscription:
    """One subscriber's bounded queue; iterate it with ``async for``.

    When the queue is full the oldest event is dropped, or, with `on_overflow`, the new one is
    refused and `on_overflow` called: for a subscriber that would rather stop than see a hole
    (a WebSocket client is disconnected, not silently handed an incomplete story).
    """

    def __init__(
        self,
        bus: EventBus,
        maxsize: int,
        accept: Callable[[Event], bool],
        on_overflow: Callable[[], None] | None = None,
    ) -> None:
        self._bus = bus
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self._accept = accept
        self._on_overflow = on_overflow
        self.dropped = 0

    def _offer(self, event: Event) -> None:
        if not self._accept(event):
            return
        if self._queue.full():
            # A slow subscriber must never slow the publisher: something is dropped either way.
            self.dropped += 1
            if self._on_overflow is not None:
                self._on_overflow()
                return
            self._queue.get_nowait()
        self._queue.put_nowait(event)

    @property
    def maxsize(self) -> int:
        """How many events the queue holds at most."""
        return self._queue.maxsize

    @property
    def queued(self) -> int:
        """How many events wait to be read."""
        return self._queue.qsize()

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

    @property
    def subscriber_count(self) -> int:
        """How many subscriptions are open (a metric: a count that only grows is a leak)."""
        return len(self._subscribers)

    def subscribe(
        self,
        accept: Callable[[Event], bool] | None = None,
        *,
        maxsize: int = 1000,
        on_overflow: Callable[[], None] | None = None,
    ) -> Subscription:
        """Start receiving events (those `accept` returns True for); see `Subscription`."""
        sub = Subscription(self, maxsize, accept or (lambda _event: True), on_overflow)
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
