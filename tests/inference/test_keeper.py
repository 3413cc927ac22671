"""The event keeper against real SQLite and a one-thread DB writer like Vigil's: a hold being
written when the keeper stops is still written, and expired holds are deleted on its timer."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from tests.support.service import until
from vigil.events import EventBus, ObjectLeft
from vigil.inference.keeper import EventKeeper
from vigil.store.db import Database
from vigil.store.holds import HoldStore

T = TypeVar("T")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class Writer:
    """One thread, as Vigil's DB writer; counts what was handed to it."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="test-writer")
        self.submitted = 0

    async def __call__(self, fn: Callable[[], T]) -> T:
        self.submitted += 1
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)


def _left(object_id: str, first: float, last: float) -> ObjectLeft:
    return ObjectLeft(stream="gate", object_id=object_id, label="person", score=0.9,
                      box=(0.1, 0.1, 0.2, 0.2), first_seen=NOW + timedelta(seconds=first),
                      last_seen=NOW + timedelta(seconds=last), reason="stopped")  # fmt: skip


async def test_a_hold_queued_behind_a_busy_writer_is_written_when_the_keeper_stops(
    db: Database,
) -> None:
    holds = HoldStore(db)
    bus = EventBus()
    writer = Writer()
    busy = threading.Event()
    keeper = EventKeeper(bus, holds, writer, keep_days=1, clock=lambda: NOW)
    try:
        keeper.start()
        await until(lambda: writer.submitted >= 1, 10)  # the expired holds' first deletion
        # The writer is busy (Vigil's stop: segments closing, events stored) ...
        blocker = asyncio.get_running_loop().run_in_executor(writer.executor, busy.wait)
        submitted = writer.submitted
        bus.publish(_left("1", 0, 10))
        # ... when the keeper hands it this object's hold, and is told to stop.
        await until(lambda: writer.submitted > submitted, 10)
        stopping = asyncio.create_task(keeper.stop())
        await asyncio.sleep(0)  # (let stop start: it must not drop the queued write)
        busy.set()
        await blocker
        await stopping
        assert [h.reason for h in holds.list()] == ["object person 1"]
    finally:
        busy.set()
        await keeper.stop()
        writer.executor.shutdown(wait=True)


async def test_the_keeper_deletes_expired_holds_on_its_timer(db: Database) -> None:
    holds = HoldStore(db)
    now = [NOW]
    holds.add(stream="gate", start=NOW - timedelta(days=3), end=NOW - timedelta(days=2),
              until=NOW - timedelta(minutes=1), reason="expired")  # fmt: skip
    holds.add(stream=None, start=NOW, end=NOW + timedelta(hours=1),
              until=NOW + timedelta(days=2), reason="incident")  # fmt: skip
    writer = Writer()
    keeper = EventKeeper(EventBus(), holds, writer, keep_days=1, prune_interval_s=0.05,
                         clock=lambda: now[0])  # fmt: skip
    try:
        keeper.start()
        await until(lambda: [h.reason for h in holds.list()] == ["incident"], 10)
        now[0] = NOW + timedelta(days=3)  # the incident's hold expires in turn
        await until(lambda: holds.list() == [], 10)
    finally:
        await keeper.stop()
        writer.executor.shutdown(wait=True)
