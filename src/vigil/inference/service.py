"""Detection at run time: every detected stream's frames → motion gate → scheduler → model →
filters → tracker → events with snapshots.

Threads: frames arrive on each stream's appsink thread (`_on_frame`: rate limit and motion
gate, then a non-blocking offer to the scheduler, which keeps only a stream's newest frame);
models run on the scheduler's workers, which also draw and write snapshots; events go to the
bus with `publish_threadsafe`. A tick thread ends tracks of streams that stopped sending
frames (a still scene, a camera that went away). Nothing here can hold up recording: the
branch feeding it is leaky, and every hand-over here drops rather than waits.

When a stream's detection stops (turned off, stream removed, model changed, `close`), every
object it still tracks ends with an `object.left` whose reason is "stopped": its recording is
held and its clip has an end like any other object's.

A model that fails to load fails detection for the streams using it, with a reason (logged,
`detection.state` event, `GET …/detections/latest`); their recording goes on.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from vigil.config.detection import DEFAULT_MODEL, DetectionConfig, StreamDetectConfig
from vigil.config.resolve import StreamPlan
from vigil.events import (
    DetectionStateChanged,
    Event,
    ObjectEntered,
    ObjectEnteredZone,
    ObjectLeft,
    ObjectLeftZone,
)
from vigil.inference.backend import Detector, ModelError
from vigil.inference.catalogue import find_installed, model_spec
from vigil.inference.labels import builtin_labels, builtin_names, load_labels
from vigil.inference.motion import Motion, MotionGate
from vigil.inference.scheduler import Scheduler
from vigil.inference.snapshots import SnapshotStore, render_snapshot
from vigil.inference.tracker import Track, Tracker
from vigil.inference.types import Detection, Frame, Image
from vigil.inference.zones import DetectionFilter, Zone
from vigil.observability.metrics import (
    DETECTION_FRAMES,
    DETECTION_LATENCY,
    DETECTION_SKIPPED,
    DETECTIONS,
    INFERENCE_BATCH_SIZE,
    INFERENCE_SECONDS,
    OBJECTS,
    OBJECTS_IN_VIEW,
)

logger = logging.getLogger(__name__)

# How often tracks of streams without fresh frames are aged out.
TICK_S = 1.0
# A frame may come this much early and still count as due (videorate's 1 fps floor, jitter).
RATE_SLACK = 0.9
# An object's best snapshot is redrawn when its best score rises by at least this much.
BEST_STEP = 0.02
# `Tracker.expire` at this time ends every track: how a stopping stream ends its objects.
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)


class Branch(Protocol):
    """A stream's detection pipeline (`vigil.media.detect.DetectBranch`)."""

    @property
    def mode(self) -> str: ...
    @property
    def decoder(self) -> str | None: ...
    @property
    def keyframe_interval_s(self) -> float | None: ...

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def configure(self, *, fps: float, decode: str) -> None: ...


# (stream, settings, on_frame, on_error) → a started-later branch
BranchFactory = Callable[
    [str, StreamDetectConfig, Callable[[Image, datetime], None], Callable[[str], None]], Branch
]


@dataclass(slots=True)
class _Job:
    frame: Frame
    queued: float  # time.monotonic() when offered


