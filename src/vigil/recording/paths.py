"""Where a segment lives on disk: `<root>/<stream>/<YYYY-MM-DD>/<HH>/<MM.SS>.mp4` (UTC)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path


def segment_path(root: Path, stream: str, start: datetime) -> Path:
    """The canonical path of a segment of `stream` starting at `start` (any timezone)."""
    utc = start.astimezone(UTC)
    return root / stream / utc.strftime("%Y-%m-%d") / utc.strftime("%H") / utc.strftime("%M.%S.mp4")


def claim_segment_path(root: Path, stream: str, start: datetime) -> Path:
    """Create the folders and return a path no other file has: never overwrite a recording.

    Two segments can start within the same second (a reconnect, a restart): the second one
    gets `MM.SS-1.mp4`, then `-2`, … The file is created empty here so that the claim is atomic.
    """
    path = segment_path(root, stream, start)
    path.parent.mkdir(parents=True, exist_ok=True)
    candidate, n = path, 0
    while True:
        try:
            fd = os.open(candidate, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            n += 1
            candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
            continue
        os.close(fd)
        return candidate


def parse_segment_path(root: Path, path: Path) -> tuple[str, datetime] | None:
    """(stream, start) recovered from a segment's path under `root`, or None if it isn't one."""
    try:
        stream, day, hour, name = path.relative_to(root).parts
    except ValueError:
        return None
    stem = name.removesuffix(".mp4").split("-", 1)[0]
    try:
        return stream, datetime.strptime(f"{day} {hour} {stem}", "%Y-%m-%d %H %M.%S").replace(
            tzinfo=UTC
        )
    except ValueError:
        return None
