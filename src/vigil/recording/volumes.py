"""Recording volumes: which disks are usable, how full they are, and where the next segment goes.

A `VolumePool` is asked for a path each time a recorder opens a segment (on a GStreamer
streaming thread, so it answers from memory plus one `statvfs`, under a lock, never touching the
database). `scan` (a worker thread, every few seconds) looks at every volume: is its directory
there, does it hold the identity we know, is it on the same device as before, how much is free.
A volume's state follows:

- ``online``: usable, below its thresholds;
- ``full``: usable but over ``max_usage_percent`` or under ``min_free_bytes``; no new segments;
- ``ejecting``: asked to eject; no new segments, open ones finish;
- ``offline``: not there (ejected, unmounted, identity missing) — its recordings come back when
  it is attached again;
- ``failed``: there but failing (I/O errors, unwritable).

Why statvfs at placement and not only in `scan`: at 100 cameras and 60 s segments that is under
two calls a second, each a few microseconds, and it stops a volume being filled past its
threshold between two scans.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from vigil.config.resolve import VolumePlan
from vigil.config.storage import PlacementPolicy
from vigil.recording.identity import (
    VolumeIdentity,
    VolumeIdentityError,
    create_identity,
    read_identity,
)
from vigil.recording.paths import claim_segment_path
from vigil.store.timestamps import utc_now

logger = logging.getLogger(__name__)


class VolumeState(StrEnum):
    """Whether a volume takes new segments, and if not, why."""

    ONLINE = "online"
    FULL = "full"
    EJECTING = "ejecting"
    OFFLINE = "offline"
    FAILED = "failed"


USABLE = (VolumeState.ONLINE, VolumeState.FULL)  # readable: recordings on it can be served
# After a write failed for lack of space, a volume takes segments again only once this much
# more (or 1 % of it, if more) is free than at the failure.
ENOSPC_HEADROOM = 4 * 1024 * 1024


class NoSpace(RuntimeError):
    """No volume can take a new segment now. `exhausted`: retention found nothing to delete
    either, so waiting will not help until space is freed or a volume is added."""

    def __init__(self, message: str, *, exhausted: bool) -> None:
        super().__init__(message)
        self.exhausted = exhausted


class VolumeError(LookupError):
    """An eject or attach that cannot be done; the message says why."""


@dataclass(frozen=True, slots=True)
class Usage:
    """Space on a volume's file system, in bytes."""

    total: int
    used: int
    free: int  # available to an unprivileged writer (f_bavail), what a recording can use

    @property
    def percent(self) -> float:
        return 100.0 * self.used / self.total if self.total else 100.0


@dataclass(frozen=True, slots=True)
class VolumeChange:
    """A volume moved from one state to another (for events and logs)."""

    volume: str
    path: Path
    old: VolumeState
    new: VolumeState
    reason: str


@dataclass
class Volume:
    """One volume as the pool knows it. Mutated under the pool's lock only."""

    plan: VolumePlan
    path: Path
    id: str | None = None
    state: VolumeState = VolumeState.OFFLINE
    reason: str = "not checked yet"
    since: datetime = field(default_factory=utc_now)
    usage: Usage | None = None
    device: int | None = None
    write_errors: int = 0
    bytes_deleted: int = 0
    segments_deleted: int = 0
    ejected: bool = False  # by the operator: not attached again until it has been seen gone
    # After a disk-full write error: free bytes needed before it takes segments again (the
    # configured thresholds were evidently too small to catch it).
    space_floor: int = 0
    configured: bool = True

    def over_threshold(self, usage: Usage) -> str | None:
        """Why `usage` makes this volume full, or None if it has room."""
        if usage.free < self.space_floor:
            return f"{_size(usage.free)} free since a write failed for lack of space"
        if usage.free < self.plan.min_free_bytes:
            return (
                f"{_size(usage.free)} free, below min_free_bytes {_size(self.plan.min_free_bytes)}"
            )
        if usage.percent > self.plan.max_usage_percent:
            limit = self.plan.max_usage_percent
            return f"{usage.percent:.1f}% used, above max_usage_percent {limit:g}"
        return None

    def bytes_to_free(self, usage: Usage, margin: int) -> int:
        """How much must go for this volume to have `margin` bytes of room again."""
        by_free = max(self.plan.min_free_bytes, self.space_floor) + margin - usage.free
        allowed_used = usage.total * self.plan.max_usage_percent / 100.0
        by_percent = usage.used + margin - allowed_used
        return max(0, int(max(by_free, by_percent)))


