"""The tracker on scripted scenes: walkers at high and low frame rates, crossings, false
positives, expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigil.inference.tracker import Track, Tracker, TrackerUpdate
from vigil.inference.types import Box, Detection

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _seen(
    x: float,
    y: float = 0.5,
    *,
    label: str = "person",
    score: float = 0.8,
    zones: tuple[str, ...] = (),
) -> tuple[Detection, tuple[str, ...]]:
    """A 0.1 x 0.3 box centred on (x, y)."""
    return (Detection(label, score, Box.clipped(x - 0.05, y - 0.15, x + 0.05, y + 0.15)), zones)


class Log:
    """Every update's entered/left/improved, to count events over a scene."""

    def __init__(self) -> None:
        self.entered: list[Track] = []
        self.left: list[Track] = []
        self.improved: list[Track] = []

    def add(self, update: TrackerUpdate) -> TrackerUpdate:
        self.entered += update.entered
        self.left += update.left
        self.improved += update.improved
        return update

    def ids(self, which: list[Track]) -> list[str]:
        return [t.object_id for t in which]


def _walk(tracker: Tracker, log: Log, *, frames: int, interval: float, step: float) -> float:
    """A person walking left to right, one detection per frame; returns the last frame's time."""
    at = 0.0
    for i in range(frames):
        at = i * interval
        log.add(tracker.update([_seen(0.05 + i * step)], _at(at)))
    return at


def test_walking_person_is_one_track_entered_once_left_once() -> None:
    tracker, log = Tracker(), Log()
    last = _walk(tracker, log, frames=20, interval=0.2, step=0.045)  # IoU-overlapping steps
    assert len(log.entered) == 1
    assert len(tracker.tracks) == 1
    (track,) = tracker.tracks
    assert track.hits == 20 and track.confirmed
    assert track.first_seen == _at(0) and track.last_seen == _at(last)
    assert track.box.centre[0] == pytest.approx(0.05 + 19 * 0.045)
    # No detections after it walked out: still there within max_age, gone once past it.
    for k in range(1, 30):
        log.add(tracker.update([], _at(last + k * 0.2)))
    assert log.ids(log.left) == [track.object_id]
    assert log.left[0].last_seen == _at(last)
    assert tracker.tracks == []


def test_walking_person_at_a_low_frame_rate_is_one_track() -> None:
    tracker, log = Tracker(), Log()
    # One frame every 2 s and 0.25 of the frame between frames: the boxes never overlap.
    _walk(tracker, log, frames=4, interval=2.0, step=0.25)
    assert len(log.entered) == 1
    assert [t.hits for t in tracker.tracks] == [4]


def test_the_distance_allowance_grows_with_the_gap_not_otherwise() -> None:
    # The same 0.25 jump 0.2 s apart is too far for one object: two tentative tracks, no entry.
    tracker, log = Tracker(), Log()
    _walk(tracker, log, frames=2, interval=0.2, step=0.25)
    assert log.entered == []
    assert [t.hits for t in tracker.tracks] == [1]


def test_person_and_car_crossing_the_same_spot_stay_two_tracks() -> None:
    tracker, log = Tracker(), Log()
    for i in range(15):
        person = _seen(0.1 + i * 0.05, label="person")
        car = _seen(0.8 - i * 0.05, label="car")
        log.add(tracker.update([person, car], _at(i * 0.2)))
    assert sorted(t.label for t in log.entered) == ["car", "person"]
    by_label = {t.label: t for t in tracker.tracks}
    assert len(by_label) == 2 and all(t.hits == 15 for t in by_label.values())
    assert by_label["person"].box.centre[0] > 0.7
    assert by_label["car"].box.centre[0] < 0.2


