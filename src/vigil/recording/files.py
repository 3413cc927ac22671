"""Which recorded file a viewer may read: the path comes from the index, never from a request,
and must be a regular file inside a recording root (a row pointing elsewhere — a tampered or
restored database, a symlink planted on disk — is refused)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from vigil.store.models import SegmentStatus
from vigil.store.recordings import SegmentRow


class SegmentFileUnavailable(LookupError):
    """The segment's file cannot be served; the message says why without naming paths."""


def segment_file(row: SegmentRow, roots: Sequence[Path]) -> Path:
    """The row's file, symlinks resolved, if it can be served; else `SegmentFileUnavailable`."""
    if row.status is SegmentStatus.MISSING:
        # The row's note is not repeated: it may name where the file went on disk.
        raise SegmentFileUnavailable(
            f"segment {row.id}'s file is missing (found gone or unusable by start-up repair)"
        )
    try:
        real = row.path.resolve(strict=True)
    except (OSError, RuntimeError):  # gone, unreadable directory, symlink loop
        raise SegmentFileUnavailable(f"segment {row.id}'s file is no longer on disk") from None
    if not any(real.is_relative_to(root.resolve()) for root in roots):
        raise SegmentFileUnavailable(f"segment {row.id}'s file is not inside a recording root")
    if not real.is_file():
        raise SegmentFileUnavailable(f"segment {row.id}'s file is not a regular file")
    return real
