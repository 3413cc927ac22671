"""The event history writer: every bus event stored through the one writer thread, flushed on
stop, pruned by age and count, and never a brake on the bus."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypeVar

import pytest
from prometheus_client import REGISTRY

from tests.support.service import until
from vigil.events import EventBus, StreamStateChanged
from vigil.observability.event_log import QUEUE_SIZE, EventLog
from vigil.store.db import Database
from vigil.store.events import EventQuery, EventStore

T = TypeVar("T")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _state(stream: str, at: datetime | None = None) -> StreamStateChanged:
    return StreamStateChanged(stream=stream, old="starting", new="streaming", reason="ok",
                              **({"at": at} if at else {}))  # fmt: skip


class Writer:
    """A single DB-writer thread, as Vigil has."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="db-writer")

    async def __call__(self, fn: partial[T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)


@pytest.fixture
async def writer() -> AsyncIterator[Writer]:
    writer = Writer()
    yield writer
    writer.executor.shutdown(wait=True)


def _log(bus: EventBus, db: Database, writer: Writer, **options: object) -> EventLog:
    settings: dict[str, object] = {
        "retention": timedelta(days=30), "max_rows": 1000, "clock": lambda: NOW,
        "flush_interval_s": 0.05, **options,
    }  # fmt: skip
    return EventLog(bus, EventStore(db), writer, **settings)  # type: ignore[arg-type]


async def test_published_events_are_stored_in_order(db: Database, writer: Writer) -> None:
    bus = EventBus()
    log = _log(bus, db, writer)
    log.start()
    for i in range(300):
        bus.publish(_state(f"cam{i}"))
    store = EventStore(db)
    await until(lambda: store.count() == 300, timeout=10)
    records = store.list_events(EventQuery(limit=1000))
    assert [r.data["stream"] for r in reversed(records)] == [f"cam{i}" for i in range(300)]
    await log.stop()


async def test_stop_stores_what_was_just_published(db: Database, writer: Writer) -> None:
    bus = EventBus()
    log = _log(bus, db, writer, flush_interval_s=30)
    log.start()
    await asyncio.sleep(0)
    bus.publish(_state("first"))
    await asyncio.sleep(0.05)  # the log holds it, waiting for more to batch with
    bus.publish(_state("last"))
    await log.stop()
    await log.stop()  # idempotent
    stored = EventStore(db).list_events(EventQuery())
    assert [r.data["stream"] for r in stored] == ["last", "first"]
    bus.publish(_state("after"))
    assert EventStore(db).count() == 2


async def test_start_prunes_by_age_and_by_count(db: Database, writer: Writer) -> None:
    store = EventStore(db)
    store.append([_state(f"old{i}", NOW - timedelta(days=40 - i)) for i in range(5)])
    store.append([_state(f"new{i}", NOW - timedelta(hours=5 - i)) for i in range(5)])
    log = _log(EventBus(), db, writer, retention=timedelta(days=38), max_rows=4)
    log.start()
    await until(lambda: store.count() == 4, timeout=10)
    assert [r.data["stream"] for r in store.list_events(EventQuery())] == [
        "new4", "new3", "new2", "new1",
    ]  # fmt: skip
    await log.stop()


async def test_pruning_runs_again_every_interval(db: Database, writer: Writer) -> None:
    bus = EventBus()
    now = [NOW]
    log = _log(bus, db, writer, clock=lambda: now[0], prune_interval_s=0.2,
               retention=timedelta(minutes=1))  # fmt: skip
    log.start()
    bus.publish(_state("gate", NOW))
    store = EventStore(db)
    await until(lambda: store.count() == 1, timeout=10)
    now[0] = NOW + timedelta(minutes=2)
    await until(lambda: store.count() == 0, timeout=10, message="not pruned")
    await log.stop()


async def test_a_stuck_writer_never_holds_up_the_bus(db: Database, writer: Writer) -> None:
    lost_before = REGISTRY.get_sample_value("vigil_events_not_stored_total") or 0.0
    release = threading.Event()
    blocked = asyncio.get_running_loop().run_in_executor(writer.executor, release.wait)
    bus = EventBus()
    log = _log(bus, db, writer)
    log.start()
    extra = 250
    for i in range(QUEUE_SIZE + extra):  # returns at once though nothing can be written
        bus.publish(_state(f"cam{i}"))
    release.set()
    await blocked
    await log.stop()
    store = EventStore(db)
    assert store.count() == QUEUE_SIZE
    # The oldest went: the history ends with the newest events.
    assert (
        store.list_events(EventQuery(limit=1))[0].data["stream"] == f"cam{QUEUE_SIZE + extra - 1}"
    )
    lost = (REGISTRY.get_sample_value("vigil_events_not_stored_total") or 0.0) - lost_before
    assert lost == extra
