"""The event bus: fan-out, filters, and a slow subscriber that never slows the publisher."""

from __future__ import annotations

import asyncio
import threading

from vigil.events import EventBus, SegmentOpened, StreamStateChanged, utc_now


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
