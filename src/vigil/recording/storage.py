"""The storage service: watches the volumes, runs retention, and carries out eject and attach.

Every `check_interval_s` (and at once when a recorder finds no room) it scans the volumes in a
worker thread, publishes their state changes, moves the streams writing on a volume that went
away onto another one at their next keyframe, brings a volume that appeared (a disk mounted
again) back with its recordings reindexed, and runs retention on the DB-writer thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TypeVar

from vigil.events import EventBus, RetentionRan, VolumeStateChanged
from vigil.recording.mp4probe import Mp4Error, probe_mp4
from vigil.recording.reindex import ReindexReport, reindex
from vigil.recording.repair import RepairReport, quarantine_under, repair_open_segments
from vigil.recording.retention import Retention, RetentionReport
from vigil.recording.volumes import USABLE, VolumeChange, VolumeError, VolumePool, VolumeView
from vigil.store.recordings import SegmentStore
from vigil.store.retention import RetentionStore
from vigil.store.volumes import VolumeStore

logger = logging.getLogger(__name__)

T = TypeVar("T")
Write = Callable[[Callable[[], T]], Awaitable[T]]

# A run triggered by a recorder with no room waits at least this long after the last one.
MIN_TRIGGERED_INTERVAL_S = 0.25
EJECT_TIMEOUT_S = 30.0
# A volume brought back while streams run: files modified this recently are left to a later
# reindex (a recorder may be writing them, their rows on the way).
LIVE_REINDEX_MIN_AGE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class StorageSummary:
    """Everything `GET /api/v1/storage` shows."""

    policy: str
    volumes: list[VolumeView]
    bytes_deleted: int
    segments_deleted: int
    oldest_recording: datetime | None
    last_retention: datetime | None
    exhausted: bool


class StorageManager:
    """Runs the volume checks and retention; the API's way to eject and attach."""

    def __init__(
        self,
        pool: VolumePool,
        *,
        bus: EventBus,
        segments: SegmentStore,
        volumes: VolumeStore,
        retention: Retention,
        retention_store: RetentionStore,
        write: Callable[[Callable[[], object]], Awaitable[object]],
        writing: Callable[[], Mapping[str, str]],
        policy: str,
        interval_s: float,
    ) -> None:
        """`writing`: location → stream of every segment file open now (the segment index)."""
        self.pool = pool
        self._bus = bus
        self._segments = segments
        self._volumes = volumes
        self._retention = retention
        self._retention_store = retention_store
        self._write = write
        self._writing = writing
        self._policy = policy
        self._interval = interval_s
        self._rotate: Callable[[set[str]], Awaitable[None]] | None = None
        # Told what start-up (or attach) repair did to rows a crash left open.
        self.on_repair: Callable[[RepairReport], None] = lambda _report: None
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_run = 0.0
        self._last_retention: datetime | None = None
        self._oldest: datetime | None = None
        self._lock = asyncio.Lock()  # one scan/eject/attach at a time

    def attach_streams(self, rotate: Callable[[set[str]], Awaitable[None]]) -> None:
        """How to move streams onto another volume (the stream manager's `rotate`)."""
        self._rotate = rotate

    # -- lifecycle ----------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Before recording starts: every volume's state (events published); then, per usable
        volume, rows of a volume now at a new path relocated, rows older than volumes given
        their volume's id, open rows left by a crash repaired, unknown files reindexed."""
        changes = await asyncio.to_thread(self.pool.scan)
        for change in changes:
            self._publish(change)
        for volume_id, path in self.pool.usable().items():
            await self._bring_back(volume_id, path)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="storage")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def request_clean(self) -> None:
        """Any thread: run the checks and retention now (a recorder found no room)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._wake.set)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._interval)
                await asyncio.sleep(
                    max(0.0, MIN_TRIGGERED_INTERVAL_S - (time.monotonic() - self._last_run))
                )
            except TimeoutError:
                pass
            self._wake.clear()
            self._last_run = time.monotonic()
            try:
                async with self._lock:
                    await self._scan()
                await self.run_retention()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("storage check failed")

    # -- scanning -----------------------------------------------------------------------------

    async def _scan(self) -> None:
        changes = await asyncio.to_thread(self.pool.scan)
        await self._handle(changes)

    async def _handle(self, changes: list[VolumeChange]) -> None:
        appeared: list[VolumeChange] = []
        gone: list[VolumeChange] = []
        for change in changes:
            self._publish(change)
            if change.new in USABLE and change.old not in USABLE:
                appeared.append(change)
            elif change.old in USABLE and change.new not in USABLE:
                gone.append(change)
        for change in gone:
            await self._move_off(change.path, f"volume {change.volume} is {change.new.value}")
        for change in appeared:
            await self._bring_back(change.volume, change.path)

    async def _move_off(self, root: Path, why: str) -> set[str]:
        """Streams writing under `root` start their next segment elsewhere (next keyframe)."""
        streams = {
            stream for location, stream in self._writing().items()
            if Path(location).is_relative_to(root)
        }  # fmt: skip
        if streams and self._rotate is not None:
            logger.warning("%s: moving %d stream(s) to another volume", why, len(streams))
            await self._rotate(streams)
        return streams

    async def _bring_back(self, volume_id: str, path: Path) -> ReindexReport | None:
        """A volume became usable: remember where it is, move its rows there if it was seen
        elsewhere before, repair what a crash left open on it, complete rows closed while it
        was away, and index recordings on it that the database does not know."""
        known = await self._write(self._volumes.paths)
        assert isinstance(known, dict)
        previous = known.get(volume_id)
        if previous is not None and Path(previous) != path:
            moved = await self._write(
                partial(self._volumes.relocate, volume_id, Path(previous), path)
            )
            logger.info(
                "volume %s: %s row(s) moved from %s to %s", volume_id, moved, previous, path
            )
        await self._write(partial(self._volumes.seen, volume_id, path))
        await self._write(partial(self._volumes.assign, volume_id, path))
        # Read on the loop as the repair is queued: a file whose row insert is queued before
        # the repair is listed here; one opened later gets its row after the repair ran.
        being_written = list(self._writing())
        repaired = await self._write(
            partial(
                repair_open_segments,
                self._segments,
                only_under=[path],
                quarantine_dir_for=quarantine_under([path]),
                being_written=being_written,
            )
        )
        assert isinstance(repaired, RepairReport)
        if repaired.outcomes:
            self.on_repair(repaired)
        await self._write(partial(self._complete_unprobed, volume_id))
        report = await self._write(
            partial(
                reindex,
                self._segments,
                [path],
                volume=volume_id,
                quarantine_dir_for=quarantine_under([path]),
                # Streams may already write here: a file whose row is still on its way is no
                # stray to index or quarantine (a file being written changes every fragment).
                min_age=LIVE_REINDEX_MIN_AGE if self._rotate is not None else timedelta(0),
            )
        )
        assert isinstance(report, ReindexReport)
        if report.indexed or report.quarantined or report.errors:
            logger.warning("volume %s reindexed: %s", volume_id, report.summary())
        return report

    def _complete_unprobed(self, volume_id: str) -> int:
        """DB-writer thread: complete from their files the rows closed while this volume was
        away (their files were out of reach then). Returns how many."""
        done = 0
        for segment_id, location in self._volumes.unprobed(volume_id):
            row = self._segments.get(segment_id)
            try:
                info = probe_mp4(Path(location))
            except (Mp4Error, OSError):
                continue
            if row is None or info.duration_s <= 0:
                continue
            self._segments.close_segment(
                segment_id, end=row.start + timedelta(seconds=info.duration_s),
                duration_s=info.duration_s, size_bytes=info.file_size, codec=info.codec,
                width=info.width, height=info.height, status=row.status,
            )  # fmt: skip
            done += 1
        if done:
            logger.info("volume %s: %d segment(s) completed from their files", volume_id, done)
        return done

    # -- retention ----------------------------------------------------------------------------

    async def run_retention(self) -> RetentionReport:
        report = await self._write(self._retention.run)
        assert isinstance(report, RetentionReport)
        self._last_retention = datetime.now().astimezone()
        if report.segments:
            oldest = await self._write(self._retention_store.oldest_start)
            self._oldest = oldest if isinstance(oldest, datetime) else None
            reason = "space" if report.by_space else "age"
            logger.info(
                "retention deleted %d segment(s), %d bytes (%d by age, %d for space)",
                report.segments, report.bytes, report.by_age, report.by_space,
            )  # fmt: skip
            self._bus.publish(RetentionRan(segments=report.segments, bytes=report.bytes,
                                           reason=reason, oldest_kept=self._oldest))  # fmt: skip
        self._publish_pending()
        return report

    # -- eject and attach ---------------------------------------------------------------------

    async def eject(self, volume_id: str, timeout: float = EJECT_TIMEOUT_S) -> VolumeView:
        """Stop writing on the volume: no new segments, open ones move on at their next
        keyframe, and it is offline (safe to unmount) once the last one is closed."""
        async with self._lock:
            volume = self.pool.start_eject(volume_id)
            assert volume.id is not None
            self._publish_pending()
            root = volume.path
            await self._move_off(root, f"volume {volume.id} ejecting")
            deadline = time.monotonic() + timeout
            while any(Path(loc).is_relative_to(root) for loc in self._writing()):
                if time.monotonic() > deadline:
                    still = [loc for loc in self._writing() if Path(loc).is_relative_to(root)]
                    self.pool.finish_eject(volume.id)  # placement must not come back here
                    self._publish_pending()
                    raise VolumeError(
                        f"volume {volume.id}: {len(still)} segment(s) still open after "
                        f"{timeout:g} s; it takes no new segments but is not safe to unmount yet"
                    )
                await asyncio.sleep(0.1)
            self.pool.finish_eject(volume.id)
            self._publish_pending()
            return self.pool.view(volume.id)

    async def attach(self, volume_id: str, path: Path | None = None) -> VolumeView:
        """Bring an offline volume back (at `path`, default where it was): its recordings are
        reindexed and listed again."""
        async with self._lock:
            volume, _previous = await asyncio.to_thread(self.pool.prepare_attach, volume_id, path)
            assert volume.id is not None
            target = path if path is not None else volume.path
            view = await asyncio.to_thread(self.pool.finish_attach, volume.id, target)
            self._publish_pending()
            await self._bring_back(volume.id, target)
            return view

    def _publish_pending(self) -> None:
        for change in self.pool.take_changes():
            self._publish(change)

    def _publish(self, change: VolumeChange) -> None:
        self._bus.publish(
            VolumeStateChanged(
                volume=change.volume,
                path=str(change.path),
                old=change.old.value,
                new=change.new.value,
                reason=change.reason,
            )
        )

    def summary(self) -> StorageSummary:
        return StorageSummary(
            policy=self._policy, volumes=self.pool.views(),
            bytes_deleted=self._retention.total_bytes,
            segments_deleted=self._retention.total_segments,
            oldest_recording=self._oldest, last_retention=self._last_retention,
            exhausted=self.pool.exhausted,
        )  # fmt: skip

    async def refresh_oldest(self) -> None:
        oldest = await self._write(self._retention_store.oldest_start)
        self._oldest = oldest if isinstance(oldest, datetime) else None
