"""The stream state machine, as a table."""

from __future__ import annotations

import pytest

from vigil.streams.state import (
    Action,
    Failure,
    Frames,
    RetryDue,
    Stable,
    Start,
    Stop,
    StreamEvent,
    StreamState,
    transition,
)

S = StreamState
A = Action

TABLE: list[tuple[StreamState, StreamEvent, StreamState, tuple[Action, ...]]] = [
    (S.STOPPED, Start(), S.STARTING, (A.START_PIPELINE,)),
    (S.STARTING, Frames(), S.STREAMING, ()),
    (S.STARTING, Failure("refused"), S.RECONNECTING, (A.STOP_PIPELINE, A.SCHEDULE_RETRY)),
    (S.STREAMING, Failure("eos"), S.RECONNECTING, (A.STOP_PIPELINE, A.SCHEDULE_RETRY)),
    (S.STREAMING, Failure("401", permanent=True), S.FAILED, (A.STOP_PIPELINE, A.SCHEDULE_RETRY)),
    (S.RECONNECTING, RetryDue(), S.STARTING, (A.START_PIPELINE,)),
    (S.FAILED, RetryDue(), S.STARTING, (A.START_PIPELINE,)),
    (S.STREAMING, Stable(), S.STREAMING, (A.RESET_BACKOFF,)),
    (S.STREAMING, Stop(), S.STOPPED, (A.STOP_PIPELINE,)),
    (S.RECONNECTING, Stop(), S.STOPPED, (A.STOP_PIPELINE,)),
    (S.STOPPED, Stop(), S.STOPPED, ()),
    # Late or duplicate facts change nothing.
    (S.RECONNECTING, Failure("again"), S.RECONNECTING, ()),
    (S.RECONNECTING, Frames(), S.RECONNECTING, ()),
    (S.STREAMING, Start(), S.STREAMING, ()),
    (S.STARTING, RetryDue(), S.STARTING, ()),
    (S.RECONNECTING, Stable(), S.RECONNECTING, ()),
]


@pytest.mark.parametrize(("state", "event", "expected", "actions"), TABLE)
def test_transition(
    state: StreamState, event: StreamEvent, expected: StreamState, actions: tuple[Action, ...]
) -> None:
    step = transition(state, "before", event)
    assert step.state is expected
    assert step.actions == actions


def test_failure_reason_is_kept_and_shown_on_reconnect() -> None:
    step = transition(S.STREAMING, "receiving video", Failure("connection refused"))
    assert step.reason == "connection refused"
    again = transition(step.state, step.reason, RetryDue())
    assert again.reason == "reconnecting after: connection refused"
