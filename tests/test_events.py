"""The event bus (fan-out, filters, slow subscribers) and the JSON form of every event."""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import json
import threading
import typing
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import vigil.app  # noqa: F401  (imports every module that defines events)
from vigil.events import (
    Event,
    EventBus,
    SegmentOpened,
    StreamStateChanged,
    event_to_dict,
    to_json_value,
    type_matches,
    utc_now,
)


def _state(name: str, new: str = "streaming") -> StreamStateChanged:
    return StreamStateChanged(stream=name, old="starting", new=new, reason="test")


async def test_every_subscriber_gets_what_it_accepts() -> None:
    bus = EventBus()
    everything = bus.subscribe()
    only_gate = bus.subscribe(lambda e: getattr(e, "stream", None) == "gate")
    bus.publish(_state("gate"))
    bus.publish(_state("yard"))
    assert [e.stream for e in (everything.get_nowait(), everything.get_nowait())] == [  # type: ignore[union-attr]
        "gate",
        "yard",
    ]
    assert only_gate.get_nowait().stream == "gate"  # type: ignore[union-attr]
    assert only_gate.get_nowait() is None
    assert everything.get_nowait() is None


async def test_slow_subscriber_loses_oldest_and_publisher_never_blocks() -> None:
    bus = EventBus()
    slow = bus.subscribe(maxsize=3)
    for i in range(10):
        bus.publish(_state(f"cam{i}"))
    kept = [slow.get_nowait() for _ in range(3)]
    assert [e.stream for e in kept] == ["cam7", "cam8", "cam9"]  # type: ignore[union-attr]
    assert slow.dropped == 7


async def test_publish_from_another_thread_arrives_on_the_loop() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    event = SegmentOpened(stream="gate", segment_id=1, path="/x.mp4", start=utc_now())
    thread = threading.Thread(target=bus.publish_threadsafe, args=(event,))
    thread.start()
    thread.join()
    async with asyncio.timeout(5):
        assert await sub.get() is event


async def test_closed_subscription_receives_nothing() -> None:
    bus = EventBus()
    with bus.subscribe() as sub:
        pass
    bus.publish(_state("gate"))
    assert sub.get_nowait() is None
    assert _state("gate").type == "stream.state"


async def test_an_overflowing_subscriber_with_a_callback_keeps_its_oldest() -> None:
    bus = EventBus()
    overflows: list[int] = []
    sub = bus.subscribe(maxsize=2, on_overflow=lambda: overflows.append(1))
    for i in range(4):
        bus.publish(_state(f"cam{i}"))
    assert [sub.get_nowait().stream for _ in range(2)] == ["cam0", "cam1"]  # type: ignore[union-attr]
    assert (sub.dropped, len(overflows), sub.queued, sub.maxsize) == (2, 2, 0, 2)


# -- JSON form -----------------------------------------------------------------------------


def _every_event_type() -> list[type[Event]]:
    """Every event type Vigil defines (wherever it is defined), not those of tests."""
    found: list[type[Event]] = []
    pending = [Event]
    while pending:
        cls = pending.pop()
        for sub in cls.__subclasses__():
            pending.append(sub)
            if sub.__module__.startswith("vigil."):
                found.append(sub)
    return found


AT = datetime(2026, 11, 24, 12, 0, 0, 250000, tzinfo=UTC)
SAMPLES: dict[Any, Any] = {
    str: "text", int: 7, float: 1.5, bool: True, datetime: AT, datetime | None: AT,
    tuple[str, ...]: ("a", "b"), str | None: "text",
    tuple[float, float, float, float]: (0.1, 0.2, 0.3, 0.4),
}  # fmt: skip


def _sample(cls: type[Event]) -> Event:
    """An instance of `cls` built from its field types: new event types are covered unasked."""
    hints = typing.get_type_hints(cls)
    values = {}
    for item in dataclasses.fields(cls):
        if item.name == "at":
            continue
        hint = hints[item.name]
        assert hint in SAMPLES, f"{cls.__name__}.{item.name}: add a sample for {hint}"
        values[item.name] = SAMPLES[hint]
    return cls(at=AT, **values)


def test_the_event_types_are_the_known_ones() -> None:
    names = {cls.__name__ for cls in _every_event_type()}
    assert {"StreamStateChanged", "SegmentClosed", "GapOpened", "ConfigRejected"} <= names


@pytest.mark.parametrize("cls", _every_event_type(), ids=lambda cls: cls.__name__)
def test_every_event_type_serialises_to_strict_json(cls: type[Event]) -> None:
    event = _sample(cls)
    data = event_to_dict(event)
    assert list(data)[:2] == ["type", "at"]
    assert data["type"] == event.type and "." in event.type, "give the type a dotted name"
    assert data["at"] == "2026-11-24T12:00:00.250000Z"
    fields = {item.name for item in dataclasses.fields(cls)}
    assert "type" not in fields, "a field named 'type' would be hidden by the event type"
    assert set(data) == fields | {"type"}
    if "stream" in fields:
        assert data["stream"] == "text"
    # Strict JSON (no NaN) that reads back to the same thing.
    assert json.loads(json.dumps(data, allow_nan=False)) == data


class _Colour(enum.StrEnum):
    RED = "red"


@dataclasses.dataclass
class _Box:
    size: int
    at: datetime


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None), (True, True), (3, 3), ("x", "x"), (2.5, 2.5),
        (float("nan"), None), (float("inf"), None),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2))),
         "2026-01-02T01:04:05Z"),
        (datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05"),
        (date(2026, 1, 2), "2026-01-02"),
        (timedelta(milliseconds=1500), 1.5),
        (_Colour.RED, "red"),
        (Path("/rec/gate/a.mp4"), "/rec/gate/a.mp4"),
        (("a", 1), ["a", 1]), ([1, [2]], [1, [2]]),
        (frozenset({"b", "a"}), ["a", "b"]),
        ({"k": (1,)}, {"k": [1]}), ({1: "v"}, {"1": "v"}),
        (_Box(2, AT), {"size": 2, "at": "2026-11-24T12:00:00.250000Z"}),
        (b"raw", "b'raw'"),
        (object, "<class 'object'>"),
    ],
)  # fmt: skip
def test_values_become_strict_json(value: object, expected: object) -> None:
    assert to_json_value(value) == expected


def test_a_new_event_type_needs_no_code() -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class DiskFull(Event):
        volume: Path
        free_bytes: int

    data = event_to_dict(DiskFull(volume=Path("/mnt/a"), free_bytes=0, at=AT))
    assert data == {"type": "DiskFull", "at": "2026-11-24T12:00:00.250000Z", "volume": "/mnt/a",
                    "free_bytes": 0}  # fmt: skip
    assert "stream" not in data


@pytest.mark.parametrize(
    ("event_type", "patterns", "selected"),
    [
        ("stream.state", [], True),
        ("stream.state", ["stream.state"], True),
        ("stream.state", ["stream"], True),
        ("stream.state", ["stream."], True),
        ("stream.state", ["str"], False),
        ("stream.state", ["stream.state.x"], False),
        ("streams.x", ["stream"], False),
        ("segment.closed", ["gap", "segment"], True),
        ("gap.opened", ["segment.closed", "gap.opened"], True),
        ("config.applied", ["gap", "segment"], False),
    ],
)
def test_type_patterns_select_a_type_and_those_below_it(
    event_type: str, patterns: list[str], selected: bool
) -> None:
    assert type_matches(event_type, patterns) is selected


def test_event_types_are_unique() -> None:
    types = [_sample(cls).type for cls in _every_event_type()]
    assert len(types) == len(set(types))
