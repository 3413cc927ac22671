"""What detection keeps: the recording around each object (a hold retention honours), and how
long its snapshots stay.

`EventKeeper` listens on the bus for `ObjectLeft` (the event that knows when an object was
first and last seen) and adds a hold over ``[first_seen - pre, last_seen + post]`` lasting
`keep_days` from now, through the DB-writer thread, so the clip an event links to outlives the
stream's normal retention. On a timer (at start, then hourly) it deletes the holds that have
expired (every hold past its `until`, one per object stretch would otherwise pile up for ever)
and prunes the snapshot store's old day directories. The window arithmetic is `hold_window`, a
pure function.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Protocol, TypeVar

from vigil.events import Event, EventBus, ObjectLeft, Subscription, utc_now
from vigil.inference.snapshots import SnapshotStore
from vigil.store.holds import HoldRow, HoldStore

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

# ObjectLeft events waiting for the writer; beyond this the oldest are dropped (and logged):
# the bus never waits for the keeper.
QUEUE_SIZE = 10_000
PRUNE_INTERVAL_S = 3600.0
# A window already held for the stream, by a hold that ends no more than this much earlier
# than a new one would, is not held again: a group walking through is one hold, not five.
SAME_HOLD_SLACK = timedelta(minutes=10)


class WriterThread(Protocol):
    """Runs `fn` on the DB-writer thread (`Vigil._run_write`)."""

    def __call__(self, fn: Callable[[], _T], /) -> Awaitable[_T]: ...


@dataclass(frozen=True, slots=True)
class HoldWindow:
    """The recording to keep for one object: `stream` over [start, end) until `until`."""

    stream: str
    start: datetime
    end: datetime
    until: datetime
    reason: str

    def within(self, other: HoldWindow) -> bool:
        """True if `other` already keeps all of this (or near enough: `SAME_HOLD_SLACK`)."""
        return (
            self.stream == other.stream
            and other.start <= self.start
            and self.end <= other.end
            and self.until - other.until <= SAME_HOLD_SLACK
        )


def hold_window(
    event: ObjectLeft, padding_s: tuple[float, float], keep_days: float, now: datetime
) -> HoldWindow | None:
    """The hold for an object that left; None when `keep_days` is 0 (holds off)."""
    if keep_days <= 0:
        return None
    pre, post = (timedelta(seconds=max(0.0, seconds)) for seconds in padding_s)
    start = event.first_seen - pre
    end = max(event.last_seen + post, start + timedelta(seconds=1))
    return HoldWindow(
        stream=event.stream, start=start, end=end, until=now + timedelta(days=keep_days),
        reason=f"object {event.label} {event.object_id}",
    )  # fmt: skip


def prune_snapshots(store: SnapshotStore, retention_days: float, *, now: datetime) -> int:
    """Remove the snapshots older than `retention_days` (whole days); 0 keeps them for ever.
    Blocking (file system): run it in a thread. Returns how many files went."""
    if retention_days <= 0:
        return 0
    return store.prune(now - timedelta(days=retention_days))


class EventKeeper:
    """Holds the recording of every object that left; deletes expired holds and prunes old
    snapshots on a timer.

    `keep_days` (a number, or a function of the stream's name) says how long a hold lasts; 0
    adds none. `snapshot_retention_days` 0, or no `snapshots`, prunes nothing.
    """

    def __init__(
        self,
        bus: EventBus,
        holds: HoldStore,
        write: WriterThread,
        *,
        keep_days: float | Callable[[str], float],
        padding_s: tuple[float, float] = (5.0, 5.0),
        snapshots: SnapshotStore | None = None,
        snapshot_retention_days: float = 0.0,
        prune_interval_s: float = PRUNE_INTERVAL_S,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._bus = bus
        self._holds = holds
        self._write = write
        self._keep_days = keep_days
        self._padding_s = padding_s
        self._snapshots = snapshots
        self._snapshot_retention_days = snapshot_retention_days
        self._prune_interval_s = prune_interval_s
        self._clock = clock
        self._subscription: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        # The hold being written: `stop` lets it finish rather than cancel it (a write still
        # queued behind others on the DB writer would be dropped, and its event with it).
        self._keeping: asyncio.Task[None] | None = None
        self._last: dict[str, HoldWindow] = {}
        self._lost_reported = 0

    def start(self) -> None:
        """Keep every object that leaves from now on; delete expired holds and prune snapshots
        now and then (idempotent)."""
        if self._tasks:
            return
        self._subscription = self._bus.subscribe(_is_object_left, maxsize=QUEUE_SIZE)
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._hold_objects(), name="event-keeper"))
        self._tasks.append(loop.create_task(self._prune_loop(), name="event-keeper-pruner"))

    async def stop(self) -> None:
        """Stop, after holding the objects whose events already arrived, the one being held
        included (idempotent)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled() and task.exception() is not None:
                logger.error("event keeper stopped on an error", exc_info=task.exception())
        keeping, self._keeping = self._keeping, None
        if keeping is not None:
            await keeping
        subscription, self._subscription = self._subscription, None
        if subscription is None:
            return
        subscription.close()
        while (event := subscription.get_nowait()) is not None:
            await self._keep_logged(event)

    async def keep(self, event: ObjectLeft) -> HoldRow | None:
        """Add the hold for `event` (None: holds are off, or one already covers it)."""
        keep_days = self._keep_days(event.stream) if callable(self._keep_days) else self._keep_days
        window = hold_window(event, self._padding_s, keep_days, self._clock())
        if window is None:
            return None
        last = self._last.get(event.stream)
        if last is not None and window.within(last):
            return None
        row = await self._write(partial(
            self._holds.add, stream=window.stream, start=window.start, end=window.end,
            until=window.until, reason=window.reason,
        ))  # fmt: skip
        self._last[event.stream] = window
        logger.debug("%s: keeping the recording %s to %s until %s (%s)", window.stream,
                     window.start.isoformat(), window.end.isoformat(), window.until.isoformat(),
                     window.reason)  # fmt: skip
        return row

    async def prune_holds(self) -> int:
        """Delete the holds that have expired, through the DB writer; how many went."""
        removed = await self._write(partial(self._holds.remove_expired, self._clock()))
        if removed:
            logger.info("holds: removed %d that expired", removed)
        return removed

    async def prune_snapshots(self) -> int:
        """Prune the snapshot store now (in a thread); how many files went."""
        if self._snapshots is None:
            return 0
        removed = await asyncio.to_thread(
            prune_snapshots, self._snapshots, self._snapshot_retention_days, now=self._clock()
        )
        if removed:
            logger.info("snapshots: removed %d older than %g days", removed,
                        self._snapshot_retention_days)  # fmt: skip
        return removed

    async def _hold_objects(self) -> None:
        assert self._subscription is not None
        loop = asyncio.get_running_loop()
        async for event in self._subscription:
            self._report_lost()
            self._keeping = loop.create_task(self._keep_logged(event), name="event-keeper-hold")
            await asyncio.shield(self._keeping)
            self._keeping = None

    async def _keep_logged(self, event: Event) -> None:
        if not isinstance(event, ObjectLeft):
            return
        try:
            await self.keep(event)
        except Exception:
            # One failed write (a locked or full database) must not stop the holds after it.
            logger.exception("%s: could not keep the recording of object %s %s", event.stream,
                             event.label, event.object_id)  # fmt: skip

    def _report_lost(self) -> None:
        assert self._subscription is not None
        lost = self._subscription.dropped - self._lost_reported
        if lost:
            self._lost_reported += lost
            logger.warning("event keeper: %d object(s) left without a hold on their recording: "
                           "the database writer fell behind", lost)  # fmt: skip

    async def _prune_loop(self) -> None:
        while True:
            try:
                await self.prune_holds()
            except Exception:
                logger.exception("holds: deleting expired holds failed; retrying in %.0f s",
                                 self._prune_interval_s)  # fmt: skip
            try:
                await self.prune_snapshots()
            except Exception:
                logger.exception("snapshots: pruning failed; retrying in %.0f s",
                                 self._prune_interval_s)  # fmt: skip
            await asyncio.sleep(self._prune_interval_s)


def _is_object_left(event: Event) -> bool:
    return isinstance(event, ObjectLeft)