def test_two_people_crossing_apart_stay_two_tracks() -> None:
    tracker, log = Tracker(), Log()
    for i in range(15):
        upper = _seen(0.1 + i * 0.05, y=0.25)  # walking right along the top
        lower = _seen(0.8 - i * 0.05, y=0.72)  # walking left along the bottom
        log.add(tracker.update([lower, upper], _at(i * 0.2)))
    assert len(log.entered) == 2
    upper_track, lower_track = sorted(tracker.tracks, key=lambda t: t.box.centre[1])
    assert upper_track.hits == lower_track.hits == 15
    assert upper_track.box.centre[0] > 0.7 and lower_track.box.centre[0] < 0.2


def test_two_people_crossing_at_a_low_frame_rate_stay_two_tracks() -> None:
    tracker, log = Tracker(), Log()
    for i in range(5):
        upper = _seen(0.1 + i * 0.2, y=0.2)
        lower = _seen(0.9 - i * 0.2, y=0.75)
        log.add(tracker.update([upper, lower], _at(i * 1.5)))
    assert len(log.entered) == 2
    upper_track, lower_track = sorted(tracker.tracks, key=lambda t: t.box.centre[1])
    assert upper_track.hits == lower_track.hits == 5
    assert upper_track.box.centre[0] > 0.8 and lower_track.box.centre[0] < 0.2


@pytest.mark.parametrize("interval", [0.2, 1.0])
@pytest.mark.parametrize("leftwards_first", [True, False])
def test_two_people_walking_through_each_other_keep_their_ids(
    interval: float, leftwards_first: bool
) -> None:
    """Same label, same line, opposite ways, 0.08 of the frame per detector frame: at the
    crossing their boxes coincide, and only where each was heading tells them apart."""
    tracker, log = Tracker(), Log()
    walker: dict[str, str] = {}  # object id -> "rightwards" / "leftwards"
    for i in range(11):
        rightwards = _seen(0.1 + i * 0.08, y=0.5)
        leftwards = _seen(0.9 - i * 0.08, y=0.5)
        # The detector lists them in no particular order: here it changes at the crossing.
        before = [leftwards, rightwards] if leftwards_first else [rightwards, leftwards]
        seen = before if i <= 5 else before[::-1]
        update = log.add(tracker.update(seen, _at(i * interval)))
        for track in update.entered:
            walker[track.object_id] = "rightwards" if track.box.centre[0] < 0.5 else "leftwards"
    assert len(log.entered) == 2 and len(tracker.tracks) == 2
    assert all(t.hits == 11 for t in tracker.tracks)
    ends = {walker[t.object_id]: t.box.centre[0] for t in tracker.tracks}
    # Each id ends where its walker went (swapped ids would end on the other side).
    assert ends == {"rightwards": pytest.approx(0.9), "leftwards": pytest.approx(0.1)}


def test_one_frame_false_positive_never_enters() -> None:
    tracker, log = Tracker(), Log()
    log.add(tracker.update([_seen(0.5)], _at(0)))
    for k in range(1, 30):
        update = log.add(tracker.update([], _at(k * 0.2)))
        assert update.active == []
    assert log.entered == [] and log.left == [] and log.improved == []
    assert tracker.tracks == []


def test_false_positives_in_different_places_never_enter() -> None:
    tracker, log = Tracker(), Log()
    for i, x in enumerate([0.1, 0.9, 0.4, 0.75, 0.2]):
        log.add(tracker.update([_seen(x, y=0.2 + 0.15 * (i % 3))], _at(i * 0.2)))
    assert log.entered == []


def test_tentative_track_needs_consecutive_hits() -> None:
    tracker, log = Tracker(min_hits=2), Log()
    log.add(tracker.update([_seen(0.5)], _at(0)))
    log.add(tracker.update([], _at(0.2)))
    log.add(tracker.update([_seen(0.5)], _at(0.4)))
    assert log.entered == []
    log.add(tracker.update([_seen(0.5)], _at(0.6)))
    assert len(log.entered) == 1


def test_min_hits_one_enters_at_once() -> None:
    update = Tracker(min_hits=1).update([_seen(0.5)], _at(0))
    assert len(update.entered) == 1 and update.improved == update.entered == update.active


