"""A stream's state machine, as a pure function: (state, event, now) -> (state, reason, actions).

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
    RECONNECTING = "reconnecting"
    FAILED = "failed"


class Action(StrEnum):
    """What the supervisor must do next."""

    START_PIPELINE = "start_pipeline"
    STOP_PIPELINE = "stop_pipeline"
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
    """Video frames are arriving."""


@dataclass(frozen=True)
class Failure:
    """The pipeline failed. `permanent` = retrying cannot fix it (bad credentials, codec...)."""

    reason: str
    permanent: bool = False


@dataclass(frozen=True)
class RetryDue:
    """The back-off delay has passed."""


@dataclass(frozen=True)
class Stable:
    """The stream has been streaming long enough to forget past failures."""


StreamEvent = Start | Stop | Frames | Failure | RetryDue | Stable


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
        if state in (StreamState.STOPPED, StreamState.FAILED):
            return Step(StreamState.STARTING, "connecting", (Action.START_PIPELINE,))
        return Step(state, reason)
    if isinstance(event, Frames):
        if state is StreamState.STARTING:
            return Step(StreamState.STREAMING, "receiving video")
        return Step(state, reason)
    if isinstance(event, Failure):
        if state in (StreamState.STARTING, StreamState.STREAMING):
            target = StreamState.FAILED if event.permanent else StreamState.RECONNECTING
            return Step(target, event.reason, (Action.STOP_PIPELINE, Action.SCHEDULE_RETRY))
        return Step(state, reason)
    if isinstance(event, RetryDue):
        if state in (StreamState.RECONNECTING, StreamState.FAILED):
            return Step(
                StreamState.STARTING, f"reconnecting after: {reason}", (Action.START_PIPELINE,)
            )
        return Step(state, reason)
    if isinstance(event, Stable):
        if state is StreamState.STREAMING:
            return Step(state, reason, (Action.RESET_BACKOFF,))
        return Step(state, reason)
    raise TypeError(f"unknown stream event {event!r}")
