"""Reindex: put segment files the database does not know (a crash, a lost row, a restored disk)
back into the index, from the files themselves.

Run it after `repair_open_segments` and before recording starts, in a thread (it walks and
probes files). It never deletes a file, and it only ever touches files laid out exactly as the
recorder names them (``<root>/<stream>/<YYYY-MM-DD>/<HH>/<MM.SS>.mp4``, or ``<MM.SS>-<n>.mp4``).
Per such file without a row:

- it holds at least one complete fragment: a row is added as 'repaired', starting at the second
  its name gives (the recording really started within that second) and lasting the probed
  duration; a file cut inside a moof is first trimmed back to its last complete box, as repair
  does;
- it is empty, is not an MP4 the probe can read, fails with an I/O error, or holds no complete
  fragment: it is moved to the quarantine directory (by default ``<root>/.quarantine/`` at the
  same relative place) and no row is added;
- it cannot be read for lack of permission, or cannot be moved: it is left in place and reported.

Everything else (other names, other depths, symbolic links, which are never followed) is left
alone and only counted (but for the volume's identity file, not even that). Directories whose
name starts with a dot (``.quarantine``) are skipped.
A second run finds nothing new. The walk costs one directory listing per directory, one query per
day directory (the paths the index knows under it) and one probe per unknown segment file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from vigil.recording.identity import IDENTITY_FILE
from vigil.recording.mp4probe import Mp4Error, probe_mp4
from vigil.recording.paths import parse_segment_path, segment_path
from vigil.recording.repair import QuarantineRule, move_aside, quarantine_under, trim_partial_moof
from vigil.store.models import SegmentStatus
from vigil.store.recordings import Clock, SegmentStore
from vigil.store.timestamps import utc_now

# How many ignored files the report names (the count covers all of them).
IGNORED_EXAMPLES = 10
# <root>/<stream>/<day>: the directory level at which the known paths are loaded; one day holds
# at most 86,400 one-second segments, so the set stays small whatever the size of the tree.
_DAY_DEPTH = 2
_SEGMENT_NAME = re.compile(r"(?P<stem>[0-9]{2}\.[0-9]{2})(?:-[1-9][0-9]*)?\.mp4")


class ReindexAction(StrEnum):
    """What reindexing did with one file (or directory) it had to act on."""

    INDEXED = "indexed"  # a row was added from what the file holds
    QUARANTINED = "quarantined"  # unusable file moved aside, no row
    ERROR = "error"  # could not be handled (permission, failed move, vanished): left in place


@dataclass(frozen=True, slots=True)
class ReindexOutcome:
    """The fate of one unknown segment file, or a directory that could not be listed."""

    path: Path
    action: ReindexAction
    detail: str
    stream: str | None = None
    segment_id: int | None = None
    duration_s: float | None = None
    trimmed_bytes: int = 0
    moved_to: Path | None = None


@dataclass(frozen=True, slots=True)
class ReindexReport:
    """What one reindex run found and did; `outcomes` in walk order (sorted by name)."""

    outcomes: tuple[ReindexOutcome, ...]
    files: int  # every non-directory entry seen outside dot-directories
    known: int  # segment files the index already had a row for
    ignored: int  # files that are not segments of the layout: left alone
    ignored_examples: tuple[Path, ...]  # the first few of them
    recent: int  # segment files modified too recently to be sure they are finished: left alone

    def count(self, action: ReindexAction) -> int:
        return sum(1 for outcome in self.outcomes if outcome.action is action)

    @property
    def indexed(self) -> int:
        return self.count(ReindexAction.INDEXED)

    @property
    def quarantined(self) -> int:
        return self.count(ReindexAction.QUARANTINED)

    @property
    def errors(self) -> int:
        return self.count(ReindexAction.ERROR)

    def summary(self) -> str:
        """One line for the log, e.g. ``"1204 files: 3 indexed, 1 quarantined, 2 ignored, ..."``."""
        return (
            f"{self.files} files: {self.indexed} indexed, {self.quarantined} quarantined, "
            f"{self.ignored} ignored, {self.errors} errors, {self.known} already indexed, "
            f"{self.recent} too recent"
        )


def reindex(
    store: SegmentStore,
    roots: Iterable[Path],
    *,
    quarantine_dir_for: QuarantineRule | None = None,
    trim_cut_moof: bool = True,
    min_age: timedelta = timedelta(0),
    clock: Clock = utc_now,
    volume: str | None = None,
) -> ReindexReport:
    """Index the segment files under `roots` that have no row (see the module docstring).

    Roots are made absolute the way the configuration makes the recording root absolute (no
    symbolic link resolved), so the paths match those the recorder indexed. The default
    quarantine rule is `quarantine_under(roots)`. Files modified less than `min_age` before
    `clock()` are left for a later run: pass a few segment lengths when recorders may be
    writing (a running service); the default, 0, suits start-up, before streams start.
    A root that cannot be listed is reported as an error, never raised. Rows added carry
    `volume` (the id of the volume the roots are on; None: not known).
    """
    absolute_roots = tuple(dict.fromkeys(Path(os.path.abspath(root)) for root in roots))
    walk = _Walk(
        store=store,
        quarantine_dir_for=quarantine_dir_for or quarantine_under(absolute_roots),
        trim_cut_moof=trim_cut_moof,
        newest_mtime=(clock() - min_age).timestamp() if min_age > timedelta(0) else None,
        volume=volume,
    )
    for root in absolute_roots:
        walk.root(root)
    return walk.report()


def segment_of(root: Path, path: Path) -> tuple[str, datetime] | None:
    """(stream, start) of `path` if it is named exactly as the recorder names segments under
    `root`, else None. Stricter than `parse_segment_path`, which also takes ``00.00-copy.mp4``
    or ``2025-3-1``: reindexing may move a file aside, so it must only take files it wrote."""
    parsed = parse_segment_path(root, path)
    if parsed is None:
        return None
    canonical = segment_path(root, *parsed)
    match = _SEGMENT_NAME.fullmatch(path.name)
    if match is None or match["stem"] != canonical.stem or path.parent != canonical.parent:
        return None
    return parsed


@dataclass
class _Walk:
    """The state of one run: what it was given, and what it has found so far."""

    store: SegmentStore
    quarantine_dir_for: QuarantineRule
    trim_cut_moof: bool
    newest_mtime: float | None  # files modified after this (epoch seconds) are left alone
    volume: str | None  # the id rows added carry
    outcomes: list[ReindexOutcome] = field(default_factory=list)
    files: int = 0
    known: int = 0
    ignored: int = 0
    ignored_examples: list[Path] = field(default_factory=list)
    recent: int = 0

    def report(self) -> ReindexReport:
        return ReindexReport(
            outcomes=tuple(self.outcomes),
            files=self.files,
            known=self.known,
            ignored=self.ignored,
            ignored_examples=tuple(self.ignored_examples),
            recent=self.recent,
        )

    def root(self, root: Path) -> None:
        # Depth first, in name order, with a stack rather than recursion: a deep tree of
        # stray directories must not end the run with a RecursionError.
        stack: list[tuple[Path, int, AbstractSet[str]]] = [(root, 0, frozenset())]
        while stack:
            directory, depth, known = stack.pop()
            subdirectories = self._directory(root, directory, depth, known)
            stack.extend(reversed(subdirectories))

    def _directory(
        self, root: Path, directory: Path, depth: int, known: AbstractSet[str]
    ) -> list[tuple[Path, int, AbstractSet[str]]]:
        """Handle the files of `directory`; return its subdirectories to walk, in name order."""
        try:
            with os.scandir(directory) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            self._error(directory, f"cannot list the directory: {exc}; skipped")
            return []
        if depth == _DAY_DEPTH:
            known = self.store.known_paths(directory)
        subdirectories: list[tuple[Path, int, AbstractSet[str]]] = []
        for entry in entries:
            try:
                is_directory = entry.is_dir(follow_symlinks=False)
                is_file = entry.is_file(follow_symlinks=False)
            except OSError as exc:
                self._error(Path(entry.path), f"cannot stat: {exc}; skipped")
                continue
            if is_directory:
                if not entry.name.startswith("."):
                    subdirectories.append((Path(entry.path), depth + 1, known))
                continue
            if depth == 0 and entry.name == IDENTITY_FILE:
                continue  # the volume's identity file: Vigil's own, not a stray file
            self.files += 1
            # Compared as strings: the text the recorder stored, and no Path per known file.
            if entry.path in known:
                self.known += 1
                continue
            path = Path(entry.path)
            # Symbolic links, sockets and the like are not something the recorder wrote.
            if not is_file or (segment := segment_of(root, path)) is None:
                self._ignore(path)
            elif self._recently_modified(entry):
                self.recent += 1
            else:
                self.outcomes.append(self._index(path, *segment))
        return subdirectories

    def _recently_modified(self, entry: os.DirEntry[str]) -> bool:
        if self.newest_mtime is None:
            return False
        try:
            return entry.stat(follow_symlinks=False).st_mtime > self.newest_mtime
        except OSError:
            return False  # probing will report what is wrong with it

    def _index(self, path: Path, stream: str, start: datetime) -> ReindexOutcome:
        try:
            info = probe_mp4(path)
        except (PermissionError, FileNotFoundError) as exc:
            # Not the file's fault (ownership after a restore, a concurrent clean-up): moving
            # it aside would only hide it.
            return ReindexOutcome(path, ReindexAction.ERROR, f"cannot read: {exc}", stream)
        except (Mp4Error, OSError) as exc:
            problem = str(exc)
        else:
            if info.duration_s > 0:
                detail = f"{info.duration_s:.3f} s playable, {info.fragments} complete fragments"
                trimmed = 0
                if self.trim_cut_moof:
                    try:
                        trimmed = trim_partial_moof(path, info)
                    except OSError as exc:
                        detail += f"; could not trim its cut moof: {exc}"
                    else:
                        if trimmed:
                            detail += f"; trimmed {trimmed} bytes of a cut moof"
                segment_id = self.store.add_complete(
                    stream=stream,
                    path=path,
                    start=start,
                    end=start + timedelta(seconds=info.duration_s),
                    duration_s=info.duration_s,
                    size_bytes=info.file_size - trimmed,
                    codec=info.codec,
                    width=info.width,
                    height=info.height,
                    status=SegmentStatus.REPAIRED,
                    volume=self.volume,
                )
                return ReindexOutcome(
                    path,
                    ReindexAction.INDEXED,
                    detail,
                    stream,
                    segment_id=segment_id,
                    duration_s=info.duration_s,
                    trimmed_bytes=trimmed,
                )
            problem = f"{path}: no complete fragment ({info.file_size} bytes)"
        try:
            moved_to = move_aside(path, self.quarantine_dir_for(path))
        except OSError as exc:
            detail = f"{problem}; could not quarantine: {exc}"
            return ReindexOutcome(path, ReindexAction.ERROR, detail, stream)
        return ReindexOutcome(path, ReindexAction.QUARANTINED, problem, stream, moved_to=moved_to)

    def _ignore(self, path: Path) -> None:
        self.ignored += 1
        if len(self.ignored_examples) < IGNORED_EXAMPLES:
            self.ignored_examples.append(path)

    def _error(self, path: Path, detail: str) -> None:
        self.outcomes.append(ReindexOutcome(path, ReindexAction.ERROR, detail))