def test_expire_ends_tracks_when_no_updates_come() -> None:
    tracker = Tracker(max_age_s=3.0)
    tracker.update([_seen(0.5)], _at(0))
    tracker.update([_seen(0.52)], _at(0.2))
    tracker.update([_seen(0.9, label="dog")], _at(0.2))  # tentative: vanishes without an event
    assert tracker.expire(_at(2.0)) == []
    assert len(tracker.tracks) == 2
    left = tracker.expire(_at(3.5))
    assert [t.label for t in left] == ["person"]
    assert tracker.tracks == []
    assert tracker.expire(_at(10)) == []


def test_improved_and_best_snapshot() -> None:
    tracker = Tracker()
    tracker.update([_seen(0.30, score=0.9)], _at(0))
    entering = tracker.update([_seen(0.32, score=0.6)], _at(0.2))
    # Entered tracks are improved too: the tentative frame was never kept by the caller.
    assert entering.improved == entering.entered
    (track,) = entering.entered
    assert (track.best_score, track.best_at) == (0.6, _at(0.2))
    assert tracker.update([_seen(0.34, score=0.5)], _at(0.4)).improved == []
    rising = tracker.update([_seen(0.36, score=0.7)], _at(0.6))
    assert rising.improved == [track]
    assert (track.best_score, track.best_at, track.best_box) == (0.7, _at(0.6), track.box)
    assert track.score == 0.7
    later = tracker.update([_seen(0.38, score=0.65)], _at(0.8))
    assert later.improved == [] and later.active == [track]
    assert track.score == 0.65 and track.best_score == 0.7


def test_zones_are_the_ordered_union_of_zones_seen_in() -> None:
    tracker = Tracker()
    for i, zones in enumerate([("drive",), (), ("drive", "porch"), ("lawn", "drive"), ("porch",)]):
        tracker.update([_seen(0.3 + i * 0.02, zones=zones)], _at(i * 0.2))
    (track,) = tracker.tracks
    assert track.zones == ["drive", "porch", "lawn"]


def test_object_ids_are_unique_and_short() -> None:
    tracker = Tracker(min_hits=1)
    update = tracker.update([_seen(0.1), _seen(0.5), _seen(0.9)], _at(0))
    ids = [t.object_id for t in update.entered]
    assert len(set(ids)) == 3 and all(len(i) == 16 for i in ids)


def _zone_events(zones_per_frame: list[tuple[str, ...]]) -> list[tuple[int, str, str]]:
    """(frame, "in"/"out", zone) for one person walking slowly through `zones_per_frame`."""
    tracker, found = Tracker(), []
    for i, zones in enumerate(zones_per_frame):
        update = tracker.update([_seen(0.3 + i * 0.01, zones=zones)], _at(i * 0.2))
        found += [(i, "in", zone) for _, zone in update.zones_entered]
        found += [(i, "out", zone) for _, zone in update.zones_left]
    return found


def test_zone_changes_are_reported_once_they_hold_for_two_frames() -> None:
    drive, both, porch = ("drive",), ("drive", "porch"), ("porch",)
    frames = [drive, drive, drive, both, both, porch, porch, porch, (), ()]
    assert _zone_events(frames) == [
        (1, "in", "drive"),  # confirmed (second frame) standing in the drive
        (4, "in", "porch"),  # second frame in the porch as well
        (6, "out", "drive"),
        (9, "out", "porch"),
    ]


def test_a_foot_on_a_zone_edge_does_not_flap() -> None:
    # In and out every other frame: never two in a row, so no change counts.
    frames = [("drive",), ("drive",), (), ("drive",), (), ("drive",), (), ("drive",)]
    assert _zone_events(frames) == [(1, "in", "drive")]


def test_a_track_that_leaves_is_still_inside_its_zones() -> None:
    tracker = Tracker(max_age_s=1.0)
    tracker.update([_seen(0.3, zones=("drive",))], _at(0))
    tracker.update([_seen(0.31, zones=("drive",))], _at(0.2))
    update = tracker.update([], _at(5))
    (track,) = update.left
    assert track.inside == ["drive"] and update.zones_left == []  # the caller says it left