@dataclass(eq=False)
class _Stream:
    """One detected stream's state."""

    name: str
    settings: StreamDetectConfig
    filter: DetectionFilter
    tracker: Tracker
    motion: MotionGate | None
    branch: Branch | None = None
    state: str = "starting"  # starting, running, failed
    reason: str = "waiting for the first frame"
    last_offer: float = 0.0  # monotonic time of the last frame offered (rate limit)
    last_detect: float = 0.0  # monotonic time of the last frame sent to the detector
    last_motion: Motion | None = None
    motion_frames: int = 0
    still_frames: int = 0
    latest: dict[str, Any] | None = None
    # Object id → (score, JPEG) of its best sighting so far, rendered when it improved: a JPEG
    # is ~50 KB where the frame itself would be ~900 KB, for as long as the object is in view.
    best: dict[str, tuple[float, bytes]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Held while a detection result is handled (entered events published), so ending the
    # stream's tracks waits for it: an object's `object.left` never precedes its entered.
    results: threading.Lock = field(default_factory=threading.Lock)
    ended: bool = False  # its tracks were ended (detection stopped): results are ignored
    # (label, zone) → tracked objects in view now ("" = the whole picture): the gauge's series.
    in_view: dict[tuple[str, str], int] = field(default_factory=dict)


def _filter_of(settings: StreamDetectConfig) -> DetectionFilter:
    zones = [Zone(zone.name, zone.polygon, zone.mode.value) for zone in settings.zones]
    return DetectionFilter(labels=settings.labels, min_score=settings.min_score,
                           min_area=settings.min_area, zones=zones)  # fmt: skip


class DetectionService:
    """Runs detection for every stream whose `detect.enabled` is set."""

    def __init__(
        self,
        config: DetectionConfig,
        *,
        models_dir: Path,
        snapshots: SnapshotStore,
        publish: Callable[[Event], None],
        branch_factory: BranchFactory,
        detector_loader: Callable[..., Detector] | None = None,
    ) -> None:
        self._config = config
        self._models_dir = models_dir
        self._snapshots = snapshots
        self._publish = publish
        self._branch_factory = branch_factory
        self._load_detector = detector_loader or Detector.load
        self._lock = threading.Lock()
        self._streams: dict[str, _Stream] = {}
        self._detectors: dict[str, Detector | ModelError] = {}
        self._detector_lock = threading.Lock()
        self._scheduler: Scheduler[_Job] = Scheduler(
            self._run_batch, max_batch=config.max_batch,
            batch_timeout_s=config.batch_timeout_ms / 1000, workers=config.workers,
            on_batch=self._on_batch,
        )  # fmt: skip
        self._closing = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="detect-tick", daemon=True)
        self._ticker.start()

    # -- configuration ---------------------------------------------------------------------

    def apply(self, plans: Sequence[StreamPlan]) -> None:
        """Make detection follow `plans`: start, reconfigure or stop each stream's. Blocking
        (pipelines change state); call from a worker thread."""
        wanted = {plan.name: plan.detect for plan in plans if plan.enabled and plan.detect}
        with self._lock:
            current = dict(self._streams)
        for name, stream in current.items():
            settings = wanted.get(name)
            if settings is None:
                self._stop(name)
            elif settings != stream.settings:
                self._reconfigure(stream, settings)
        for name, settings in wanted.items():
            if name not in current and settings is not None:
                self._start(name, settings)

    def _start(self, name: str, settings: StreamDetectConfig) -> None:
        tracker = self._config.tracker
        stream = _Stream(
            name=name, settings=settings, filter=_filter_of(settings),
            tracker=Tracker(iou_threshold=tracker.iou_threshold,
                            max_distance=tracker.max_distance, max_age_s=tracker.max_age_s,
                            min_hits=tracker.min_hits),
            motion=MotionGate(settings.motion.threshold, settings.motion.min_area)
            if settings.motion.enabled else None,
        )  # fmt: skip
        with self._lock:
            self._streams[name] = stream
        detector = self._detector(settings.model)
        if isinstance(detector, ModelError):
            self._fail(stream, str(detector))
            return
        stream.branch = self._branch_factory(
            name, settings,
            lambda image, at: self._on_frame(stream, image, at),
            lambda reason: self._on_branch_error(stream, reason),
        )  # fmt: skip
        stream.branch.start()
        logger.info("%s: detection on (%s, %g fps, labels %s)", name, settings.model,
                    settings.fps, ", ".join(settings.labels) or "all")  # fmt: skip

    def _reconfigure(self, stream: _Stream, settings: StreamDetectConfig) -> None:
        if settings.model != stream.settings.model or stream.branch is None:
            self._stop(stream.name)
            self._start(stream.name, settings)
            return
        with stream.lock:
            stream.settings = settings
            stream.filter = _filter_of(settings)
            stream.motion = (
                MotionGate(settings.motion.threshold, settings.motion.min_area)
                if settings.motion.enabled else None
            )  # fmt: skip
        stream.branch.configure(fps=settings.fps, decode=settings.decode.value)
        logger.info("%s: detection settings changed", stream.name)

    def _stop(self, name: str) -> None:
        with self._lock:
            stream = self._streams.pop(name, None)
        if stream is None:
            return
        self._scheduler.forget(name)
        if stream.branch is not None:
            stream.branch.stop()
        self._end_tracks(stream)
        self._publish(DetectionStateChanged(stream=name, state="off", reason="detection off"))

    def close(self) -> None:
        """Stop every stream's detection and the workers. Each object still tracked ends with
        an `object.left` (reason "stopped", `last_seen` when it was last seen, its best
        snapshot saved), published before this returns: the caller lets the event keeper and
        the event history take them before the database closes."""
        self._closing.set()
        with self._lock:
            streams = list(self._streams.values())
            self._streams.clear()
        for stream in streams:
            if stream.branch is not None:
                stream.branch.stop()
        self._scheduler.close(10.0)
        self._ticker.join(5.0)
        for stream in streams:
            self._end_tracks(stream)

    def _end_tracks(self, stream: _Stream) -> None:
        """End every object `stream` still tracks, with an `object.left` whose reason is
        "stopped"; results of frames still in flight are ignored from now on."""
        with stream.results, stream.lock:
            stream.ended = True
            left = [(t, stream.best.pop(t.object_id, (0.0, b""))[1] or None)
                    for t in stream.tracker.expire(_END_OF_TIME)]  # fmt: skip
            stream.best.clear()
        for track, jpeg in left:
            try:
                self._leave(stream, track, jpeg, reason="stopped")
            except Exception:
                logger.exception("%s: ending the track of %s failed", stream.name,
                                 track.object_id)  # fmt: skip
        if left:
            logger.info("%s: detection stopped with %d object(s) in view: ended", stream.name,
                        len(left))  # fmt: skip
        with stream.lock:
            gone, stream.in_view = list(stream.in_view), {}
        for label, zone in gone:
            with contextlib.suppress(KeyError):  # never set
                OBJECTS_IN_VIEW.remove(stream.name, label, zone)

    @staticmethod
    def _count_in_view(stream: _Stream) -> None:
        """Recount the objects in view by label and zone into the gauge (with `stream.lock`
        held); a count that fell to nothing stays as 0, so a graph shows it emptying."""
        counts = dict.fromkeys(stream.in_view, 0)
        for track in stream.tracker.tracks:
            if track.confirmed:
                for zone in ("", *track.inside):
                    counts[(track.label, zone)] = counts.get((track.label, zone), 0) + 1
        for (label, zone), count in counts.items():
            if stream.in_view.get((label, zone)) != count:
                OBJECTS_IN_VIEW.labels(stream.name, label, zone).set(count)
        stream.in_view = counts

    # -- models ----------------------------------------------------------------------------

    def _detector(self, model: str) -> Detector | ModelError:
        with self._detector_lock:
            known = self._detectors.get(model)
            if known is None:
                known = self._load(model)
                self._detectors[model] = known
            return known

    def _load(self, model: str) -> Detector | ModelError:
        config = self._config
        try:
            if model == DEFAULT_MODEL:
                spec = model_spec(model)
                path = find_installed(model, self._models_dir)
                if path is None:
                    candidate = self._models_dir / spec.file_name
                    raise ModelError(
                        f"model '{model}' is not installed in {self._models_dir}"
                        + (" (the file there does not match its pinned sha256)"
                           if candidate.exists() else "")
                        + f": run `vigil models install {model}`"
                    )  # fmt: skip
                family, labels = spec.family, builtin_labels(spec.labels)
            else:
                custom = config.models[model]
                path, family = custom.path, custom.family.value
                labels = (
                    builtin_labels(custom.labels) if custom.labels in builtin_names()
                    else load_labels(Path(custom.labels))
                )  # fmt: skip
            detector = self._load_detector(path, family=family, labels=labels,
                                           providers=config.providers,
                                           threads=config.threads)  # fmt: skip
        except ModelError as error:
            logger.error("detection model '%s' cannot be used: %s", model, error)
            return error
        except (OSError, ValueError) as error:
            logger.error("detection model '%s' cannot be used: %s", model, error)
            return ModelError(f"model '{model}': {error}")
        logger.info("detection model '%s' loaded from %s (%s)", model, path, detector.provider)
        return detector

    # -- frames (appsink threads) ----------------------------------------------------------

    def _on_frame(self, stream: _Stream, image: Image, at: datetime) -> None:
        now = time.monotonic()
        settings = stream.settings
        if now - stream.last_offer < RATE_SLACK / settings.fps:
            return  # faster than asked (videorate cannot go below 1 fps)
        stream.last_offer = now
        if stream.state != "running":
            self._set_state(stream, "running", "detecting")
        with stream.lock:
            gate = stream.motion
            tracking = bool(stream.tracker.tracks)
        if gate is not None:
            motion = gate.update(image)
            stream.last_motion = motion
            keepalive = settings.motion.keepalive_s
            due = keepalive > 0 and now - stream.last_detect >= keepalive
            if motion.moving:
                stream.motion_frames += 1
            else:
                stream.still_frames += 1
            if not motion.moving and not tracking and not due:
                DETECTION_SKIPPED.labels(stream.name, "motion").inc()
                return
        stream.last_detect = now
        frame = Frame(stream=stream.name, image=image, at=at)
        if not self._scheduler.offer(stream.name, settings.model, _Job(frame, now)):
            DETECTION_SKIPPED.labels(stream.name, "busy").inc()

    # -- inference (worker threads) --------------------------------------------------------

    def _run_batch(self, model: str, jobs: list[_Job]) -> None:
        detector = self._detector(model)
        if isinstance(detector, ModelError):
            return
        with self._lock:
            streams = [self._streams.get(job.frame.stream) for job in jobs]
        floor = min((s.settings.min_score for s in streams if s is not None), default=0.5)
        results = detector.detect([job.frame.image for job in jobs], floor)
        for job, stream, detections in zip(jobs, streams, results, strict=True):
            if stream is None or self._closing.is_set():
                continue
            try:
                with stream.results:
                    if not stream.ended:
                        self._after_detection(stream, job, detections)
            except Exception:
                logger.exception("%s: handling detections failed", stream.name)

    def _on_batch(self, model: str, size: int, seconds: float) -> None:
        INFERENCE_SECONDS.labels(model).observe(seconds)
        INFERENCE_BATCH_SIZE.labels(model).observe(size)

    def _after_detection(self, stream: _Stream, job: _Job, detections: list[Detection]) -> None:
        frame = job.frame
        DETECTION_FRAMES.labels(stream.name).inc()
        DETECTION_LATENCY.observe(time.monotonic() - job.queued)
        with stream.lock:
            kept = stream.filter.apply(detections)
            update = stream.tracker.update(kept, frame.at)
            improved = [t for t in update.improved
                        if t.best_score >= stream.best.get(t.object_id, (-1.0, b""))[0]
                        + BEST_STEP]  # fmt: skip
            left = [(track, stream.best.pop(track.object_id, (0.0, b""))[1] or None)
                    for track in update.left]  # fmt: skip
            ids = {id(d): t.object_id for t in update.active for d, _z in kept
                   if t.last_seen == frame.at and t.box == d.box}  # fmt: skip
            self._count_in_view(stream)
        rendered = {t.object_id: (t.best_score, jpeg) for t in improved
                    if (jpeg := self._render(stream.name, t, frame.image)) is not None}  # fmt: skip
        with stream.lock:  # (only for objects still tracked: never an orphan entry)
            live = {t.object_id for t in stream.tracker.tracks}
            stream.best.update((k, v) for k, v in rendered.items() if k in live)
        for detection, _zones in kept:
            DETECTIONS.labels(stream.name, detection.label).inc()
        stream.latest = {
            "at": frame.at,
            "detections": [
                {"label": d.label, "score": round(d.score, 4),
                 "box": [round(v, 5) for v in d.box.as_tuple()],
                 "object_id": ids.get(id(d)), "zones": list(zones)}
                for d, zones in kept
            ],
        }  # fmt: skip
        for track in update.entered:
            OBJECTS.labels(stream.name, track.label).inc()
            # Its best sighting is the one that confirmed it: that JPEG is the entered one.
            jpeg = rendered.get(track.object_id, (0.0, None))[1] or self._render(
                stream.name, track, frame.image
            )
            snapshot = (
                None if jpeg is None
                else self._snapshots.save(stream.name, track.object_id, "entered", jpeg, frame.at)
            )  # fmt: skip
            self._publish(ObjectEntered(
                at=frame.at, stream=stream.name, object_id=track.object_id, label=track.label,
                score=round(track.score, 4), box=_rounded(track.box.as_tuple()),
                zones=tuple(track.zones), snapshot=snapshot,
            ))  # fmt: skip
        for track, zone in update.zones_entered:
            self._publish(ObjectEnteredZone(
                at=frame.at, stream=stream.name, object_id=track.object_id, label=track.label,
                zone=zone, score=round(track.score, 4), box=_rounded(track.box.as_tuple()),
            ))  # fmt: skip
        for track, zone in update.zones_left:
            self._publish(self._zone_left(stream, track, zone, frame.at))
        for track, jpeg in left:
            self._leave(stream, track, jpeg)

    @staticmethod
    def _zone_left(stream: _Stream, track: Track, zone: str, at: datetime) -> ObjectLeftZone:
        return ObjectLeftZone(
            at=at, stream=stream.name, object_id=track.object_id, label=track.label, zone=zone,
            score=round(track.score, 4), box=_rounded(track.box.as_tuple()),
        )  # fmt: skip

    def _leave(
        self, stream: _Stream, track: Track, jpeg: bytes | None,
        reason: str = "left",
    ) -> None:  # fmt: skip
        for zone in track.inside:  # it leaves the zones it stood in with the picture
            self._publish(self._zone_left(stream, track, zone, track.last_seen))
        snapshot = None
        if jpeg is not None:
            snapshot = self._snapshots.save(stream.name, track.object_id, "best", jpeg,
                                            track.best_at)  # fmt: skip
        self._publish(ObjectLeft(
            stream=stream.name, object_id=track.object_id, label=track.label,
            score=round(track.best_score, 4), box=_rounded(track.best_box.as_tuple()),
            first_seen=track.first_seen, last_seen=track.last_seen, zones=tuple(track.zones),
            snapshot=snapshot, reason=reason,
        ))  # fmt: skip

    def _render(self, stream: str, track: Track, image: Image) -> bytes | None:
        """The JPEG of `image` with the track's best box drawn (None if it cannot be made)."""
        try:
            return render_snapshot(image, track.best_box, track.label, track.best_score,
                                   quality=self._config.snapshot_quality)  # fmt: skip
        except ValueError:
            logger.exception("%s: snapshot of %s not rendered", stream, track.object_id)
            return None

    # -- ageing, state ---------------------------------------------------------------------

    def _tick(self) -> None:
        while not self._closing.wait(TICK_S):
            with self._lock:
                streams = list(self._streams.values())
            now = datetime.now(UTC)
            for stream in streams:
                with stream.lock:
                    left = [(t, stream.best.pop(t.object_id, (0.0, b""))[1] or None)
                            for t in stream.tracker.expire(now)]  # fmt: skip
                    if left:
                        self._count_in_view(stream)
                for track, jpeg in left:
                    try:
                        self._leave(stream, track, jpeg)
                    except Exception:
                        logger.exception("%s: ending a track failed", stream.name)

    def _on_branch_error(self, stream: _Stream, reason: str) -> None:
        self._set_state(stream, "failed", f"detection pipeline: {reason}")

    def _fail(self, stream: _Stream, reason: str) -> None:
        self._set_state(stream, "failed", reason)

    def _set_state(self, stream: _Stream, state: str, reason: str) -> None:
        if (stream.state, stream.reason) == (state, reason):
            return
        stream.state, stream.reason = state, reason
        if state == "failed":
            logger.error("%s: detection failed: %s (recording is not affected)",
                         stream.name, reason)  # fmt: skip
        self._publish(DetectionStateChanged(stream=stream.name, state=state, reason=reason))

    # -- reading (API) ---------------------------------------------------------------------

    def latest(self, name: str) -> dict[str, Any] | None:
        """What the stream's detector saw last, with its rates and state; None when detection
        is not enabled for it (`vigil.api.services.DetectionView`)."""
        with self._lock:
            stream = self._streams.get(name)
        if stream is None:
            return None
        detector = self._detectors.get(stream.settings.model)
        stats = self._scheduler.stats(name)
        branch = stream.branch
        latest = stream.latest or {}
        motion = stream.last_motion
        with stream.lock:
            counts = dict(stream.in_view)
        in_view = {label: n for (label, zone), n in sorted(counts.items()) if not zone and n}
        in_zones: dict[str, dict[str, int]] = {}
        for (label, zone), n in sorted(counts.items()):
            if zone and n:
                in_zones.setdefault(zone, {})[label] = n
        return {
            "stream": name,
            "state": stream.state,
            "reason": stream.reason,
            "model": stream.settings.model,
            "provider": detector.provider if isinstance(detector, Detector) else None,
            "decoder": branch.decoder if branch is not None else None,
            "mode": branch.mode if branch is not None else None,
            "keyframe_interval_s": branch.keyframe_interval_s if branch is not None else None,
            "fps": stream.settings.fps,
            "processed_fps": round(self._scheduler.processed_rate(name), 3),
            "skipped_fps": round(self._scheduler.skip_rate(name), 3),
            "frames": stats.processed,
            "skipped": stats.skipped,
            "motion": None if motion is None else {
                "moving": motion.moving, "changed": round(motion.changed, 5),
                "moving_frames": stream.motion_frames, "still_frames": stream.still_frames,
            },
            "at": latest.get("at"),
            "detections": latest.get("detections", []),
            "tracked": len(stream.tracker.tracks),
            "in_view": in_view,
            "in_zones": in_zones,
        }  # fmt: skip


def _rounded(values: tuple[float, ...]) -> tuple[float, float, float, float]:
    x1, y1, x2, y2 = (round(v, 5) for v in values)
    return (x1, y1, x2, y2)
