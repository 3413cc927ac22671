"""Rebuilding the recording index from the volumes' files (`vigil storage reindex`): which
volumes to walk and who they are, one `reindex` per volume with the volume's id, and the gaps
between segments when the index was rebuilt from nothing.

Blocking (walks and probes files): run it in a thread or from a command. Nothing is deleted.

- A volume whose directory is missing is skipped (a disk not mounted; the implicit volume
  before anything was recorded).
- A volume without an identity file is skipped too, unless it is the implicit one (made from
  ``recording.root``), which is given one: a configured path without one is an empty mount
  point or someone else's disk, and indexing it would claim its files.
- Per volume walked, as the service does when a volume comes online: rows of a volume the
  index last saw at another path are moved to its path now, the volume is remembered at its
  path, rows whose volume is not known (from before volumes had ids) get the volume of the
  directory their file is in, open rows a crash left are repaired (only when `repair_open`:
  not under a running Vigil, whose open files are still growing), then unknown files are
  reindexed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path

from vigil.config.resolve import VolumePlan
from vigil.recording.identity import (
    VolumeIdentity,
    VolumeIdentityError,
    create_identity,
    read_identity,
)
from vigil.recording.reindex import ReindexReport, reindex
from vigil.recording.repair import RepairReport, quarantine_under, repair_open_segments
from vigil.store.models import SegmentStatus
from vigil.store.recordings import Clock, GapStore, SegmentRow, SegmentStore
from vigil.store.timestamps import utc_now
from vigil.store.volumes import VolumeStore

RECONSTRUCTED_GAP_REASON = "reconstructed by reindex (reason unknown)"
# Reindexed starts are the second a file's name gives (the recording began within it), so
# back-to-back segments can seem up to a second apart; more than that was not recorded.
MIN_RECONSTRUCTED_GAP = timedelta(seconds=1)
NO_IDENTITY = "no identity file: not a Vigil volume or not mounted"
_PAGE = 10_000


class VolumeOutcome(StrEnum):
    """What became of one volume."""

    INDEXED = "indexed"  # walked (its report may still hold errors about single files)
    SKIPPED = "skipped"  # not there, or not a Vigil volume: nothing to do, not a failure
    FAILED = "failed"  # there, but its identity could not be read or written


@dataclass(frozen=True, slots=True)
class FoundVolume:
    """A configured volume as found on disk, before anything is written. `problem`, when
    set, is why it will not be indexed; `failed` says whether that is an error."""

    plan: VolumePlan
    identity: VolumeIdentity | None
    problem: str | None = None
    failed: bool = False

    @property
    def path(self) -> Path:
        return self.plan.path


@dataclass(frozen=True, slots=True)
class VolumeResult:
    """One volume's part of a rebuild."""

    path: Path
    outcome: VolumeOutcome
    volume_id: str | None = None
    detail: str = ""
    report: ReindexReport | None = None
    repaired: RepairReport | None = None  # open rows closed from their files
    relocated: int = 0  # rows moved from the path the volume was last seen at
    volume_set: int = 0  # rows already there that were given this volume's id
    identity_created: bool = False

    @property
    def errors(self) -> int:
        """Errors to report: the volume's own failure, or those of single files."""
        if self.outcome is VolumeOutcome.FAILED:
            return 1
        failed_repairs = self.repaired.failed if self.repaired is not None else 0
        return (self.report.errors if self.report is not None else 0) + failed_repairs


class UnknownVolumeError(LookupError):
    """A volume id (or prefix) that names no volume, or several; the message lists them."""


def survey(plans: Iterable[VolumePlan]) -> list[FoundVolume]:
    """Each volume's identity as found on disk. Writes nothing."""
    found: list[FoundVolume] = []
    for plan in plans:
        if not plan.path.is_dir():
            why = "nothing recorded yet" if plan.implicit else "not mounted?"
            found.append(FoundVolume(plan, None, f"{plan.path} does not exist ({why})"))
            continue
        try:
            identity = read_identity(plan.path)
        except (VolumeIdentityError, OSError) as exc:
            found.append(FoundVolume(plan, None, f"cannot read its identity: {exc}", failed=True))
            continue
        if identity is None and not plan.implicit:
            found.append(FoundVolume(plan, None, NO_IDENTITY))
            continue
        found.append(FoundVolume(plan, identity))
    return found


