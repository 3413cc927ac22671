"""Real mounts for storage tests: small tmpfs "disks", bind mounts to plug them in and out.

A tmpfs loses its content when unmounted, so a test that unplugs a disk and plugs it in again
elsewhere mounts the tmpfs once at a hidden place (the "disk") and bind-mounts it where Vigil
looks (the "slot"): unmounting the bind is a real unmount for Vigil, and the disk keeps its
files for the next bind. Everything mounted is unmounted on exit, lazily if busy.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def can_mount() -> bool:
    return os.geteuid() == 0


requires_mount = pytest.mark.skipif(not can_mount(), reason="mounting needs root")


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, text=True, timeout=30)


def is_mounted(path: Path) -> bool:
    return os.path.ismount(path)


class Mounts:
    """Mounts made by one test, undone in reverse order."""

    def __init__(self) -> None:
        self._mounted: list[Path] = []

    def tmpfs(self, path: Path, size_mib: int) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", f"size={size_mib}m,mode=0755", "tmpfs", str(path))
        self._mounted.append(path)
        return path

    def bind(self, disk: Path, slot: Path) -> Path:
        slot.mkdir(parents=True, exist_ok=True)
        _run("mount", "--bind", str(disk), str(slot))
        self._mounted.append(slot)
        return slot

    def unmount(self, path: Path, *, lazy: bool = False) -> None:
        _run("umount", *(["-l"] if lazy else []), str(path))
        if path in self._mounted:
            self._mounted.remove(path)

    def close(self) -> None:
        for path in reversed(self._mounted):
            while is_mounted(path):
                result = subprocess.run(["umount", str(path)], capture_output=True, check=False)
                if result.returncode != 0:
                    subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)
        self._mounted.clear()


@contextmanager
def mounts() -> Iterator[Mounts]:
    made = Mounts()
    try:
        yield made
    finally:
        made.close()


def fill(path: Path, leave_bytes: int, name: str = "ballast.bin") -> Path:
    """Write a file on `path`'s file system so that about `leave_bytes` stay free."""
    stats = os.statvfs(path)
    free = stats.f_bavail * stats.f_frsize
    size = max(0, free - leave_bytes)
    target = path / name
    with open(target, "wb") as handle:
        chunk = b"\0" * (1 << 20)
        while size > 0:
            handle.write(chunk[: min(size, len(chunk))])
            size -= min(size, len(chunk))
    return target