@dataclass(frozen=True, slots=True)
class VolumeView:
    """A volume's state for the API and metrics (a copy, safe to read anywhere)."""

    id: str | None
    path: Path
    configured_path: Path
    configured: bool
    priority: int
    state: VolumeState
    reason: str
    since: datetime
    total_bytes: int | None
    used_bytes: int | None
    free_bytes: int | None
    max_usage_percent: float
    min_free_bytes: int
    write_errors: int
    bytes_deleted: int
    segments_deleted: int


class VolumePool:
    """All recording volumes, their states, and segment placement. Thread-safe."""

    def __init__(
        self,
        plans: tuple[VolumePlan, ...],
        *,
        policy: PlacementPolicy = PlacementPolicy.FILL,
        on_no_room: Callable[[], None] = lambda: None,
        known_paths: dict[str, str] | None = None,
    ) -> None:
        """`known_paths`: volume id → the path it was last seen at (from the database), so a
        disk whose identity file has gone missing at a known path is reported, not replaced,
        and a disk attached at another path is found there again after a restart."""
        self._lock = threading.RLock()
        self._policy = policy
        self._on_no_room = on_no_room
        self._volumes: list[Volume] = [Volume(plan=plan, path=plan.path) for plan in plans]
        self._known = dict(known_paths or {})
        self.exhausted = False  # set by retention when it found nothing left to delete
        self._pending: list[VolumeChange] = []
        self._failed: dict[str, None] = {}  # files whose write failure was counted (ordered)
        self._vacated: dict[Path, str] = {}  # path → the volume that was there, attached elsewhere
        for volume_id, path in self._known.items():
            if not any(v.plan.path == Path(path) for v in self._volumes):
                self._volumes.append(
                    Volume(plan=_extra_plan(Path(path)), path=Path(path), id=volume_id,
                           configured=False, reason="attached at a path not in the configuration")
                )  # fmt: skip

    # -- queries --------------------------------------------------------------------------

    def views(self) -> list[VolumeView]:
        with self._lock:
            return [_view(v) for v in self._volumes]

    def view(self, volume_id: str) -> VolumeView:
        with self._lock:
            return _view(self._by_id(volume_id))

    def roots(self) -> list[Path]:
        """Directories recordings may be served from: every volume that can be read."""
        with self._lock:
            return [v.path for v in self._volumes if v.id is not None and v.state in USABLE]

    def usable(self) -> dict[str, Path]:
        """Volume id → path, for volumes that can be read and cleaned."""
        with self._lock:
            return {v.id: v.path for v in self._volumes if v.id is not None and v.state in USABLE}

    def volume_of(self, location: str | Path) -> str | None:
        """The id of the volume `location` lies on (by path), if any."""
        path = Path(location)
        with self._lock:
            for volume in self._volumes:
                if volume.id is not None and path.is_relative_to(volume.path):
                    return volume.id
        return None

    def needing_space(self, margin_for: Callable[[Usage], int]) -> dict[str, int]:
        """When no volume can take a new segment with `margin_for(usage)` bytes of room: volume
        id → bytes retention should free there (every usable volume, so that the oldest
        recordings anywhere go first). Empty when some volume still has room."""
        with self._lock:
            candidates = [v for v in self._volumes if v.id is not None and v.state in USABLE]
            wanted: dict[str, int] = {}
            for volume in candidates:
                if volume.usage is None:
                    continue
                need = volume.bytes_to_free(volume.usage, margin_for(volume.usage))
                if need == 0:
                    return {}
                wanted[volume.id] = need  # type: ignore[index]
            return wanted

    def _by_id(self, volume_id: str) -> Volume:
        matches = [v for v in self._volumes if v.id is not None and v.id.startswith(volume_id)]
        exact = [v for v in matches if v.id == volume_id]
        if exact:
            return exact[0]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(v.id for v in self._volumes if v.id is not None) or "none"
        if not matches:
            raise VolumeError(f"no volume has id {volume_id!r} (known: {known})")
        raise VolumeError(f"volume id {volume_id!r} is ambiguous (known: {known})")

    # -- placement (GStreamer streaming threads) --------------------------------------------

    def place(self, stream: str, start: datetime) -> tuple[Path, str]:
        """Claim the path of `stream`'s next segment on the best volume with room; return it
        and the volume's id. Raises `NoSpace` when no volume can take it (retention is asked
        to make room at once). File-system calls happen outside the lock: a disk that hangs
        holds up only the streams placing onto it, not the pool."""
        with self._lock:
            candidates = [(v, v.path, v.id) for v in self._in_policy_order()]
        for volume, path, volume_id in candidates:
            if volume_id is None or self._refresh(volume, path) is not None:
                continue
            try:
                return claim_segment_path(path, stream, start), volume_id
            except OSError as exc:
                with self._lock:
                    self._fail(volume, exc)
        with self._lock:
            states = "; ".join(f"{v.path}: {v.state} ({v.reason})" for v in self._volumes)
            exhausted = self.exhausted
            usable = any(v.state in USABLE for v in self._volumes)
        if not usable:
            # Nothing to wait for: the file open now must not stay on a volume leaving.
            raise NoSpace(f"no usable volume ({states})", exhausted=True)
        self._on_no_room()
        if exhausted:
            raise NoSpace(f"no space: every volume is full and nothing can be deleted ({states})",
                          exhausted=True)  # fmt: skip
        raise NoSpace(f"no volume has room ({states})", exhausted=False)

    def _in_policy_order(self) -> list[Volume]:
        # Full volumes too: retention may have made room since the last scan.
        ready = [v for v in self._volumes if v.state in USABLE and v.id is not None]
        if self._policy is PlacementPolicy.SPREAD:
            ready.sort(key=lambda v: (v.usage.percent if v.usage else 100.0, v.plan.priority))
        else:
            ready.sort(key=lambda v: v.plan.priority)  # stable: configuration order breaks ties
        return ready

    def _refresh(self, volume: Volume, path: Path) -> str | None:
        """Re-read the usage of `volume` (at `path`, read under the lock by the caller); None
        if it may take a segment, else why not. Call without holding the lock."""
        try:
            usage: Usage | OSError = _usage(path)
        except OSError as exc:
            usage = exc
        with self._lock:
            if volume.path != path or volume.state not in USABLE:
                return volume.reason  # it moved or left meanwhile
            if isinstance(usage, OSError):
                self._fail(volume, usage)
                return volume.reason
            volume.usage = usage
            full = volume.over_threshold(usage)
            if full is not None:
                self._set(volume, VolumeState.FULL, full)
            elif volume.state is VolumeState.FULL:
                self._set(volume, VolumeState.ONLINE, "ok")
            return full

    def refresh(self) -> None:
        """Re-read the usage of every usable volume (after retention deleted files)."""
        with self._lock:
            usable = [(v, v.path) for v in self._volumes if v.state in USABLE and v.id is not None]
        for volume, path in usable:
            self._refresh(volume, path)

    # -- faults reported by recorders --------------------------------------------------------

    def write_failed(self, location: str, *, no_space: bool, message: str) -> str | None:
        """A recorder could not write `location`: count it against its volume, which is marked
        full (no space: retention runs at once) or failed. Returns the volume's id. Only the
        first report of a file counts (its muxer and its sink both complain)."""
        with self._lock:
            volume_id = self.volume_of(location)
            volume = next((v for v in self._volumes if v.id == volume_id), None)
            if volume is None:
                return None
            if location in self._failed:
                return volume_id
            self._failed[location] = None
            while len(self._failed) > 256:
                del self._failed[next(iter(self._failed))]
            path = volume.path
        usage: Usage | None = None
        if no_space:
            try:
                usage = _usage(path)
            except OSError:
                usage = None
        with self._lock:
            volume.write_errors += 1
            if no_space:
                if usage is not None:
                    volume.usage = usage
                    volume.space_floor = usage.free + max(usage.total // 100, ENOSPC_HEADROOM)
                self._set(volume, VolumeState.FULL, f"write failed: {message}")
            elif volume.state in USABLE:
                self._set(volume, VolumeState.FAILED, f"write failed: {message}")
        if no_space:
            self._on_no_room()
        return volume_id

    def count_deleted(self, volume_id: str, segments: int, size: int) -> None:
        with self._lock:
            for volume in self._volumes:
                if volume.id == volume_id:
                    volume.segments_deleted += segments
                    volume.bytes_deleted += size

    # -- scanning (a worker thread) ----------------------------------------------------------

    def scan(self) -> list[VolumeChange]:
        """Look at every volume (not ejecting) and update its state; returns what changed.
        The looking (stat, identity, statvfs) happens outside the lock."""
        with self._lock:
            todo = [
                (v, v.path, v.plan, self._expected_at(v), v.configured)
                for v in self._volumes if v.state is not VolumeState.EJECTING
            ]  # fmt: skip
        seen = [(volume, path, _observe(path, plan, expected, configured))
                for volume, path, plan, expected, configured in todo]  # fmt: skip
        with self._lock:
            for volume, path, observation in seen:
                if volume.path == path and volume.state is not VolumeState.EJECTING:
                    self._apply(volume, observation)
            return self.take_changes()

    def _apply(self, volume: Volume, seen: _Observation) -> None:
        """Update `volume` from what `_observe` found (under the lock)."""
        if seen.gone is not None:
            self._go_away(volume, seen.gone)
            return
        if seen.failed is not None:
            self._set(volume, VolumeState.FAILED, seen.failed)
            return
        identity, usage = seen.identity, seen.usage
        assert identity is not None and usage is not None
        if seen.created:
            logger.info("volume %s: new volume %s", volume.path, identity.id)
        if volume.id is not None and identity.id != volume.id:
            if volume.state in USABLE:
                self._go_away(volume, f"{volume.path} now holds another volume ({identity.id})")
            volume.id, volume.ejected = identity.id, False  # the slot holds another disk now
        if volume.ejected:
            return  # still there: it stays offline until it has been removed (or attached)
        newly = volume.id is None or volume.device != seen.device or volume.state not in USABLE
        if newly and not seen.writable:
            self._set(volume, VolumeState.FAILED, f"{volume.path} is not writable")
            return
        volume.id, volume.device = identity.id, seen.device
        self._known[identity.id] = str(volume.path)
        volume.usage = usage
        full = volume.over_threshold(usage)
        if full is not None:
            self._set(volume, VolumeState.FULL, full)
        elif volume.state is not VolumeState.FAILED or volume.reason.startswith("write failed"):
            self._set(volume, VolumeState.ONLINE, "ok")

    def _expected_at(self, volume: Volume) -> str | None:
        if volume.id is not None:
            return volume.id
        if volume.path in self._vacated:
            return self._vacated[volume.path]
        return next((vid for vid, p in self._known.items() if Path(p) == volume.path), None)

    def _go_away(self, volume: Volume, reason: str) -> None:
        volume.ejected = False  # seen gone: the next time it appears it is attached again
        volume.device = None
        volume.usage = None
        self._set(volume, VolumeState.OFFLINE, reason)

    def _fail(self, volume: Volume, exc: OSError) -> None:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            self._go_away(volume, f"{volume.path} is gone ({exc.strerror})")
        else:
            self._set(volume, VolumeState.FAILED, f"{volume.path}: {exc.strerror or exc}")

    def _set(self, volume: Volume, state: VolumeState, reason: str) -> None:
        if volume.state is state and volume.reason == reason:
            return
        old = volume.state
        volume.state, volume.reason = state, reason
        if old is not state:
            volume.since = utc_now()
            level = (
                logging.INFO
                if state in (VolumeState.ONLINE, VolumeState.EJECTING)
                else logging.WARNING
            )
            logger.log(
                level, "volume %s (%s): %s -> %s (%s)", volume.path, volume.id, old, state, reason
            )
            self._pending.append(VolumeChange(volume.id or "", volume.path, old, state, reason))

    def take_changes(self) -> list[VolumeChange]:
        """State changes (scans, placement, write errors, eject, attach) since last asked."""
        with self._lock:
            pending, self._pending = self._pending, []
            return pending

    # -- eject and attach --------------------------------------------------------------------

    def start_eject(self, volume_id: str) -> Volume:
        """Stop placing segments on the volume; the caller moves its writers on and waits."""
        with self._lock:
            volume = self._by_id(volume_id)
            if volume.state in (VolumeState.OFFLINE,):
                raise VolumeError(f"volume {volume.id} is already offline ({volume.reason})")
            self._set(volume, VolumeState.EJECTING, "eject requested")
            return volume

    def finish_eject(self, volume_id: str) -> None:
        with self._lock:
            volume = self._by_id(volume_id)
            volume.ejected = True
            volume.usage = None
            self._set(volume, VolumeState.OFFLINE, "ejected: safe to unmount")

    def prepare_attach(self, volume_id: str, path: Path | None) -> tuple[Volume, Path | None]:
        """Check that `path` (default: where the volume was last seen) holds volume
        `volume_id`; returns the volume and its previous path when it moved."""
        with self._lock:
            volume = self._by_id(volume_id)
            target = path if path is not None else volume.path
        try:
            identity = read_identity(target)
        except (OSError, VolumeIdentityError) as exc:
            raise VolumeError(f"cannot read the identity at {target}: {exc}") from exc
        with self._lock:
            if identity is None:
                raise VolumeError(f"{target} holds no Vigil volume (no identity file)")
            if identity.id != volume.id:
                raise VolumeError(f"{target} holds volume {identity.id}, not {volume.id}")
            if volume.state in USABLE and target == volume.path:
                raise VolumeError(f"volume {volume.id} is already attached at {target}")
            clash = next(
                (v for v in self._volumes
                 if v is not volume and v.path == target and v.state in USABLE),
                None,
            )  # fmt: skip
            if clash is not None:
                raise VolumeError(f"{target} is in use by volume {clash.id}")
            previous = volume.path if target != volume.path else None
            return volume, previous

    def finish_attach(self, volume_id: str, path: Path) -> VolumeView:
        """Bring the volume online at `path` (its recordings have been reindexed there)."""
        with self._lock:
            volume = self._by_id(volume_id)
            if path != volume.path:
                self._vacated[volume.path] = volume_id
                if volume.configured:
                    # The configured slot stays; the disk now lives at another path.
                    slot = Volume(plan=volume.plan, path=volume.plan.path, configured=True,
                                  reason="its volume was attached elsewhere")  # fmt: skip
                    self._volumes.append(slot)
                    volume.configured = False
                volume.path = path
                volume.plan = replace(volume.plan, path=path, implicit=False)
            volume.ejected = False
            volume.device = None
            self._known[volume_id] = str(path)
            plan, expected = volume.plan, self._expected_at(volume)
        seen = _observe(path, plan, expected, configured=False)
        with self._lock:
            self._apply(volume, seen)
            if volume.state not in USABLE:
                raise VolumeError(f"volume {volume.id} at {path}: {volume.state} ({volume.reason})")
            return _view(volume)


@dataclass(frozen=True, slots=True)
class _Observation:
    """What one look at a volume's directory found (made without the pool's lock)."""

    gone: str | None = None  # not there (why)
    failed: str | None = None  # there but failing (why)
    identity: VolumeIdentity | None = None
    created: bool = False  # the identity was written just now
    device: int | None = None
    writable: bool = False
    usage: Usage | None = None


def _observe(path: Path, plan: VolumePlan, expected: str | None, configured: bool) -> _Observation:
    """Look at the directory of a volume: is it there, whose is it, how full. `expected` is the
    id that was last seen there (a missing identity then means the disk is not mounted);
    only a `configured` volume's directory may be given a new identity."""
    try:
        if plan.implicit:
            path.mkdir(parents=True, exist_ok=True)
        info = os.stat(path)
    except FileNotFoundError:
        return _Observation(gone=f"{path} does not exist (not mounted?)")
    except OSError as exc:
        return _error(path, exc)
    created = False
    try:
        identity = read_identity(path)
        if identity is None:
            if expected is not None:
                return _Observation(
                    gone=f"{path} no longer holds volume {expected} (identity file missing: "
                    "disk not mounted?)"
                )
            if not configured:
                return _Observation(gone=f"{path} holds no Vigil volume")
            if plan.require_mount and _mount_point(path) == Path("/"):
                return _Observation(
                    gone=f"{path} is on the root file system, not on a mounted disk "
                    "(require_mount): nothing is recorded there until one is mounted"
                )
            identity, created = create_identity(path), True
        usage = _usage(path)
    except VolumeIdentityError as exc:
        return _Observation(failed=str(exc))
    except OSError as exc:
        return _error(path, exc)
    return _Observation(identity=identity, created=created, device=info.st_dev,
                        writable=os.access(path, os.W_OK), usage=usage)  # fmt: skip


def _error(path: Path, exc: OSError) -> _Observation:
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return _Observation(gone=f"{path} is gone ({exc.strerror})")
    return _Observation(failed=f"{path}: {exc.strerror or exc}")


def _usage(path: Path) -> Usage:
    stats = os.statvfs(path)
    total = stats.f_blocks * stats.f_frsize
    free = stats.f_bavail * stats.f_frsize
    used = total - stats.f_bfree * stats.f_frsize
    return Usage(total=total, used=used, free=free)


def _mount_point(path: Path) -> Path:
    """The mount point of the file system `path` is on."""
    current = path.resolve()
    while not os.path.ismount(current):
        current = current.parent
    return current


def _extra_plan(path: Path) -> VolumePlan:
    return VolumePlan(path=path)


def _view(volume: Volume) -> VolumeView:
    usage = volume.usage
    return VolumeView(
        id=volume.id, path=volume.path, configured_path=volume.plan.path,
        configured=volume.configured, priority=volume.plan.priority, state=volume.state,
        reason=volume.reason, since=volume.since,
        total_bytes=usage.total if usage else None, used_bytes=usage.used if usage else None,
        free_bytes=usage.free if usage else None,
        max_usage_percent=volume.plan.max_usage_percent,
        min_free_bytes=volume.plan.min_free_bytes, write_errors=volume.write_errors,
        bytes_deleted=volume.bytes_deleted, segments_deleted=volume.segments_deleted,
    )  # fmt: skip


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
