"""Start-up repair: close the segment rows a crash left open, from the files on disk.

Run it before recording starts (the files must not be growing) and in a thread: probing is
blocking file I/O. It never deletes a file. Per open row:

- the file holds at least one complete fragment: the row is closed as 'repaired' with the
  probed duration (end = start + duration), codec, picture size and file size;
- the file is gone: the row is marked 'missing';
- the file is empty, unreadable, or holds no complete fragment: it is moved into a quarantine
  directory and the row is marked 'missing' with a note saying where the file went.

Quarantine directory: `quarantine_dir_for(path)`. The default is ``.quarantine`` beside the
file (same directory, so the move is a rename on the same filesystem and needs no knowledge of
the recording root). A caller that knows its volume roots passes `quarantine_under(roots)`,
which mirrors the file's place under its root: ``<root>/.quarantine/<stream>/<day>/<hour>/``.
Whoever scans recording directories must skip directories whose name starts with a dot.

A file cut inside a moof is trimmed back to its last complete box: those bytes hold no media
(the mdat after them was never written), and ffprobe 5.1 refuses to open such a file at all,
so without the trim the whole segment would be lost to playback.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from pathlib import Path

from vigil.recording.mp4probe import Mp4Error, Mp4Info, probe_mp4
from vigil.store.models import SegmentStatus
from vigil.store.recordings import SegmentRow, SegmentStore

QUARANTINE_DIR_NAME = ".quarantine"

QuarantineRule = Callable[[Path], Path]


class RepairAction(StrEnum):
    """What repair did with one open row."""

    REPAIRED = "repaired"  # closed from what the file holds
    MISSING = "missing"  # no file: row marked missing
    QUARANTINED = "quarantined"  # unusable file moved aside: row marked missing
    FAILED = "failed"  # could not be handled (e.g. the move failed): row left open


@dataclass(frozen=True, slots=True)
class RepairOutcome:
    """The fate of one open row."""

    segment_id: int
    stream: str
    path: Path
    action: RepairAction
    detail: str
    duration_s: float | None = None
    trimmed_bytes: int = 0
    moved_to: Path | None = None


@dataclass(frozen=True, slots=True)
class RepairReport:
    """Every outcome of one repair run, in the order the rows were handled."""

    outcomes: tuple[RepairOutcome, ...]

    def count(self, action: RepairAction) -> int:
        return sum(1 for outcome in self.outcomes if outcome.action is action)

    @property
    def repaired(self) -> int:
        return self.count(RepairAction.REPAIRED)

    @property
    def missing(self) -> int:
        return self.count(RepairAction.MISSING)

    @property
    def quarantined(self) -> int:
        return self.count(RepairAction.QUARANTINED)

    @property
    def failed(self) -> int:
        return self.count(RepairAction.FAILED)

    def summary(self) -> str:
        """One line for the log, e.g. ``"3 open segments: 2 repaired, 1 missing, ..."``."""
        counts = ", ".join(f"{self.count(action)} {action.value}" for action in RepairAction)
        return f"{len(self.outcomes)} open segments: {counts}"


def sibling_quarantine(path: Path) -> Path:
    """The default rule: ``.quarantine`` in the file's own directory."""
    return path.parent / QUARANTINE_DIR_NAME


def quarantine_under(roots: Iterable[Path]) -> QuarantineRule:
    """A rule putting a file found under one of `roots` into ``<root>/.quarantine/`` at the
    same relative place; files under none of them fall back to `sibling_quarantine`."""
    known = tuple(roots)

    def rule(path: Path) -> Path:
        for root in known:
            if path.is_relative_to(root):
                return root / QUARANTINE_DIR_NAME / path.parent.relative_to(root)
        return sibling_quarantine(path)

    return rule


