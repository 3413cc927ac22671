"""The healing ladder and the recording watch, as tables: which repair each failure gets."""

from __future__ import annotations

import pytest

from vigil.streams.health import RecordingWatch
from vigil.streams.ladder import HealStep, Ladder, cause_of, is_internal

FLOW_ERROR = (
    "../libs/gst/base/gstbasesrc.c(3132): gst_base_src_loop (): "
    "/GstPipeline:stream-cam1/GstBin:source{n}/GstFdSrc:source:\n"
    "streaming stopped, reason error (-5)"
)


def _climb(ladder: Ladder, *causes: tuple[str, bool]) -> list[HealStep | None]:
    steps = []
    for cause, in_source in causes:
        ladder = ladder.climb(cause, in_source=in_source)
        steps.append(ladder.step)
    return steps


def test_a_repeating_source_fault_climbs_source_then_pipeline_then_failed() -> None:
    steps = _climb(Ladder(), *[("flow", True)] * 4)
    assert steps == [HealStep.REBUILD_SOURCE, HealStep.REBUILD_PIPELINE, HealStep.FAILED,
                     HealStep.FAILED]  # fmt: skip


def test_a_fault_outside_the_source_starts_at_the_pipeline() -> None:
    assert _climb(Ladder(), ("stall", False), ("stall", False)) == [
        HealStep.REBUILD_PIPELINE, HealStep.FAILED]  # fmt: skip


def test_a_new_cause_starts_again_at_the_bottom_and_counts_from_one() -> None:
    ladder = Ladder().climb("a", in_source=True).climb("a", in_source=True)
    assert (ladder.step, ladder.attempt) == (HealStep.REBUILD_PIPELINE, 2)
    ladder = ladder.climb("b", in_source=True)
    assert (ladder.step, ladder.attempt, ladder.cause) == (HealStep.REBUILD_SOURCE, 1, "b")


def test_the_same_fault_in_another_rebuild_has_the_same_cause() -> None:
    first = cause_of("Internal data stream error.", FLOW_ERROR.format(n=1))
    again = cause_of("Internal data stream error.", FLOW_ERROR.format(n=7))
    assert first == again == "Internal data stream error. [error]"
    negotiation = cause_of("Internal data stream error.", "reason not-negotiated (-4)")
    assert negotiation != first


@pytest.mark.parametrize(
    ("message", "debug", "resource", "internal"),
    [
        ("Internal data stream error.", "streaming stopped, reason error (-5)", False, True),
        ("Internal data stream error.", "reason not-negotiated (-4)", False, True),
        ("Internal data stream error.", "reason not-linked (-1)", False, False),
        ("Could not read from resource.", "Connection reset by peer", True, False),
        ("Could not open resource for reading.", "", True, False),
        ("Could not decode stream.", "", False, True),
    ],
)
def test_what_is_the_network_and_what_is_the_pipeline(
    message: str, debug: str, resource: bool, internal: bool
) -> None:
    assert is_internal(message, debug, resource_error=resource) is internal


def test_recording_watch_waits_for_keyframes_as_well_as_time() -> None:
    watch = RecordingWatch(timeout_s=8, keyframes=2)
    assert not watch.stalled(("file1", 10), keyframes=5, now=0)
    # Nothing written for 9 s but only one keyframe since: a long GOP, not a stall.
    assert not watch.stalled(("file1", 10), keyframes=6, now=9)
    assert watch.stalled(("file1", 10), keyframes=7, now=10)


def test_recording_watch_restarts_with_every_write_and_after_reset() -> None:
    watch = RecordingWatch(timeout_s=8, keyframes=2)
    watch.stalled(("file1", 10), keyframes=0, now=0)
    assert not watch.stalled(("file1", 11), keyframes=5, now=9)  # written: the clock restarts
    assert not watch.stalled(("file1", 11), keyframes=9, now=16)
    assert watch.stalled(("file1", 11), keyframes=9, now=17)
    watch.reset()
    assert not watch.stalled(("file1", 11), keyframes=20, now=30)