def select(found: Sequence[FoundVolume], wanted: str) -> FoundVolume:
    """The volume whose id is `wanted` or starts with it (case ignored); raises
    `UnknownVolumeError` naming the known volumes if none or several match."""
    prefix = wanted.strip().lower()
    with_id = [volume for volume in found if volume.identity is not None]
    exact = [volume for volume in with_id if volume.identity and volume.identity.id == prefix]
    matches = exact or [
        volume
        for volume in with_id
        if prefix and volume.identity and volume.identity.id.startswith(prefix)
    ]
    if len(matches) == 1:
        return matches[0]
    known = ", ".join(
        f"{volume.identity.id} ({volume.path})" for volume in with_id if volume.identity
    )
    known = known or "none: no configured volume holds an identity file"
    if len(matches) > 1:
        raise UnknownVolumeError(f"volume id {wanted!r} is ambiguous; known volumes: {known}")
    raise UnknownVolumeError(f"no volume has id {wanted!r}; known volumes: {known}")


def rebuild_volume(
    segments: SegmentStore,
    volumes: VolumeStore,
    volume: FoundVolume,
    *,
    repair_open: bool = True,
    min_age: timedelta = timedelta(0),
    clock: Clock = utc_now,
) -> VolumeResult:
    """Index the files of one surveyed volume under its id (see the module docstring)."""
    if volume.problem is not None:
        outcome = VolumeOutcome.FAILED if volume.failed else VolumeOutcome.SKIPPED
        return VolumeResult(volume.path, outcome, detail=volume.problem)
    identity, created = volume.identity, False
    if identity is None:
        try:
            identity, created = create_identity(volume.path), True
        except (VolumeIdentityError, OSError) as exc:
            return VolumeResult(
                volume.path, VolumeOutcome.FAILED, detail=f"cannot write its identity: {exc}"
            )
    path, relocated = volume.path, 0
    previous = volumes.paths().get(identity.id)
    if previous is not None and Path(previous) != path:
        relocated = volumes.relocate(identity.id, Path(previous), path)
    volumes.seen(identity.id, path)
    volume_set = volumes.assign(identity.id, path)
    repaired = None
    if repair_open:
        repaired = repair_open_segments(
            segments, only_under=[path], quarantine_dir_for=quarantine_under([path])
        )
    report = reindex(
        segments,
        [volume.path],
        quarantine_dir_for=quarantine_under([volume.path]),
        min_age=min_age,
        clock=clock,
        volume=identity.id,
    )
    return VolumeResult(
        volume.path,
        VolumeOutcome.INDEXED,
        volume_id=identity.id,
        report=report,
        repaired=repaired,
        relocated=relocated,
        volume_set=volume_set,
        identity_created=created,
    )


def index_is_empty(segments: SegmentStore, gaps: GapStore) -> bool:
    """True when the index holds no segment and no gap: rebuilding it starts from nothing."""
    return not segments.list_segments(limit=1) and not gaps.list_gaps(limit=1)


def find_gaps(
    rows: Iterable[SegmentRow], min_gap: timedelta = MIN_RECONSTRUCTED_GAP
) -> list[tuple[str, datetime, datetime]]:
    """(stream, start, end) of every stretch longer than `min_gap` between a stream's
    consecutive segments. `rows` must come ordered by start; rows without an end or whose file
    is missing cover nothing; overlapping segments (two files of one second) count once."""
    covered_until: dict[str, datetime] = {}
    found: list[tuple[str, datetime, datetime]] = []
    for row in rows:
        if row.end is None or row.status is SegmentStatus.MISSING:
            continue
        previous_end = covered_until.get(row.stream)
        if previous_end is not None and row.start - previous_end > min_gap:
            found.append((row.stream, previous_end, row.start))
        if previous_end is None or row.end > previous_end:
            covered_until[row.stream] = row.end
    return found


def reconstruct_gaps(segments: SegmentStore, gaps: GapStore) -> int:
    """Add the gaps `find_gaps` sees in the whole index; return how many. Only for an index
    rebuilt from nothing: on any other it would repeat the gaps recorded as they happened."""
    found = find_gaps(_all_segments(segments))
    for stream, start, end in found:
        gaps.add_gap(stream, start, end, RECONSTRUCTED_GAP_REASON)
    return len(found)


def _all_segments(segments: SegmentStore) -> Iterator[SegmentRow]:
    after: tuple[datetime, int] | None = None
    while page := segments.list_segments(limit=_PAGE, after=after):
        yield from page
        after = (page[-1].start, page[-1].id)
