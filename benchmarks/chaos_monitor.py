"""Watching the recordings from outside while the chaos runs: when each stream last wrote to
disk, read from the files themselves (never from Vigil's state), every couple of seconds.

The disks are read at their hidden mount points (`.diskN`), which stay mounted while a volume's
slot is pulled, so a file still being finished on a pulled volume is seen too.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path


def _newest_dir(path: Path) -> Path | None:
    try:
        names = [e.name for e in os.scandir(path) if e.is_dir() and not e.name.startswith(".")]
    except FileNotFoundError:
        return None
    return path / max(names) if names else None


def last_write(disks: list[Path], stream: str) -> float:
    """The newest modification time of `stream`'s files in its newest hour folder on any disk
    (0 if it has none): when Vigil last wrote video of it."""
    newest = 0.0
    for disk in disks:
        day = _newest_dir(disk / stream)
        hour = _newest_dir(day) if day else None
        if hour is None:
            continue
        try:
            for entry in os.scandir(hour):
                if entry.name.endswith(".mp4"):
                    newest = max(newest, entry.stat().st_mtime)
        except FileNotFoundError:
            continue
    return newest


@dataclass(frozen=True)
class Sample:
    at: float
    last_write: dict[str, float]


class WriteMonitor:
    """Samples every stream's last write every `every` seconds in a thread of its own."""

    def __init__(self, disks: list[Path], streams: list[str], every: float = 2.0) -> None:
        self.disks, self.streams, self.every = disks, streams, every
        self.samples: list[Sample] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._done.is_set():
            at = time.time()
            self.samples.append(Sample(at, {s: last_write(self.disks, s) for s in self.streams}))
            self._done.wait(max(0.0, at + self.every - time.time()))

    def silent(self, quiet_s: float) -> list[str]:
        """Streams not written for `quiet_s` seconds at the last sample."""
        if not self.samples:
            return list(self.streams)
        last = self.samples[-1]
        return [s for s, w in last.last_write.items() if last.at - w > quiet_s]

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(10)