def repair_open_segments(
    store: SegmentStore,
    *,
    quarantine_dir_for: QuarantineRule | None = None,
    trim_cut_moof: bool = True,
    only_under: Iterable[Path] | None = None,
    being_written: Iterable[str] = (),
) -> RepairReport:
    """Close, mark missing or quarantine every row still 'open' (see the module docstring).

    With `only_under`, rows whose file lies under none of those directories are left open: a
    volume that is offline now must not have its files declared missing; they are repaired
    when it is attached again. Rows of `being_written` (files a recorder has open now) are no
    crash's leftovers and are left alone: a volume that comes back takes new segments at once,
    and quarantining one moved a live file away with the video still being written into it."""
    rule = quarantine_dir_for or sibling_quarantine
    roots = None if only_under is None else tuple(only_under)
    live = {Path(location) for location in being_written}
    rows = [
        row for row in store.open_segments()
        if (roots is None or any(row.path.is_relative_to(root) for root in roots))
        and row.path not in live
    ]  # fmt: skip
    outcomes = [_repair(store, row, rule, trim_cut_moof) for row in rows]
    return RepairReport(outcomes=tuple(outcomes))


def _repair(
    store: SegmentStore, row: SegmentRow, rule: QuarantineRule, trim_cut_moof: bool
) -> RepairOutcome:
    if not row.path.exists():
        store.mark_missing(row.id, note="file not found at start-up repair")
        return _outcome(row, RepairAction.MISSING, "file not found")
    if not row.path.is_file():
        return _outcome(row, RepairAction.FAILED, "not a regular file; left in place")
    try:
        info = probe_mp4(row.path)
    except (Mp4Error, OSError) as exc:
        problem = str(exc)
    else:
        if info.duration_s > 0:
            detail = f"{info.duration_s:.3f} s playable, {info.fragments} complete fragments"
            trimmed = 0
            if trim_cut_moof:
                try:
                    trimmed = trim_partial_moof(row.path, info)
                except OSError as exc:
                    detail += f"; could not trim its cut moof: {exc}"
                else:
                    if trimmed:
                        detail += f"; trimmed {trimmed} bytes of a cut moof"
            store.close_segment(
                row.id,
                end=row.start + timedelta(seconds=info.duration_s),
                duration_s=info.duration_s,
                size_bytes=info.file_size - trimmed,
                codec=info.codec,
                width=info.width,
                height=info.height,
                status=SegmentStatus.REPAIRED,
            )
            return _outcome(
                row, RepairAction.REPAIRED, detail, duration_s=info.duration_s, trimmed=trimmed
            )
        problem = f"{row.path}: no complete fragment ({info.file_size} bytes)"
    try:
        moved_to = move_aside(row.path, rule(row.path))
    except OSError as exc:
        return _outcome(row, RepairAction.FAILED, f"{problem}; could not quarantine: {exc}")
    store.mark_missing(row.id, note=f"unusable at start-up repair ({problem}); moved to {moved_to}")
    return _outcome(row, RepairAction.QUARANTINED, problem, moved_to=moved_to)


def _outcome(
    row: SegmentRow,
    action: RepairAction,
    detail: str,
    *,
    duration_s: float | None = None,
    trimmed: int = 0,
    moved_to: Path | None = None,
) -> RepairOutcome:
    return RepairOutcome(
        segment_id=row.id,
        stream=row.stream,
        path=row.path,
        action=action,
        detail=detail,
        duration_s=duration_s,
        trimmed_bytes=trimmed,
        moved_to=moved_to,
    )


def trim_partial_moof(path: Path, info: Mp4Info) -> int:
    """Cut `path` back to its last complete box if `info` says it ends inside a moof; return
    the bytes removed (0 if there was nothing to trim). Raises `OSError` if truncating fails."""
    if info.partial_box != "moof":
        return 0
    os.truncate(path, info.complete_bytes)
    return info.file_size - info.complete_bytes


def move_aside(path: Path, directory: Path) -> Path:
    """Move `path` into `directory` under a name not yet taken there; return where it went."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / path.name
    counter = 1
    while target.exists():
        target = directory / f"{path.stem}.{counter}{path.suffix}"
        counter += 1
    # A rename on the same filesystem; across filesystems shutil copies, then removes the source.
    shutil.move(path, target)
    return target
