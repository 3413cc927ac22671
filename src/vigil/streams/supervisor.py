"""One stream's supervisor: runs its pipeline, feeds the state machine, heals the stream.

It owns the stream's `IngestPipeline` (blocking GStreamer calls go to the media executor),
receives the pipeline's messages on the event loop, watches video flow, and carries out the
state machine's actions. A failure here is this stream's business only: other streams never
wait on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeVar

from vigil.config.resolve import StreamPlan
from vigil.config.sources import PublishSource
from vigil.events import (
    EventBus,
    StreamHealing,
    StreamStateChanged,
    utc_now,
)
from vigil.media.ingest import IngestPipeline
from vigil.media.messages import (
    CallbackFailed,
    FirstFrame,
    MediaMessage,
    PipelineEos,
    PipelineError,
    PipelineWarning,
    RecordingBlockedMessage,
    RecordingWriteFailed,
    SegmentFileClosed,
    SegmentFileOpened,
)
from vigil.media.relay import RelayHub
from vigil.media.snapshot import SnapshotFailed, jpeg_of
from vigil.media.sources import SourceFailure
from vigil.observability import tracing
from vigil.observability.logging import stream_context
from vigil.observability.metrics import RECORDING_STALLS, STREAM_HEALS, STREAM_TRANSITIONS
from vigil.recording.segments import SegmentIndex
from vigil.recording.volumes import VolumePool
from vigil.streams.backoff import Backoff
from vigil.streams.health import (
    FlowWatch,
    camera_address,
    looks_unreachable,
    reachable,
)
from vigil.streams.ladder import HealStep, Ladder, cause_of, is_internal
from vigil.streams.meter import Downtime, FlowMeter
from vigil.streams.recording import RECORDING_STALL_S, StreamRecording
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
from vigil.streams.status import StreamStatus

logger = logging.getLogger(__name__)

T = TypeVar("T")

# No video this long after (re)connecting is a failure (the camera accepted us, sends nothing).
FIRST_FRAME_TIMEOUT_S = 20.0
# Stop waiting this long for the open segment to be finished cleanly.
STOP_TIMEOUT_S = 5.0
# How often the watchdog looks at the video flow, and a camera that went away is re-tried.
WATCH_INTERVAL_S = 1.0
# How often a camera that went away is probed with a TCP connect (and how long one may take).
PROBE_INTERVAL_S = 0.5

PERMANENT_ERRORS = ("Unauthorized", "not authorized", "Not Found", "records H264 and H265")


@dataclass(frozen=True)
class _FirstFrameDeadline:
    """Internal timer: the first frame should have arrived by now."""

    generation: int


@dataclass(frozen=True)
class _FromSource:
    """A pipeline message, tagged with the source generation that produced it."""

    generation: int
    message: MediaMessage


@dataclass(frozen=True)
class _RecordingStalled:
    """Internal: the recording of this source generation wrote nothing while video came."""

    generation: int


_Item = StreamEvent | _FromSource | _FirstFrameDeadline | _RecordingStalled


class StreamSupervisor:
    """Keeps one stream running (or stopped), healing it, and reports its state."""

    def __init__(
        self,
        plan: StreamPlan,
        *,
        bus: EventBus,
        index: SegmentIndex,
        media_executor: Executor,
        backoff: Backoff | None = None,
        volumes: VolumePool | None = None,
        relays: RelayHub | None = None,
    ) -> None:
        self.plan = plan
        self._relays = relays
        self._unwatch_publisher: Callable[[], None] | None = None
        self._bus = bus
        self._index = index
        self._executor = media_executor
        self._backoff = backoff or Backoff(cap=plan.reconnect_max_delay_s)
        self._state = StreamState.STOPPED
        self._reason = "not started"
        self._since = utc_now()
        self._restarts = 0
        self._transitions = 0
        self._pipeline: IngestPipeline | None = None
        self._snapshot: tuple[object, bytes] | None = None  # (which keyframe, its JPEG)
        self._generation = 0  # bumped for every source started; older messages are stale
        self._events: asyncio.Queue[_Item] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._helpers: set[asyncio.Task[None]] = set()
        self._timers: list[asyncio.TimerHandle] = []
        self._flow = FlowWatch(plan.no_data_timeout_s)
        self._recording = StreamRecording(plan, bus=bus, index=index, volumes=volumes)
        self._ladder = Ladder()
        self._source_description = "not built"
        self._meter = FlowMeter()
        self._downtime = Downtime()

    @property
    def status(self) -> StreamStatus:
        """The stream's state, reason and since when, and its live numbers."""
        now, meter = time.monotonic(), self._meter
        return StreamStatus(
            self.plan.name, self._state, self._reason, self._since,
            self._source_description, self._restarts, self._transitions,
            fps=meter.fps(), bitrate_bps=meter.bitrate_bps(),
            last_frame_age_s=meter.last_frame_age(now), frames_received=meter.frames,
            bytes_received=meter.bytes, not_streaming_s=self._downtime.seconds(now),
            recording_blocked=self._recording.blocked,
        )  # fmt: skip

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start supervising (idempotent)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"stream-{self.plan.name}",
                context=stream_context(self.plan.name),  # log lines name the stream
            )  # fmt: skip
            self._own(self._watch_flow())
            self._watch_publisher()
        self._events.put_nowait(Start())

    async def stop(self) -> None:
        """Stop the stream, finishing its open segment; returns when the pipeline is gone."""
        if self._task is None:
            return
        self._events.put_nowait(Stop())
        task, self._task = self._task, None
        if self._unwatch_publisher is not None:
            self._unwatch_publisher()
            self._unwatch_publisher = None
        try:
            await task
        finally:
            self._cancel_timers()
            for helper in list(self._helpers):
                helper.cancel()
            for helper in list(self._helpers):
                with contextlib.suppress(asyncio.CancelledError):
                    await helper

    def _watch_publisher(self) -> None:
        """For a `publish` stream: start the moment a publisher connects (instead of at the next
        retry), and count its leaving as the source failing (a gap, then waiting again)."""
        if self._relays is None or not isinstance(self.plan.source, PublishSource):
            return
        loop = asyncio.get_running_loop()

        def on_change(live: bool) -> None:  # whatever thread bound the publisher
            loop.call_soon_threadsafe(self._publisher_changed, live)

        self._unwatch_publisher = self._relays.publish(self.plan.name).watch(on_change)

    def _publisher_changed(self, live: bool) -> None:
        if live and self._state in (StreamState.RECONNECTING, StreamState.FAILED,
                                    StreamState.STALLED) and not self._pipeline_busy():  # fmt: skip
            self._cancel_timers()
            self._events.put_nowait(RetryDue())
        elif not live and self._state is StreamState.STREAMING:
            self._events.put_nowait(Failure("the publisher disconnected"))

    def _own(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(
            coro,  # type: ignore[arg-type]
            context=stream_context(self.plan.name),
        )
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    async def _run(self) -> None:
        try:
            while True:
                item = await self._events.get()
                if isinstance(item, Stop):
                    await self._apply(item)
                    return
                if isinstance(item, (_FromSource, _FirstFrameDeadline, _RecordingStalled)):
                    await self._on_media(item)
                else:
                    await self._apply(item)
        finally:
            if self._pipeline is not None:
                await self._stop_pipeline()

    # -- state machine --------------------------------------------------------------------

    async def _apply(self, event: StreamEvent) -> None:
        step = transition(self._state, self._reason, event)
        if step.state != self._state or step.reason != self._reason:
            old = self._state
            self._state, self._reason, self._since = step.state, step.reason, utc_now()
            if old != step.state:
                self._transitions += 1
                down = step.state not in (StreamState.STREAMING, StreamState.STOPPED)
                self._downtime.update(down, time.monotonic())
                STREAM_TRANSITIONS.labels(self.plan.name, old.value, step.state.value).inc()
                level = logging.WARNING if step.state in (
                    StreamState.STALLED, StreamState.RECONNECTING, StreamState.FAILED
                ) else logging.INFO  # fmt: skip
                logger.log(level, "%s: %s -> %s (%s)", self.plan.name, old, step.state,
                           step.reason)  # fmt: skip
                self._bus.publish(StreamStateChanged(
                    stream=self.plan.name, old=old.value, new=step.state.value, reason=step.reason
                ))  # fmt: skip
                if (
                    old is StreamState.STREAMING
                    and step.state is not StreamState.STOPPED  # asked to stop: no gap
                    and self.plan.record
                ):
                    self._index.interrupted(self.plan.name, step.reason)
        for action in step.actions:
            await self._do(action)

    async def _do(self, action: Action) -> None:
        if action is Action.START_PIPELINE:
            await self._start_source(whole=True)
        elif action is Action.START_SOURCE:
            await self._start_source(whole=self._pipeline is None)
        elif action is Action.STOP_SOURCE:
            await self._stop_source()
        elif action is Action.STOP_PIPELINE:
            await self._stop_pipeline()
        elif action is Action.SCHEDULE_RETRY:
            self._schedule_retry()
        elif action is Action.RESET_BACKOFF:
            self._backoff.reset()
            self._ladder = Ladder()  # streaming stably: what failed before is healed

    def _schedule_retry(self) -> None:
        self._cancel_timers()
        delay = self._backoff.next_delay()
        if self._state is StreamState.FAILED:
            delay = max(delay, self._backoff.cap)
        self._restarts += 1
        self._later(delay, RetryDue())
        address = camera_address(self.plan.source)
        if (
            address is not None
            and self._state is not StreamState.FAILED
            and (self._state is StreamState.STALLED or looks_unreachable(self._reason))
        ):
            # A camera that went away is tried every second, cheaply (a TCP connect): the
            # moment it answers, reconnect, instead of sleeping out a long back-off.
            self._own(self._retry_when_reachable(*address))

    async def _retry_when_reachable(self, host: str, port: int) -> None:
        generation = self._generation
        loop = asyncio.get_running_loop()
        # Probes start every PROBE_INTERVAL_S whatever they cost: a camera behind a cut link
        # never answers, and waiting out its timeout and then an interval tried it every 2 s
        # (the chaos bench measured 1.1-2.7 s from the link's return to the reconnect).
        next_probe = loop.time() + PROBE_INTERVAL_S
        while self._state in (StreamState.STALLED, StreamState.RECONNECTING):
            await asyncio.sleep(max(0.0, next_probe - loop.time()))
            next_probe = loop.time() + PROBE_INTERVAL_S
            if self._generation != generation or self._pipeline_busy():
                return
            if await reachable(host, port, timeout=PROBE_INTERVAL_S):
                if self._generation == generation:
                    self._cancel_timers()
                    self._events.put_nowait(RetryDue())
                return

    def _pipeline_busy(self) -> bool:
        """True while a source is up (a retry is then not ours to trigger)."""
        return self._pipeline is not None and self._pipeline.source_running

    async def snapshot(self) -> bytes | None:
        """The latest keyframe as a JPEG, decoded now in a media thread; None unless streaming
        with a keyframe seen. A keyframe is decoded once however many clients poll it."""
        pipeline = self._pipeline
        if pipeline is None or self._state is not StreamState.STREAMING:
            return None

        def encode() -> bytes | None:
            sample = pipeline.latest_keyframe()
            buffer = sample.get_buffer() if sample is not None else None
            if buffer is None:
                return None
            key = (id(pipeline), buffer.pts, buffer.get_size())
            cached = self._snapshot
            if cached is not None and cached[0] == key:
                return cached[1]
            try:
                jpeg = jpeg_of(sample)
            except SnapshotFailed as error:
                logger.warning("%s: snapshot: %s", self.plan.name, error)
                return None
            self._snapshot = (key, jpeg)
            return jpeg

        return await self._in_media_thread(encode)

    def _later(self, delay: float, event: _Item) -> None:
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(delay, self._events.put_nowait, event))

    def _cancel_timers(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # -- pipeline -------------------------------------------------------------------------

    async def _in_media_thread(self, fn: Callable[[], T]) -> T:
        # In this task's context: the media thread's log lines name the stream and the span.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(self._executor, context.run, fn)

    async def rotate_recording(self) -> None:
        """Start the next segment at the next keyframe, placed anew (moving off a volume)."""
        pipeline = self._pipeline
        if pipeline is not None:
            await self._in_media_thread(pipeline.rotate_recording)

    async def _write_failed(self, message: RecordingWriteFailed) -> None:
        """A segment file could not be written: count it against its volume, account what it
        cost, and fail over to another volume at the next keyframe."""
        reason = self._recording.write_failed(message)
        pipeline = self._pipeline
        if pipeline is None:
            return
        was_open = await self._in_media_thread(lambda: pipeline.recording_failed(message.location))
        streaming = self._state is StreamState.STREAMING
        self._recording.account_failed_file(
            message.location, reason, was_open=was_open, streaming=streaming
        )
        await self._take_segment_messages()

    async def _start_source(self, *, whole: bool) -> None:
        """Build the pipeline (whole) or only a new source into the running one, in a span."""
        operation = "stream.start" if self._state is StreamState.STARTING else "stream.reconnect"
        with tracing.span(operation, stream=self.plan.name, whole_pipeline=whole) as current:
            failure = await self._build_source(whole=whole)
            current.set_attribute("vigil.source", self._source_description)
            if failure is not None:
                tracing.mark_failed(current, failure)

    async def _build_source(self, *, whole: bool) -> str | None:
        """Build the pipeline or its source; the failure's reason if it could not."""
        self._cancel_timers()
        self._generation += 1
        generation = self._generation
        loop = asyncio.get_running_loop()

        def post(message: MediaMessage) -> None:  # GStreamer threads
            loop.call_soon_threadsafe(self._events.put_nowait, _FromSource(generation, message))

        plan = self.plan

        def build() -> IngestPipeline:
            pipeline = IngestPipeline(plan.name, plan.source, post,
                                      read_batch_ms=plan.read_batch_ms,
                                      relays=self._relays)  # fmt: skip
            if plan.record:
                pipeline.attach_recording(self._recording.spec())
            pipeline.start()
            if self._relays is not None:  # viewers are fed from this pipeline from now on
                self._relays.video(plan.name).bind(pipeline.outlet)
            return pipeline

        pipeline = self._pipeline
        try:
            if whole or pipeline is None:
                self._pipeline = await self._in_media_thread(build)
            else:
                pipeline.retarget(post)
                await self._in_media_thread(pipeline.start_source)
        except SourceFailure as exc:  # the camera refused, or is not there
            self._events.put_nowait(Failure(str(exc), permanent=exc.permanent))
            return str(exc)
        except Exception as exc:  # a source that cannot even be built is this stream's failure
            logger.exception("%s: cannot start the source", plan.name)
            self._events.put_nowait(Failure(str(exc), permanent=_is_permanent(str(exc))))
            return str(exc)
        assert self._pipeline is not None
        self._source_description = self._pipeline.description
        self._flow.reset(None)
        self._later(FIRST_FRAME_TIMEOUT_S, _FirstFrameDeadline(generation))
        return None

    async def _stop_source(self) -> None:
        pipeline = self._pipeline
        self._cancel_timers()
        if pipeline is None:
            return
        self._generation += 1  # whatever the old source still says is stale now
        await self._in_media_thread(pipeline.stop_source)
        await self._take_segment_messages()

    async def _stop_pipeline(self) -> None:
        pipeline, self._pipeline = self._pipeline, None
        self._cancel_timers()
        if pipeline is None:
            return
        self._sample_flow(pipeline)  # its last counts, before a new pipeline counts from zero
        self._generation += 1
        if self._relays is not None:
            relay = self._relays.video(self.plan.name)
            await self._in_media_thread(lambda: relay.unbind(pipeline.outlet))
        await self._in_media_thread(lambda: pipeline.stop(STOP_TIMEOUT_S))
        await self._take_segment_messages()
        # Files the recorder did not get to finish are completed from what reached the disk.
        self._index.abandon(self.plan.name)

    async def _take_segment_messages(self) -> None:
        """Handle the segment facts already queued (the last segment closing) right away."""
        await asyncio.sleep(0)  # let call_soon_threadsafe hand-offs land in the queue
        pending: list[_Item] = []
        while not self._events.empty():
            item = self._events.get_nowait()
            if isinstance(item, _FromSource) and isinstance(
                item.message, (SegmentFileOpened, SegmentFileClosed)
            ):
                self._recording.on_segment(item.message)
            else:
                pending.append(item)
        for item in pending:
            self._events.put_nowait(item)

    # -- what the pipeline says -------------------------------------------------------------

    async def _on_media(self, item: _FromSource | _FirstFrameDeadline | _RecordingStalled) -> None:
        if isinstance(item, _RecordingStalled):
            if item.generation == self._generation and self._state is StreamState.STREAMING:
                RECORDING_STALLS.labels(self.plan.name).inc()
                reason = (f"recording_stalled: nothing written for {RECORDING_STALL_S:g} s "
                          "while video kept arriving")  # fmt: skip
                await self._internal_failure(reason, "recording_stalled", in_source=False)
            return
        if isinstance(item, _FirstFrameDeadline):
            if item.generation == self._generation and self._state in (
                StreamState.STARTING, StreamState.RECONNECTING
            ):  # fmt: skip
                await self._apply(
                    Failure(f"no keyframe within {FIRST_FRAME_TIMEOUT_S:.0f} s: nothing to record")
                )
            return
        message = item.message
        if isinstance(message, (SegmentFileOpened, SegmentFileClosed)):
            self._recording.on_segment(message)  # always: files of an old source are still files
            return
        if isinstance(message, RecordingWriteFailed):
            await self._write_failed(message)  # whatever source generation wrote the file
            return
        if isinstance(message, RecordingBlockedMessage):
            self._recording.set_blocked(message.reason,
                                        streaming=self._state is StreamState.STREAMING)  # fmt: skip
            return
        if item.generation != self._generation:
            return  # from a source that has been replaced
        if isinstance(message, FirstFrame):
            self._cancel_timers()
            self._later(self.plan.stable_after_s, Stable())
            await self._apply(Frames())
        elif isinstance(message, PipelineError):
            reason = message.message
            if message.debug:
                reason = f"{reason} ({_last_line(message.debug)})"
            permanent = _is_permanent(reason)
            if not permanent and is_internal(message.message, message.debug,
                                             resource_error=message.resource):  # fmt: skip
                cause = cause_of(message.message, message.debug)
                await self._internal_failure(reason, cause, in_source=message.in_source)
                return
            await self._apply(Failure(reason, permanent=permanent,
                                      whole_pipeline=not message.in_source))  # fmt: skip
        elif isinstance(message, CallbackFailed):
            reason = f"exception in {message.where}: {message.error}"
            cause = f"{message.where}: {message.error.partition(':')[0]}"
            await self._internal_failure(reason, cause, in_source=message.in_source)
        elif isinstance(message, PipelineEos):
            # The camera closed the session: video stopped coming, like a silent stall.
            await self._apply(NoData("the camera ended the stream"))
        elif isinstance(message, PipelineWarning):
            logger.warning("%s: %s: %s", self.plan.name, message.source, message.message)

    async def _internal_failure(self, reason: str, cause: str, *, in_source: bool) -> None:
        """A failure that is not the network's: climb the healing ladder (`streams/ladder.py`)
        — rebuild the source, then the whole pipeline, then `failed`, retried slowly."""
        if self._state not in (StreamState.STARTING, StreamState.STREAMING,
                               StreamState.RECONNECTING):  # fmt: skip
            return
        self._ladder = self._ladder.climb(cause, in_source=in_source)
        step, attempt = self._ladder.step, self._ladder.attempt
        assert step is not None
        name = self.plan.name
        STREAM_HEALS.labels(name, step.value).inc()
        logger.warning("%s: healing: %s (failure %d in a row with this cause): %s", name,
                       step.value, attempt, reason)  # fmt: skip
        self._bus.publish(StreamHealing(stream=name, step=step.value, reason=reason,
                                        attempt=attempt))  # fmt: skip
        if step is HealStep.FAILED:
            reason = (f"{reason} — rebuilding the pipeline did not help; retrying every "
                      f"{self._backoff.cap:g} s")  # fmt: skip
        await self._apply(Failure(reason, permanent=step is HealStep.FAILED,
                                  whole_pipeline=step is not HealStep.REBUILD_SOURCE))  # fmt: skip

    async def _watch_flow(self) -> None:
        """The health watchdog: video must keep flowing while the stream is streaming."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(WATCH_INTERVAL_S)
            pipeline = self._pipeline
            self._sample_flow(pipeline)
            if self._state is not StreamState.STREAMING or pipeline is None:
                self._flow.reset(None)
                self._recording.forget()
                continue
            if self._recording.stalled(pipeline, loop.time()):
                self._events.put_nowait(_RecordingStalled(self._generation))
            if self._flow.stalled(pipeline.progress(), loop.time()):
                timeout = self.plan.no_data_timeout_s
                self._events.put_nowait(NoData(f"no video for {timeout:g} s"))
                self._flow.reset(None)

    def _sample_flow(self, pipeline: IngestPipeline | None) -> None:
        """Feed the meter behind the live numbers of `status` (fps, bitrate, last frame)."""
        now = time.monotonic()
        if pipeline is None:
            self._meter.idle(now)
        else:
            frames, size = pipeline.counters()
            self._meter.sample(frames, size, now)


def _is_permanent(reason: str) -> bool:
    return any(marker in reason for marker in PERMANENT_ERRORS)


def _last_line(text: str) -> str:
    """The most useful line of GStreamer's debug text: its last one."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
