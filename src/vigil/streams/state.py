"""A stream's state machine, as a pure function: (state, reason, event) -> (state, reason, actions).

    stopped ─Start─► starting ─Frames─► streaming ─NoData─► stalled ─RetryDue─► reconnecting
                        │                   │                                    │    ▲
                        └──Failure──────────┴──Failure──► reconnecting ◄─Failure─┘    │
                                                          (or failed: retried slowly) ─┘
    reconnecting ─Frames─► streaming;  any ─Stop─► stopped

The supervisor feeds it what happened and carries out the actions; nothing here touches
asyncio or GStreamer, so every path is testable as a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class StreamState(StrEnum):
    """Where a stream is in its life."""

    STOPPED = "stopped"
    STARTING = "starting"
    STREAMING = "streaming"
    STALLED = "stalled"
    RECONNECTING = "reconnecting"
    FAILED = "failed"


class Action(StrEnum):
    """What the supervisor must do next."""

    START_PIPELINE = "start_pipeline"  # build the whole pipeline (source + recording)
    STOP_PIPELINE = "stop_pipeline"  # finish the open segment, tear everything down
    START_SOURCE = "start_source"  # (re)build only the source; the recording branch stays
    STOP_SOURCE = "stop_source"  # drop the source, finishing the open segment
    SCHEDULE_RETRY = "schedule_retry"
    RESET_BACKOFF = "reset_backoff"


@dataclass(frozen=True)
class Start:
    """The stream should run."""


@dataclass(frozen=True)
class Stop:
    """The stream should not run."""


@dataclass(frozen=True)
class Frames:
    """Video frames are arriving (the first ones after a start or a reconnect)."""


@dataclass(frozen=True)
class NoData:
    """The watchdog saw no video for the no-data timeout."""

    reason: str


@dataclass(frozen=True)
class Failure:
    """The source (or pipeline) failed. `permanent` = retrying cannot fix it (auth, codec…);
    `whole_pipeline` = the failure is not the source's (e.g. the recording side), rebuild all."""

    reason: str
    permanent: bool = False
    whole_pipeline: bool = False


@dataclass(frozen=True)
class RetryDue:
    """The back-off delay has passed (or the camera answers again)."""


@dataclass(frozen=True)
class Stable:
    """The stream has been streaming long enough to forget past failures."""


StreamEvent = Start | Stop | Frames | NoData | Failure | RetryDue | Stable

_RUNNING = (StreamState.STARTING, StreamState.STREAMING, StreamState.RECONNECTING)


@dataclass(frozen=True)
class Step:
    """The outcome of one transition."""

    state: StreamState
    reason: str
    actions: tuple[Action, ...] = field(default_factory=tuple)


def transition(state: StreamState, reason: str, event: StreamEvent) -> Step:
    """Next state, reason and actions for `event` in `state`."""
    if isinstance(event, Stop):
        if state is StreamState.STOPPED:
            return Step(state, reason)
        return Step(StreamState.STOPPED, "stopped", (Action.STOP_PIPELINE,))
    if isinstance(event, Start):
        if state is StreamState.STOPPED:
            return Step(StreamState.STARTING, "connecting", (Action.START_PIPELINE,))
        return Step(state, reason)
    if isinstance(event, Frames):
        if state in (StreamState.STARTING, StreamState.RECONNECTING):
            return Step(StreamState.STREAMING, "receiving video")
        return Step(state, reason)
    if isinstance(event, NoData):
        if state is StreamState.STREAMING:
            return Step(StreamState.STALLED, event.reason,
                        (Action.STOP_SOURCE, Action.SCHEDULE_RETRY))  # fmt: skip
        if state in (StreamState.STARTING, StreamState.RECONNECTING):
            # Ended before it delivered anything: an ordinary failed attempt.
            return Step(StreamState.RECONNECTING, event.reason,
                        (Action.STOP_SOURCE, Action.SCHEDULE_RETRY))  # fmt: skip
        return Step(state, reason)
    if isinstance(event, Failure):
        if state not in _RUNNING:
            return Step(state, reason)
        target = StreamState.FAILED if event.permanent else StreamState.RECONNECTING
        stop = Action.STOP_PIPELINE if event.whole_pipeline else Action.STOP_SOURCE
        return Step(target, event.reason, (stop, Action.SCHEDULE_RETRY))
    if isinstance(event, RetryDue):
        if state in (StreamState.STALLED, StreamState.RECONNECTING, StreamState.FAILED):
            return Step(StreamState.RECONNECTING, f"reconnecting after: {_cause(reason)}",
                        (Action.START_SOURCE,))  # fmt: skip
        return Step(state, reason)
    if isinstance(event, Stable):
        if state is StreamState.STREAMING:
            return Step(state, reason, (Action.RESET_BACKOFF,))
        return Step(state, reason)
    raise TypeError(f"unknown stream event {event!r}")


def _cause(reason: str) -> str:
    """The original failure, without 'reconnecting after: ' prefixes piling up."""
    prefix = "reconnecting after: "
    while reason.startswith(prefix):
        reason = reason[len(prefix) :]
    return reason
