"""The chaos benchmark's faults: which, when and how long (planned from a seeded RNG), and
carrying each one out against the rig, noting exactly when it began and ended.

Faults come one at a time, each after a random quiet spell: the video a stream lost can then be
laid at one fault's door, and what is lost outside every fault is the baseline. Kinds are
drawn from a shuffled bag (every kind once, in random order, then again), so that even a short
run sees each kind.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from benchmarks.chaos_rig import CameraGroup, Disk, LockHolder
from benchmarks.chaos_service import VigilService

KINDS = ("vigil_kill", "camera_restart", "net_cut", "volume_pull", "db_lock")
LABELS = {
    "vigil_kill": "Vigil killed (SIGKILL), restarted by the systemd stand-in",
    "camera_restart": "a group's cameras restarted (simulator stopped, down, started)",
    "net_cut": "a group's camera link cut (`ip link set … down` in its namespace)",
    "volume_pull": "a recording volume pulled (`umount -l`), put back later",
    "db_lock": "SQLite's write lock held by another process (`BEGIN IMMEDIATE`)",
}
# Seconds each lasts (uniform): cameras down, link cut, disk out, lock held. The lock range
# straddles Vigil's busy timeout (5 s). A kill lasts as long as systemd takes to restart.
DURATIONS = {
    "vigil_kill": (0.0, 0.0),
    "camera_restart": (1.0, 15.0),
    "net_cut": (3.0, 30.0),
    "volume_pull": (5.0, 45.0),
    "db_lock": (2.0, 15.0),
}
# Faults during which a camera is down or unreachable: no stream of it can record, and a
# stream is only expected to write again once its camera is back.
CAMERA_FAULTS = ("camera_restart", "net_cut")


@dataclass(frozen=True)
class PlannedFault:
    gap_s: float  # quiet time before it, from the end of the previous fault
    kind: str
    target: int  # camera group or disk (1-based); 0 for Vigil and its database
    seconds: float


def plan(seed: int, kinds: list[str], groups: int, disks: int, gaps: tuple[float, float],
         count: int = 1000) -> list[PlannedFault]:  # fmt: skip
    """`count` faults (more than a run has time for: the run stops taking them when its time is
    up), the same for the same arguments."""
    rng = random.Random(seed)
    bag: list[str] = []
    planned = []
    for _ in range(count):
        if not bag:
            bag = list(kinds)
            rng.shuffle(bag)
        kind = bag.pop()
        target = {"camera_restart": groups, "net_cut": groups, "volume_pull": disks}.get(kind, 0)
        low, high = DURATIONS[kind]
        planned.append(PlannedFault(
            gap_s=rng.uniform(*gaps), kind=kind,
            target=rng.randint(1, target) if target else 0, seconds=rng.uniform(low, high),
        ))  # fmt: skip
    return planned


@dataclass(frozen=True)
class Fault:
    """One fault as it happened (wall-clock seconds). `own` is the stretch in which the fault
    itself forbids recording the `streams` (camera down, link cut, Vigil dead until systemd
    starts it again); None when nothing has to be lost (a pulled volume while another one has
    room, a locked database)."""

    kind: str
    target: int
    seconds: float  # as planned
    start: float
    end: float
    own: tuple[float, float] | None
    streams: tuple[str, ...]

    @property
    def name(self) -> str:
        where = {"camera_restart": "group", "net_cut": "group", "volume_pull": "volume"}
        return self.kind + (f" {where[self.kind]} {self.target}" if self.kind in where else "")


class Injector:
    """Carries out planned faults; blocks for each fault's length."""

    def __init__(self, service: VigilService, groups: list[CameraGroup], disks: list[Disk],
                 lock: LockHolder) -> None:  # fmt: skip
        self.service, self.groups, self.disks, self.lock = service, groups, disks, lock
        self.streams = tuple(s for g in groups for s in g.streams)

    def inject(self, fault: PlannedFault) -> Fault:
        kind, seconds = fault.kind, fault.seconds
        own: tuple[float, float] | None
        streams = self.streams
        if kind == "vigil_kill":
            start, end = self.service.kill()
            own = (start, end)
        elif kind in CAMERA_FAULTS:
            group = self.groups[fault.target - 1]
            streams = tuple(group.streams)
            if kind == "camera_restart":
                start = time.time()
                group.sim.stop()
                time.sleep(seconds)
                end = group.sim.start()
            else:
                start = group.cut()
                time.sleep(seconds)
                end = group.restore()
            own = (start, end)
        elif kind == "volume_pull":
            disk = self.disks[fault.target - 1]
            start = disk.pull()
            time.sleep(seconds)
            end = disk.put_back()
            own = None
        elif kind == "db_lock":
            start, end = self.lock.hold(seconds)
            own = None
        else:
            raise ValueError(kind)
        return Fault(kind, fault.target, seconds, start, end, own, streams)

    def restore_all(self) -> None:
        """Undo whatever fault was under way when the run was interrupted (each step on its
        own: one that fails does not keep the others from being undone)."""
        self.lock.release()
        for group in self.groups:
            if group.made:
                group.restore(check=False)
        for disk in self.disks:
            if disk.pulled and disk.mounted:
                disk.put_back()
