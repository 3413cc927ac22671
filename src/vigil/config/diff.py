"""Reload as a plan: which streams to start, stop or restart, and what needs a restart of Vigil.

Streams are compared by their resolved plans (every default and path filled in), so a change of
a global default that reaches a stream (e.g. `recording.segment_seconds`) restarts exactly the
streams it changes; an unchanged stream is never touched and keeps recording with no gap.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from vigil.config.resolve import ResolvedConfig, StreamPlan

# Sections whose change is applied without restarting Vigil (through the stream plans).
_HOT = {"streams", "recording", "ingest"}


@dataclass(frozen=True)
class ChangePlan:
    """What to do to go from one configuration to the next."""

    added: tuple[StreamPlan, ...]
    removed: tuple[str, ...]
    changed: tuple[StreamPlan, ...]
    unchanged: tuple[str, ...]
    # Sections that differ but only take effect when Vigil restarts (listen address, paths…).
    needs_restart: tuple[str, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def plan_changes(old: ResolvedConfig, new: ResolvedConfig) -> ChangePlan:
    """The smallest set of stream operations that turns `old` into `new`."""
    before = {plan.name.casefold(): plan for plan in old.streams}
    after = {plan.name.casefold(): plan for plan in new.streams}
    added = tuple(plan for key, plan in after.items() if key not in before)
    removed = tuple(plan.name for key, plan in before.items() if key not in after)
    changed = tuple(
        plan for key, plan in after.items()
        if key in before and _pipeline(before[key]) != _pipeline(plan)
    )  # fmt: skip
    unchanged = tuple(
        plan.name for key, plan in after.items()
        if key in before and _pipeline(before[key]) == _pipeline(plan)
    )  # fmt: skip
    # Python mode, not JSON: JSON prints every secret as stars, so a changed password would
    # compare equal (SecretStr compares its values).
    old_data = old.config.model_dump()
    new_data = new.config.model_dump()
    needs_restart = tuple(
        section
        for section in sorted(set(old_data) | set(new_data))
        if section not in _HOT and old_data.get(section) != new_data.get(section)
    )
    if old.volumes != new.volumes and "storage" not in needs_restart:
        # `recording.root` is the one volume's path: volumes are set up at start.
        needs_restart = tuple(sorted((*needs_restart, "storage")))
    return ChangePlan(added, removed, changed, unchanged, needs_restart)


def _pipeline(plan: StreamPlan) -> StreamPlan:
    """What of a plan the running pipeline depends on: retention (`retain_days`) is read live,
    the recording root is decided per segment by the volumes, and detection runs in a pipeline
    of its own (`vigil.inference.service` follows `ConfigApplied`), so none restarts it."""
    return dataclasses.replace(plan, retain_days=None, recording_root=Path(), detect=None)
