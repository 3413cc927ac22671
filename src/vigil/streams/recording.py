"""A supervised stream's recording side: where its files go, what a failed write or a full
disk costs in the index, and whether the recording keeps writing while video arrives.

The supervisor owns the stream's state and pipeline; this owns the facts about its files, so
that every way recording can stop — a write that fails, no volume with room, a branch that
stalls — is accounted as a gap in one place.
"""

from __future__ import annotations

import logging
from datetime import datetime

from vigil.config.resolve import StreamPlan
from vigil.events import EventBus, RecordingBlocked, RecordingResumed
from vigil.media.ingest import IngestPipeline
from vigil.media.messages import RecordingWriteFailed, SegmentFileClosed, SegmentFileOpened
from vigil.media.recorder import PlacementRefused, RecordingSpec
from vigil.recording.paths import claim_segment_path
from vigil.recording.segments import SegmentIndex
from vigil.recording.volumes import NoSpace, VolumePool
from vigil.streams.health import RecordingWatch

logger = logging.getLogger(__name__)

# A streaming stream whose recording wrote nothing this long while keyframes kept coming is
# stalled (`recording_stalled`): detected within 10 s with a 1-second sampling period.
RECORDING_STALL_S = 8.0


class StreamRecording:
    """The recording facts of one stream, kept in step with its index rows and gaps."""

    def __init__(
        self,
        plan: StreamPlan,
        *,
        bus: EventBus,
        index: SegmentIndex,
        volumes: VolumePool | None,
    ) -> None:
        self.plan = plan
        self._bus = bus
        self._index = index
        self._volumes = volumes
        self.blocked: str | None = None  # why recording is blocked (no space), while it is
        self._watch = RecordingWatch(RECORDING_STALL_S)

    def spec(self) -> RecordingSpec:
        """How the stream's recording branch names, places and cuts its files."""
        plan, volumes = self.plan, self._volumes

        def location_for(start: datetime) -> str:  # a GStreamer streaming thread
            if volumes is None:
                return str(claim_segment_path(plan.recording_root, plan.name, start))
            try:
                path, _volume = volumes.place(plan.name, start)
            except NoSpace as refused:
                raise PlacementRefused(str(refused), finish_current=refused.exhausted) from None
            return str(path)

        return RecordingSpec(
            segment_seconds=plan.segment_seconds,
            fragment_seconds=plan.fragment_seconds,
            location_for=location_for,
        )

    def on_segment(self, message: SegmentFileOpened | SegmentFileClosed) -> None:
        """A file opened or closed: its index row (whatever source generation wrote it)."""
        if isinstance(message, SegmentFileOpened):
            self._index.opened(self.plan.name, message.location, message.start,
                               message.codec, message.width, message.height)  # fmt: skip
            self.set_blocked(None, streaming=False)
        else:
            self._index.closed(self.plan.name, message.location, message.duration_s)

    def write_failed(self, message: RecordingWriteFailed) -> str:
        """Count a failed write against its volume; the gap's reason."""
        volume = None
        if self._volumes is not None:
            volume = self._volumes.write_failed(
                message.location, no_space=message.no_space, message=message.message
            )
        where = f"volume {volume}" if volume else "disk"
        logger.error("%s: writing %s failed (%s): %s", self.plan.name, message.location, where,
                     message.message)  # fmt: skip
        return f"write failed on {where}: {message.message}"

    def account_failed_file(
        self, location: str, reason: str, *, was_open: bool | None, streaming: bool
    ) -> None:
        """What a failed file cost: the open one interrupts recording until the next segment
        opens elsewhere; one finished at its split (or already closed) leaves a hole before
        the next segment, accounted when the file is probed."""
        if was_open and streaming:
            self._index.interrupted(self.plan.name, reason)
        else:
            self._index.write_failed(self.plan.name, location, reason)

    def set_blocked(self, reason: str | None, *, streaming: bool) -> None:
        """No volume can take a file (`reason`), or recording resumed (None)."""
        if reason == self.blocked:
            return
        was, self.blocked = self.blocked, reason
        if reason is not None:
            self._bus.publish(RecordingBlocked(stream=self.plan.name, reason=reason))
            if was is None and streaming:
                self._index.interrupted(self.plan.name, f"recording blocked: {reason}")
        else:
            logger.info("%s: recording resumed", self.plan.name)
            self._bus.publish(RecordingResumed(stream=self.plan.name))

    def forget(self) -> None:
        """Not streaming: the stall watch starts afresh next time."""
        self._watch.reset()

    def stalled(self, pipeline: IngestPipeline, now: float) -> bool:
        """Feed the watch one sample (once a second while streaming): True when the recording
        has written nothing for `RECORDING_STALL_S` while keyframes came."""
        progress = pipeline.recording_progress()
        if not self.plan.record or self.blocked is not None or progress is None:
            self._watch.reset()
            return False
        written, keyframes = progress
        if self._watch.stalled(written, keyframes, now):
            self._watch.reset()
            return True
        return False
