"""Watching the recordings from outside while the chaos runs: when each stream last wrote to
disk, read from the files themselves (never from Vigil's state), every couple of seconds; and,
every ten seconds, which files on disk the index does not list (read-only, as an operator
would: WAL readers never wait for the writer).

The disks are read at their hidden mount points (`.diskN`), which stay mounted while a volume's
slot is pulled, so a file still being finished on a pulled volume is seen too.
"""

from __future__ import annotations

import os
import sqlite3
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


def segment_files(disks: list[tuple[Path, Path]]) -> list[str]:
    """Every segment file on the (disk, slot) pairs, named by its slot path as Vigil names it
    (folders starting with a dot, such as `.quarantine`, left out)."""
    found = []
    for disk, slot in disks:
        for root, dirs, names in os.walk(disk):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            relative = Path(root).relative_to(disk)
            found += [str(slot / relative / n) for n in names if n.endswith(".mp4")]
    return found


class WriteMonitor:
    """Samples every stream's last write every `every` seconds, and the files the index does
    not list every `index_every` seconds, in a thread of its own."""

    def __init__(self, disks: list[tuple[Path, Path]], streams: list[str], db: Path,
                 every: float = 2.0, index_every: float = 10.0) -> None:  # fmt: skip
        self.disks, self.streams, self.db = disks, streams, db
        self.every, self.index_every = every, index_every
        self.samples: list[Sample] = []
        # path -> (first, last) time a check found the file on disk and not in the index
        self.unlisted: dict[str, tuple[float, float]] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        next_index = 0.0
        roots = [disk for disk, _slot in self.disks]
        while not self._done.is_set():
            at = time.time()
            self.samples.append(Sample(at, {s: last_write(roots, s) for s in self.streams}))
            if at >= next_index:
                next_index = at + self.index_every
                self._check_index(at)
            self._done.wait(max(0.0, at + self.every - time.time()))

    def _check_index(self, at: float) -> None:
        try:
            connection = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)
            try:
                listed = {str(p) for (p,) in connection.execute("SELECT path FROM segments")}
            finally:
                connection.close()
        except sqlite3.Error:
            return  # not there yet, or being created: the next check will do
        for path in segment_files(self.disks):
            if path not in listed:
                first, _last = self.unlisted.get(path, (at, at))
                self.unlisted[path] = (first, at)

    def unlisted_for(self, seconds: float) -> dict[str, tuple[float, float]]:
        """Files that checks `seconds` or more apart found on disk and not in the index."""
        return {p: (a, b) for p, (a, b) in self.unlisted.items() if b - a >= seconds}

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
