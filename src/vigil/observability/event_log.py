"""The event history: every bus event stored in batches by the DB writer thread, and pruned.

It lives in `observability` rather than `api` because it is a record of what the service did,
kept whether or not anyone serves it: the REST route, a later UI timeline or `vigil events`
only read the table. Writes go through Vigil's one DB-writer thread (the caller passes it in),
so SQLite keeps a single writer; a batch per half second costs one transaction, not one per
event. The bus never waits for this: its subscription is bounded, and a writer so far behind
that the subscription overflows loses the oldest events, counted in
`vigil_events_not_stored_total` and logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol, TypeVar

from vigil.events import Event, EventBus, Subscription, utc_now
from vigil.observability.metrics import EVENTS_NOT_STORED
from vigil.store.events import PRUNE_BATCH, EventStore

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

FLUSH_INTERVAL_S = 0.5
PRUNE_INTERVAL_S = 60.0
# Enough for a minute of 100 cameras reconnecting at once while the writer is busy.
QUEUE_SIZE = 20_000
BATCH_SIZE = 1000


class WriterThread(Protocol):
    """Runs `fn` on the DB-writer thread (`Vigil._write`)."""

    def __call__(self, fn: partial[_T], /) -> Awaitable[_T]: ...


class EventLog:
    """Subscribes to the bus and keeps the `events` table within its retention."""

    def __init__(
        self,
        bus: EventBus,
        store: EventStore,
        write: WriterThread,
        *,
        retention: timedelta,
        max_rows: int,
        clock: Callable[[], datetime] = utc_now,
        flush_interval_s: float = FLUSH_INTERVAL_S,
        prune_interval_s: float = PRUNE_INTERVAL_S,
    ) -> None:
        self._bus = bus
        self._store = store
        self._write = write
        self._retention = retention
        self._max_rows = max_rows
        self._clock = clock
        self._flush_interval_s = flush_interval_s
        self._prune_interval_s = prune_interval_s
        self._subscription: Subscription | None = None
        self._pending: list[Event] = []
        self._in_flight: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost_reported = 0

    def start(self) -> None:
        """Start storing events published from now on (idempotent)."""
        if self._task is not None:
            return
        self._subscription = self._bus.subscribe(maxsize=QUEUE_SIZE)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="event-log")

    async def stop(self) -> None:
        """Store everything published so far, then stop listening (idempotent)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            logger.error("event log stopped on an error", exc_info=task.exception())
        try:
            await self.flush()
        finally:
            if self._subscription is not None:
                self._subscription.close()

    async def flush(self) -> None:
        """Store every event received so far (after any batch already being written)."""
        if self._in_flight is not None:
            await asyncio.wait({self._in_flight})
        while True:
            self._take(BATCH_SIZE)
            if not self._pending:
                return
            await self._store_pending()

    async def prune(self) -> int:
        """Delete what is past the retention or the row limit; returns how many rows went."""
        total = 0
        while True:
            older_than = self._clock() - self._retention
            deleted = await self._write(partial(
                self._store.prune, older_than=older_than, max_rows=self._max_rows,
            ))  # fmt: skip
            total += deleted
            if deleted < PRUNE_BATCH:
                break
        if total:
            logger.info("event log: pruned %d old event(s)", total)
        return total

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        prune_due = loop.time()
        while True:
            if loop.time() >= prune_due:
                try:
                    await self.prune()
                except Exception:
                    logger.exception("event log: pruning failed; retrying in %.0f s",
                                     self._prune_interval_s)  # fmt: skip
                prune_due = loop.time() + self._prune_interval_s
            assert self._subscription is not None
            try:
                async with asyncio.timeout(max(0.0, prune_due - loop.time())):
                    self._pending.append(await self._subscription.get())
            except TimeoutError:
                continue
            # Let a burst (100 streams reconnecting) gather into one transaction.
            await asyncio.sleep(self._flush_interval_s)
            self._take(BATCH_SIZE - len(self._pending))
            await self._store_pending()

    def _take(self, most: int) -> None:
        """Move up to `most` queued events to the pending batch."""
        if self._subscription is None:
            return
        for _ in range(most):
            event = self._subscription.get_nowait()
            if event is None:
                break
            self._pending.append(event)
        lost = self._subscription.dropped - self._lost_reported
        if lost:
            self._lost_reported += lost
            EVENTS_NOT_STORED.inc(lost)
            logger.warning("event log: %d event(s) not stored: the database writer fell behind",
                           lost)  # fmt: skip

    async def _store_pending(self) -> None:
        batch, self._pending = self._pending, []
        # Shielded and remembered: cancelling `_run` mid-write must neither lose the batch (a
        # cancelled executor job that has not started never runs) nor let `stop`'s flush
        # overtake it.
        self._in_flight = asyncio.get_running_loop().create_task(
            self._append(batch), name="event-log-write"
        )
        await asyncio.shield(self._in_flight)

    async def _append(self, batch: list[Event]) -> None:
        try:
            await self._write(partial(self._store.append, batch))
        except Exception:
            EVENTS_NOT_STORED.inc(len(batch))
            logger.exception("event log: could not store %d event(s)", len(batch))
