"""The tracker: turns a stream's detections, frame after frame, into objects that enter and leave,
so one person walking past is one event rather than hundreds of detections.

Deliberately simple (a constant-velocity guess, no appearance features): detection rates here
are a few frames per second, objects are few, and the events only need "one real object = one
track".

Each track keeps a velocity (its centre's movement per second, smoothed over its last matches)
and is matched where it should be by now: its last box moved by velocity x time since seen.
Without that, two people of the same label walking through each other have, just after the
crossing, the same last box and two detections equally close to it, and may swap ids.

Association, per label (a person is never matched with a car), against the predicted boxes:

1. greedy by IoU: pairs with IoU >= `iou_threshold`, best first;
2. then, for tracks and detections still unmatched, greedy by centre distance, nearest first. A
   pair may match when the distance (normalised: a fraction of the frame) is at most
   `max_distance * max(1, gap)`, with `gap` the seconds since the track was last seen. So
   `max_distance` is how far an object may move per second, and never less than that: at 5 fps a
   walking person overlaps themselves and IoU does the work, at one frame every 2 s the same
   person has moved a box width or more and the allowance has grown with the gap. The gap is at
   most `max_age_s`, after which the track has ended anyway.

Zones: a confirmed track is `inside` the zones its latest box stands in. A change (in or out of
a zone) counts once it held for `ZONE_FRAMES` matched frames in a row, so a foot point jittering
on a zone's edge does not flap; it is reported in `zones_entered` / `zones_left`. A track is
inside its first box's zones from the update that confirms it.

Lifecycle: an unmatched detection starts a tentative track; it is confirmed (`entered`) when it
has `min_hits` matches in consecutive updates. A tentative track that misses an update vanishes
without an event (a one-frame false positive never enters). A confirmed track not seen for more
than `max_age_s` is `left`, reported by `update` or, when no detection runs at all (a still scene
behind the motion gate), by `expire`.

One `Tracker` per stream; not thread-safe (the scheduler never runs a stream's frames
concurrently, and feeds them in order).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from vigil.inference.types import Box, Detection

VELOCITY_WEIGHT = 0.5  # of the newest movement in a track's smoothed velocity
ZONE_FRAMES = 2  # matched frames in a row a zone change must hold before it counts


@dataclass(slots=True)
class Track:
    """One tracked object. `box`/`score` are the latest; `best_*` the frame the caller was told
    to keep for the snapshot (see `TrackerUpdate.improved`); `zones` the include zones it has
    been in, in the order first entered."""

    object_id: str
    label: str
    first_seen: datetime
    last_seen: datetime
    box: Box
    score: float
    best_score: float
    best_box: Box
    best_at: datetime
    zones: list[str] = field(default_factory=list)
    hits: int = 1
    confirmed: bool = False
    velocity: tuple[float, float] = (0.0, 0.0)  # centre movement per second, smoothed
    inside: list[str] = field(default_factory=list)  # the zones it stands in now
    zone_votes: dict[str, int] = field(default_factory=dict)  # changes not yet counted

    def predicted(self, at: datetime, horizon_s: float) -> Box:
        """Where its box should be at `at`: moved by its velocity for the time since it was
        last seen (at most `horizon_s`), clipped to the frame."""
        gap = min(max((at - self.last_seen).total_seconds(), 0.0), horizon_s)
        dx, dy = self.velocity[0] * gap, self.velocity[1] * gap
        if dx == 0.0 and dy == 0.0:
            return self.box
        box = self.box
        return Box.clipped(box.x1 + dx, box.y1 + dy, box.x2 + dx, box.y2 + dy)


@dataclass(frozen=True, slots=True)
class TrackerUpdate:
    """What one update changed.

    `entered`: tracks confirmed by this update. `left`: confirmed tracks that ended (not seen for
    more than max_age_s). `improved`: confirmed tracks whose `best_*` now refers to this update's
    frame, so the caller keeps this frame for their snapshot; it includes every entered track,
    whose best is reset to the confirming frame (frames seen while tentative were never kept).
    `active`: every confirmed track still alive after the update. `zones_entered` /
    `zones_left`: (track, zone) for every zone a confirmed track came into or went out of, an
    entered track's first zones included; tracks that left are still `inside` theirs.
    """

    entered: list[Track]
    left: list[Track]
    improved: list[Track]
    active: list[Track]
    zones_entered: list[tuple[Track, str]] = field(default_factory=list)
    zones_left: list[tuple[Track, str]] = field(default_factory=list)


class Tracker:
    """Associates a stream's successive detections into tracks; see the module docstring."""

    def __init__(
        self,
        iou_threshold: float = 0.3,
        max_distance: float = 0.15,
        max_age_s: float = 3.0,
        min_hits: int = 2,
    ) -> None:
        if not 0.0 < iou_threshold <= 1.0:
            raise ValueError("iou_threshold must be in (0, 1]")
        if max_distance < 0.0:
            raise ValueError("max_distance must not be negative")
        if max_age_s <= 0.0:
            raise ValueError("max_age_s must be positive")
        if min_hits < 1:
            raise ValueError("min_hits must be at least 1")
        self._iou_threshold = iou_threshold
        self._max_distance = max_distance
        self._max_age_s = max_age_s
        self._min_hits = min_hits
        self._tracks: list[Track] = []

    @property
    def tracks(self) -> list[Track]:
        """Every live track, tentative ones included, oldest first."""
        return list(self._tracks)

    def expire(self, at: datetime) -> list[Track]:
        """End tracks not seen for more than max_age_s by `at`; returns the confirmed ones (left).
        For time passing with no detection run."""
        left: list[Track] = []
        kept: list[Track] = []
        for track in self._tracks:
            if (at - track.last_seen).total_seconds() > self._max_age_s:
                if track.confirmed:
                    left.append(track)
            else:
                kept.append(track)
        self._tracks = kept
        return left

    def update(
        self, detections: Sequence[tuple[Detection, tuple[str, ...]]], at: datetime
    ) -> TrackerUpdate:
        """Fold one frame's (filtered) detections, each with the zones it is in, taken at `at`."""
        left = self.expire(at)
        matches = self._associate(detections, at)
        entered: list[Track] = []
        improved: list[Track] = []
        zones_entered: list[tuple[Track, str]] = []
        zones_left: list[tuple[Track, str]] = []
        matched_tracks: set[int] = set()
        for track, index in matches:
            detection, zones = detections[index]
            matched_tracks.add(id(track))
            if track.confirmed:
                came, went = _zone_changes(track, zones)
                zones_entered += [(track, zone) for zone in came]
                zones_left += [(track, zone) for zone in went]
            self._observe(track, detection, zones, at)
            if not track.confirmed:
                track.best_score, track.best_box, track.best_at = (
                    detection.score,
                    detection.box,
                    at,
                )
                if track.hits >= self._min_hits:
                    track.confirmed = True
                    track.inside = list(dict.fromkeys(zones))
                    entered.append(track)
                    improved.append(track)
                    zones_entered += [(track, zone) for zone in track.inside]
            elif detection.score > track.best_score:
                track.best_score, track.best_box, track.best_at = (
                    detection.score,
                    detection.box,
                    at,
                )
                improved.append(track)
        # A tentative track must be seen in consecutive updates.
        self._tracks = [t for t in self._tracks if t.confirmed or id(t) in matched_tracks]
        matched_detections = {index for _, index in matches}
        for index, (detection, zones) in enumerate(detections):
            if index in matched_detections:
                continue
            track = self._start(detection, zones, at)
            self._tracks.append(track)
            if track.confirmed:
                track.inside = list(track.zones)
                entered.append(track)
                improved.append(track)
                zones_entered += [(track, zone) for zone in track.inside]
        active = [t for t in self._tracks if t.confirmed]
        return TrackerUpdate(entered=entered, left=left, improved=improved, active=active,
                             zones_entered=zones_entered, zones_left=zones_left)  # fmt: skip

    # -- internals ---------------------------------------------------------------------------

    def _associate(
        self, detections: Sequence[tuple[Detection, tuple[str, ...]]], at: datetime
    ) -> list[tuple[Track, int]]:
        """(track, index into detections) for every match; see the module docstring."""
        matches: list[tuple[Track, int]] = []
        for label in dict.fromkeys(d.label for d, _ in detections):
            tracks = [t for t in self._tracks if t.label == label]
            guesses = [t.predicted(at, self._max_age_s) for t in tracks]
            indices = [i for i, (d, _) in enumerate(detections) if d.label == label]
            boxes = [detections[i][0].box for i in indices]
            free_tracks = set(range(len(tracks)))
            free_pairs = set(range(len(indices)))

            by_iou: list[tuple[float, int, int]] = []
            for ti, guess in enumerate(guesses):
                for pi, box in enumerate(boxes):
                    iou = guess.iou(box)
                    if iou >= self._iou_threshold:
                        by_iou.append((-iou, ti, pi))
            by_iou.sort()
            for _, ti, pi in by_iou:
                if ti in free_tracks and pi in free_pairs:
                    free_tracks.discard(ti)
                    free_pairs.discard(pi)
                    matches.append((tracks[ti], indices[pi]))

            by_distance: list[tuple[float, int, int]] = []
            for ti in free_tracks:
                track = tracks[ti]
                gap = max((at - track.last_seen).total_seconds(), 0.0)
                allowed = self._max_distance * max(1.0, gap)
                for pi in free_pairs:
                    distance = math.dist(guesses[ti].centre, boxes[pi].centre)
                    if distance <= allowed:
                        by_distance.append((distance, ti, pi))
            by_distance.sort()
            for _, ti, pi in by_distance:
                if ti in free_tracks and pi in free_pairs:
                    free_tracks.discard(ti)
                    free_pairs.discard(pi)
                    matches.append((tracks[ti], indices[pi]))
        return matches

    def _start(self, detection: Detection, zones: tuple[str, ...], at: datetime) -> Track:
        track = Track(
            object_id=uuid.uuid4().hex[:16],
            label=detection.label,
            first_seen=at,
            last_seen=at,
            box=detection.box,
            score=detection.score,
            best_score=detection.score,
            best_box=detection.box,
            best_at=at,
            zones=list(dict.fromkeys(zones)),
        )
        track.confirmed = self._min_hits <= 1
        return track

    @staticmethod
    def _observe(track: Track, detection: Detection, zones: tuple[str, ...], at: datetime) -> None:
        gap = (at - track.last_seen).total_seconds()
        if gap > 0.0:
            (x0, y0), (x1, y1) = track.box.centre, detection.box.centre
            now = ((x1 - x0) / gap, (y1 - y0) / gap)
            old = track.velocity
            # The first match sets it; later ones are averaged in, so one jittery box (NMS
            # picking a slightly different outline) does not throw the guess far off.
            track.velocity = now if track.hits == 1 else (
                VELOCITY_WEIGHT * now[0] + (1 - VELOCITY_WEIGHT) * old[0],
                VELOCITY_WEIGHT * now[1] + (1 - VELOCITY_WEIGHT) * old[1],
            )  # fmt: skip
        track.last_seen = at
        track.box = detection.box
        track.score = detection.score
        track.hits += 1
        for zone in zones:
            if zone not in track.zones:
                track.zones.append(zone)


def _zone_changes(track: Track, zones: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """(zones come into, zones gone out of) by a confirmed track whose box now stands in
    `zones`: each change counts once it held for ZONE_FRAMES matched frames in a row."""
    came: list[str] = []
    went: list[str] = []
    now = set(zones)
    for zone in dict.fromkeys([*track.inside, *zones]):
        if (zone in now) == (zone in track.inside):
            track.zone_votes.pop(zone, None)
            continue
        votes = track.zone_votes.get(zone, 0) + 1
        if votes < ZONE_FRAMES:
            track.zone_votes[zone] = votes
            continue
        track.zone_votes.pop(zone, None)
        if zone in now:
            track.inside.append(zone)
            came.append(zone)
        else:
            track.inside.remove(zone)
            went.append(zone)
    return came, went
