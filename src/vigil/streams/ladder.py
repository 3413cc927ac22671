"""The healing ladder, as a pure value: which repair a stream's next internal failure gets.

Rebuilding the source heals what the network breaks. It cannot heal a fault in the part of the
pipeline that stays (a broken recording branch, a probe whose callback raises on every buffer):
retried forever, such a stream flaps between `streaming` and `reconnecting` and records nothing
(issue 14). So failures that are not about the network — an internal data-flow error, a caps
negotiation that fails, an exception in a callback, a recording that stalls — climb a ladder
while the same cause repeats:

    rebuild_source  →  rebuild_pipeline  →  failed (with the reason, retried slowly)

A failure outside the source starts at `rebuild_pipeline`. A different cause starts again at
the bottom, and a stream that has been streaming stably forgets the ladder (`Ladder()`).
Network failures never climb it: back-off and reconnecting are their remedy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum


class HealStep(StrEnum):
    """A rung of the ladder."""

    REBUILD_SOURCE = "rebuild_source"
    REBUILD_PIPELINE = "rebuild_pipeline"
    FAILED = "failed"


_NEXT = {
    HealStep.REBUILD_SOURCE: HealStep.REBUILD_PIPELINE,
    HealStep.REBUILD_PIPELINE: HealStep.FAILED,
    HealStep.FAILED: HealStep.FAILED,
}


@dataclass(frozen=True)
class Ladder:
    """Where the stream is on the ladder: the cause being healed, the rung last taken and how
    many failures with that cause came in a row."""

    cause: str | None = None
    step: HealStep | None = None
    attempt: int = 0

    def climb(self, cause: str, *, in_source: bool) -> Ladder:
        """The ladder after one more internal failure with `cause` (see `cause_of`)."""
        if self.step is None or cause != self.cause:
            first = HealStep.REBUILD_SOURCE if in_source else HealStep.REBUILD_PIPELINE
            return Ladder(cause, first, 1)
        return Ladder(cause, _NEXT[self.step], self.attempt + 1)


# GStreamer's flow returns, as its debug text spells them ("streaming stopped, reason
# not-negotiated (-4)"): all but `not-linked` and `flushing` mean something inside broke.
_FLOW = re.compile(r"reason ([a-z-]+) \((-?\d+)\)")
_INTERNAL_FLOWS = ("error", "not-negotiated", "not-supported")
# Element paths and numbers vary between rebuilds of the same fault.
_VARIABLE = re.compile(r"/Gst\S*|\d+")


def cause_of(message: str, debug: str = "") -> str:
    """A failure's cause, the same each time the same fault recurs (no element paths, no
    numbers), to tell "the same error again" from a new one."""
    flow = _FLOW.search(debug) or _FLOW.search(message)
    text = _VARIABLE.sub("#", message).strip()
    return f"{text} [{flow.group(1)}]" if flow else text


def is_internal(message: str, debug: str = "", *, resource_error: bool = False) -> bool:
    """True when a pipeline error is not about the network or a device: a resource error
    (cannot connect, read or write) is the camera's or the disk's; a data-flow error, a failed
    negotiation or a stream error inside an element is the pipeline's."""
    if resource_error:
        return False
    flow = _FLOW.search(debug) or _FLOW.search(message)
    if flow is not None:
        return flow.group(1) in _INTERNAL_FLOWS
    return True
