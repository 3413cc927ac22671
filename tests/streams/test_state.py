"""The stream state machine, as a table."""

from __future__ import annotations

import pytest

from vigil.streams.state import (
    Action,
    Failure,
    Frames,
    NoData,
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
    (S.STARTING, Failure("refused"), S.RECONNECTING, (A.STOP_SOURCE, A.SCHEDULE_RETRY)),
    (S.STREAMING, Failure("eos"), S.RECONNECTING, (A.STOP_SOURCE, A.SCHEDULE_RETRY)),
    (S.STREAMING, Failure("401", permanent=True), S.FAILED, (A.STOP_SOURCE, A.SCHEDULE_RETRY)),
    (
        S.STREAMING,
        Failure("disk", whole_pipeline=True),
        S.RECONNECTING,
        (A.STOP_PIPELINE, A.SCHEDULE_RETRY),
    ),
    (S.STREAMING, NoData("no video for 5 s"), S.STALLED, (A.STOP_SOURCE, A.SCHEDULE_RETRY)),
    (S.STALLED, RetryDue(), S.RECONNECTING, (A.START_SOURCE,)),
    (S.RECONNECTING, RetryDue(), S.RECONNECTING, (A.START_SOURCE,)),
    (S.RECONNECTING, Failure("again"), S.RECONNECTING, (A.STOP_SOURCE, A.SCHEDULE_RETRY)),
    (S.RECONNECTING, Frames(), S.STREAMING, ()),
    (S.FAILED, RetryDue(), S.RECONNECTING, (A.START_SOURCE,)),
    (S.STREAMING, Stable(), S.STREAMING, (A.RESET_BACKOFF,)),
    (S.STREAMING, Stop(), S.STOPPED, (A.STOP_PIPELINE,)),
    (S.RECONNECTING, Stop(), S.STOPPED, (A.STOP_PIPELINE,)),
    (S.STALLED, Stop(), S.STOPPED, (A.STOP_PIPELINE,)),
    (S.STOPPED, Stop(), S.STOPPED, ()),
    # Late or duplicate facts change nothing.
    (S.STALLED, Failure("late"), S.STALLED, ()),
    (S.STALLED, NoData("again"), S.STALLED, ()),
    (S.STALLED, Frames(), S.STALLED, ()),
    (S.STREAMING, Start(), S.STREAMING, ()),
    (S.STARTING, RetryDue(), S.STARTING, ()),
    (S.STARTING, NoData("ended"), S.RECONNECTING, (A.STOP_SOURCE, A.SCHEDULE_RETRY)),
    (S.RECONNECTING, Stable(), S.RECONNECTING, ()),
    (S.STOPPED, Failure("late"), S.STOPPED, ()),
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
    # Repeated retries do not pile prefixes up.
    third = transition(again.state, again.reason, RetryDue())
    assert third.reason == "reconnecting after: connection refused"


def test_stall_is_its_own_state_with_its_reason() -> None:
    step = transition(S.STREAMING, "receiving video", NoData("no video for 5 s"))
    assert (step.state, step.reason) == (S.STALLED, "no video for 5 s")
    after = transition(step.state, step.reason, RetryDue())
    assert (after.state, after.reason) == (S.RECONNECTING, "reconnecting after: no video for 5 s")
