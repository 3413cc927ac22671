"""One stream's supervisor: runs its pipeline, feeds the state machine, retries with back-off.

It owns the stream's `IngestPipeline` (blocking GStreamer calls go to the media executor),
receives the pipeline's messages on the event loop, and carries out the state machine's actions.
A failure here is this stream's business only: other streams never wait on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from vigil.config.resolve import StreamPlan
from vigil.events import EventBus, StreamStateChanged, utc_now
from vigil.media.ingest import IngestPipeline
from vigil.media.messages import (
    FirstFrame,
    MediaMessage,
    PipelineEos,
    PipelineError,
    PipelineWarning,
    SegmentFileClosed,
    SegmentFileOpened,
)
from vigil.media.recorder import RecordingSpec
from vigil.media.sources import SourceFailure
from vigil.recording.paths import claim_segment_path
from vigil.recording.segments import SegmentIndex
from vigil.streams.backoff import Backoff
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

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A stream that has delivered video this long is healthy again: its back-off starts over.
STABLE_AFTER_S = 30.0
# No video this long after starting is a failure (the camera accepted us but sends nothing).
FIRST_FRAME_TIMEOUT_S = 20.0
# Stop waiting this long for the open segment to be finished cleanly.
STOP_TIMEOUT_S = 5.0

PERMANENT_ERRORS = ("Unauthorized", "not authorized", "Not Found", "records H264 and H265")


@dataclass(frozen=True)
class _FirstFrameDeadline:
    """Internal timer: the first frame should have arrived by now."""


_Item = StreamEvent | MediaMessage | _FirstFrameDeadline


@dataclass(frozen=True)
class StreamStatus:
    """What a stream is doing now."""

    name: str
    state: StreamState
    reason: str
    since: datetime
    source: str
    restarts: int


class StreamSupervisor:
    """Keeps one stream running (or stopped) and reports its state."""

    def __init__(
        self,
        plan: StreamPlan,
        *,
        bus: EventBus,
        index: SegmentIndex,
        media_executor: Executor,
        backoff: Backoff | None = None,
    ) -> None:
        self.plan = plan
        self._bus = bus
        self._index = index
        self._executor = media_executor
        self._backoff = backoff or Backoff()
        self._state = StreamState.STOPPED
        self._reason = "not started"
        self._since = utc_now()
        self._restarts = 0
        self._pipeline: IngestPipeline | None = None
        self._events: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._timers: list[asyncio.TimerHandle] = []
        self._source_description = "not built"

    @property
    def status(self) -> StreamStatus:
        """The stream's state, reason and since when."""
        return StreamStatus(
            self.plan.name,
            self._state,
            self._reason,
            self._since,
            self._source_description,
            self._restarts,
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start supervising (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"stream-{self.plan.name}"
            )
        self._events.put_nowait(Start())

    async def stop(self) -> None:
        """Stop the stream, finishing its open segment; returns when the pipeline is gone."""
        if self._task is None:
            return
        self._events.put_nowait(Stop())
        task, self._task = self._task, None
        try:
            await task
        finally:
            self._cancel_timers()

    async def _run(self) -> None:
        try:
            while True:
                item = await self._events.get()
                if isinstance(item, Stop):
                    await self._apply(item)
                    return
                if isinstance(item, (Start, Frames, Failure, RetryDue, Stable)):
                    await self._apply(item)
                else:
                    await self._on_media(item)
        finally:
            if self._pipeline is not None:
                await self._teardown()

    # -- state machine --------------------------------------------------------------------

    async def _apply(self, event: StreamEvent) -> None:
        step = transition(self._state, self._reason, event)
        if step.state != self._state or step.reason != self._reason:
            old = self._state
            self._state, self._reason, self._since = step.state, step.reason, utc_now()
            if old != step.state:
                log = (
                    logger.warning
                    if step.state in (StreamState.RECONNECTING, StreamState.FAILED)
                    else logger.info
                )
                log("%s: %s -> %s (%s)", self.plan.name, old, step.state, step.reason)
                self._bus.publish(
                    StreamStateChanged(
                        stream=self.plan.name,
                        old=old.value,
                        new=step.state.value,
                        reason=step.reason,
                    )
                )
        for action in step.actions:
            await self._do(action)

    async def _do(self, action: Action) -> None:
        if action is Action.START_PIPELINE:
            await self._start_pipeline()
        elif action is Action.STOP_PIPELINE:
            await self._teardown()
        elif action is Action.SCHEDULE_RETRY:
            delay = self._backoff.next_delay()
            if self._state is StreamState.FAILED:
                delay = max(delay, self._backoff.cap)
            self._restarts += 1
            self._later(delay, RetryDue())
        elif action is Action.RESET_BACKOFF:
            self._backoff.reset()

    def _later(self, delay: float, event: _Item) -> None:
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(delay, self._events.put_nowait, event))

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # -- pipeline -------------------------------------------------------------------------

    async def _in_media_thread(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def _start_pipeline(self) -> None:
        self._cancel_timers()
        loop = asyncio.get_running_loop()

        def post(message: MediaMessage) -> None:  # GStreamer threads
            loop.call_soon_threadsafe(self._events.put_nowait, message)

        plan = self.plan

        def build() -> IngestPipeline:
            pipeline = IngestPipeline(
                plan.name, plan.source, post, read_batch_ms=plan.read_batch_ms
            )
            if plan.record:
                pipeline.attach_recording(
                    RecordingSpec(
                        segment_seconds=plan.segment_seconds,
                        fragment_seconds=plan.fragment_seconds,
                        location_for=lambda start: str(
                            claim_segment_path(plan.recording_root, plan.name, start)
                        ),
                    )
                )
            pipeline.start()
            return pipeline

        try:
            self._pipeline = await self._in_media_thread(build)
        except SourceFailure as exc:  # the camera refused, or is not there
            self._events.put_nowait(Failure(str(exc), permanent=exc.permanent))
            return
        except Exception as exc:  # a source that cannot even be built is this stream's failure
            logger.exception("%s: cannot start the pipeline", plan.name)
            self._events.put_nowait(Failure(str(exc), permanent=_is_permanent(str(exc))))
            return
        self._source_description = self._pipeline.description
        self._later(FIRST_FRAME_TIMEOUT_S, _FirstFrameDeadline())

    async def _teardown(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        self._cancel_timers()
        if pipeline is None:
            return
        await self._in_media_thread(lambda: pipeline.stop(STOP_TIMEOUT_S))
        # The pipeline's last words (its final segment closing) are queued by now: take them.
        pending: list[_Item] = []
        while not self._events.empty():
            item = self._events.get_nowait()
            if isinstance(item, (SegmentFileOpened, SegmentFileClosed)):
                await self._on_media(item)
            else:
                pending.append(item)
        for item in pending:
            self._events.put_nowait(item)
        # Files the recorder did not get to finish are completed from what reached the disk.
        self._index.abandon(self.plan.name)

    async def _on_media(self, message: MediaMessage | _FirstFrameDeadline) -> None:
        if isinstance(message, SegmentFileOpened):
            self._index.opened(
                self.plan.name,
                message.location,
                message.start,
                message.codec,
                message.width,
                message.height,
            )
        elif isinstance(message, SegmentFileClosed):
            self._index.closed(self.plan.name, message.location, message.duration_s)
        elif isinstance(message, FirstFrame):
            self._cancel_timers()
            self._later(STABLE_AFTER_S, Stable())
            await self._apply(Frames())
        elif isinstance(message, PipelineError):
            if self._pipeline is not None:
                reason = message.message
                if message.debug:
                    reason = f"{reason} ({_first_line(message.debug)})"
                await self._apply(Failure(reason, permanent=_is_permanent(reason)))
        elif isinstance(message, PipelineEos):
            if self._pipeline is not None and self._state is not StreamState.STOPPED:
                await self._apply(Failure("the source ended the stream"))
        elif isinstance(message, PipelineWarning):
            logger.warning("%s: %s: %s", self.plan.name, message.source, message.message)
        elif isinstance(message, _FirstFrameDeadline) and self._state is StreamState.STARTING:
            await self._apply(Failure(f"no video within {FIRST_FRAME_TIMEOUT_S:.0f} s"))


def _is_permanent(reason: str) -> bool:
    return any(marker in reason for marker in PERMANENT_ERRORS)


def _first_line(text: str) -> str:
    """The most useful line of GStreamer's debug text: its last one, without the file path."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
