"""One stream's pipeline: source → parser → tee, with branches attached and detached live.

The owner (a stream supervisor) gets every fact as a `MediaMessage` through `post`, called on
GStreamer's threads; it must only hand the message over (e.g. `loop.call_soon_threadsafe`).
Blocking calls here (`start`, `stop`, `attach_recording`, `detach_recording`) belong in a worker
thread, never on the event loop.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from gi.repository import Gst

from vigil.config.sources import FileSource, SourceSpec
from vigil.media import gst
from vigil.media.callbacks import CallbackFaults
from vigil.media.caps import codec_of
from vigil.media.messages import (
    FirstFrame,
    MediaMessage,
    PipelineEos,
    PipelineError,
    PipelineWarning,
    RecordingWriteFailed,
)
from vigil.media.recorder import RecordingBranch, RecordingSpec
from vigil.media.relay import Outlet, RelayHub
from vigil.media.source_factory import build_source
from vigil.media.sources import Source, SourceFailure
from vigil.observability.redact import redact_text

logger = logging.getLogger(__name__)

Post = Callable[[MediaMessage], None]


class IngestPipeline:
    """Owns the Gst.Pipeline of one stream."""

    def __init__(
        self,
        stream: str,
        spec: SourceSpec,
        post: Post,
        *,
        read_batch_ms: int = 0,
        relays: RelayHub | None = None,
    ) -> None:
        gst.init()
        self.stream = stream
        self.spec = spec
        self._post = post
        self._lock = threading.Lock()
        self._recording: RecordingBranch | None = None
        self._recording_pad: Gst.Pad | None = None
        self._error_seen = threading.Event()
        self._last_error: str | None = None
        self._looping = isinstance(spec, FileSource) and spec.loop
        # Every Python callback this pipeline hands GStreamer is guarded by this: an exception
        # is logged once and posted as a fault instead of silently dropping buffers.
        self.faults = CallbackFaults(stream, lambda message: self._post(message))

        self.pipeline = Gst.Pipeline.new(f"stream-{stream}")
        self.tee = gst.make("tee", "tee", allow_not_linked=True)
        # Counts frames and bytes in C (its `stats`), read about once a second: a Python pad
        # probe cost 13-22 us per buffer where this costs 0.1-0.5 us (docs/ARCHITECTURE.md).
        # It outlives source rebuilds, so its counts only ever grow for this pipeline.
        self.meter = gst.make("identity", "meter", signal_handoffs=False, silent=True)
        self.pipeline.add(self.meter)
        self.pipeline.add(self.tee)
        self.meter.link(self.tee)
        tee_sink = self.tee.get_static_pad("sink")
        # Probes whose callbacks are this object's methods hold it from C: a cycle through the
        # pipeline that Python's GC cannot see. `_release` removes them, or every stopped
        # pipeline would stay in memory whole.
        self._tee_probe = tee_sink.add_probe(
            Gst.PadProbeType.EVENT_DOWNSTREAM,
            self.faults.guard("tee event probe", self._on_tee_event, Gst.PadProbeReturn.OK),
        )
        self._first_frame_probes: set[int] = set()
        self._read_batch_ms = read_batch_ms
        self._relays = relays
        # Viewers (RTSP, WebRTC) take their branches off the tee through this, in C.
        self.outlet = Outlet(self.pipeline, self.tee)
        self.outlet.on_consumers = self._on_viewers
        self._stopping = False
        self._generation = 0
        self._source_bin: Gst.Bin | None = None
        self.source: Source = self._add_source()

        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        self._bus_handler = bus.connect(
            "message", self.faults.guard("bus message handler", self._on_message, None)
        )
        self._keyframe_gate, self._last_keyframe = self._add_keyframe_tap()

    def _add_source(self) -> Source:
        """Build the source into its own bin (so it can be replaced while the rest runs)."""
        self._generation += 1
        source_bin = Gst.Bin.new(f"source{self._generation}")
        self.pipeline.add(source_bin)
        self._source_bin = source_bin
        first = self.tee.get_static_pad("sink")
        on_first = self.faults.guard(
            "first-frame probe", self._on_first_buffer, Gst.PadProbeReturn.OK
        )
        self._first_frame_probes.add(first.add_probe(Gst.PadProbeType.BUFFER, on_first))
        source = build_source(
            self.stream, self.spec, self._link_source, self._source_failed,
            read_batch_ms=self._read_batch_ms, relays=self._relays, faults=self.faults,
        )  # fmt: skip
        try:
            source.add_to(source_bin)
        except BaseException:
            self.pipeline.remove(source_bin)
            self._source_bin = None
            raise
        return source

    @property
    def description(self) -> str:
        """What the source is, with credentials redacted."""
        return self.source.description

    # -- source side ------------------------------------------------------------------------

    def _link_source(self, pad: Gst.Pad) -> None:
        source_bin = pad.get_parent_element().get_parent()
        if not isinstance(source_bin, Gst.Bin):
            self._source_failed("source output is not inside its bin")
            return
        ghost = Gst.GhostPad.new("src", pad)
        ghost.set_active(True)
        source_bin.add_pad(ghost)
        result = ghost.link(self.meter.get_static_pad("sink"))
        if result != Gst.PadLinkReturn.OK:
            self._source_failed(f"cannot link source to tee: {result.value_nick}")

    def _on_tee_event(self, _pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        event = info.get_event()
        if event is not None and event.type == Gst.EventType.EOS and not self._stopping:
            # The source ended (camera closed the session): that is a failure to heal, not the
            # end of the recording. EOS would finish the recording branch for good, so it stops
            # here; the supervisor replaces the source and the branch starts a new segment.
            self._post(PipelineEos())
            return Gst.PadProbeReturn.DROP
        return Gst.PadProbeReturn.OK

    def progress(self) -> object:
        """A value that changes while video flows (the watchdog compares it over time)."""
        source_bin = self._source_bin
        depay = source_bin.get_by_name("depay") if source_bin is not None else None
        if depay is not None:
            stats = depay.get_property("stats")
            if stats is not None:
                return (stats.get_value("seqnum"), stats.get_value("timestamp"))
        return self.counters()[0]

    def counters(self) -> tuple[int, int]:
        """(frames, bytes) of video that reached the tee since this pipeline was built.

        Parsed access units, so one buffer is one frame; bytes are the video alone (no RTP or
        container overhead). Cheap enough for the event loop: one property read under a lock.
        """
        stats = self.meter.get_property("stats")
        if stats is None:
            return 0, 0
        return int(stats.get_value("num-buffers")), int(stats.get_value("num-bytes"))

    def _on_viewers(self, count: int) -> None:
        """Someone watches (or no one does): a watched source reads at once, for latency; an
        unwatched one may batch its reads, for CPU (see `Source.set_watched`)."""
        self.source.set_watched(count > 0)

    def _source_failed(self, reason: str) -> None:
        self._post(PipelineError(source="source", message=reason, debug=""))

    def _on_first_buffer(self, pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        buffer = info.get_buffer()
        if buffer is not None and buffer.has_flags(Gst.BufferFlags.DELTA_UNIT):
            # Streaming means recordable: wait for a keyframe (Python sees buffers only until
            # the first one, then this probe removes itself).
            return Gst.PadProbeReturn.OK
        codec, width, height = codec_of(pad.get_current_caps())
        self._post(FirstFrame(codec, width, height))
        if self._looping:
            # Turn the file's end into SEGMENT_DONE (not EOS): a segment seek, made off this
            # streaming thread. The few frames played twice at the start are harmless.
            self.pipeline.call_async(lambda _element: self._seek_to_start())
        self._first_frame_probes.discard(info.id)
        return Gst.PadProbeReturn.REMOVE

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Set the pipeline playing (returns before a network source has connected)."""
        result = self.pipeline.set_state(Gst.State.PLAYING)
        if result == Gst.StateChangeReturn.FAILURE:
            # The element said why on the bus (e.g. a device that does not exist): use that.
            # The bus watch may already have taken the message: it keeps the last error.
            self._error_seen.wait(1.0)
            reason = self._last_error or "the pipeline refused to start"
            self._release()
            raise SourceFailure(reason)

    def stop(self, timeout: float = 5.0) -> None:
        """Finish the open segment (EOS through the recording branch), then tear down."""
        self._stopping = True
        branch = self._recording
        if branch is not None and branch.writing:
            self.tee.get_static_pad("sink").send_event(Gst.Event.new_eos())
            if not branch.wait_closed(timeout):
                logger.warning("%s: recording did not finish within %.1f s", self.stream, timeout)
        # Source first: without a jitterbuffer thread the source's own thread carries buffers
        # all the way down, and stopping everything at once can deadlock it against a pausing
        # sink (seen with gdb). A stopped source has nothing left in flight.
        if self._source_bin is not None:
            self._source_bin.set_state(Gst.State.NULL)
        self._release()

    def stop_source(self) -> None:
        """Drop the source (camera gone or stalled); the recording branch finishes its segment
        and waits for the next source's first keyframe. The rest of the pipeline keeps running."""
        source_bin, self._source_bin = self._source_bin, None
        if self._recording is not None:
            self._recording.cut()
        if source_bin is not None:
            source_bin.set_state(Gst.State.NULL)  # source first (see stop)
            ghost = source_bin.get_static_pad("src")
            if ghost is not None:
                ghost.unlink(self.meter.get_static_pad("sink"))
            self.pipeline.remove(source_bin)
        self.source.close()

    @property
    def source_running(self) -> bool:
        """True while a source is in the pipeline."""
        return self._source_bin is not None

    def retarget(self, post: Post) -> None:
        """Send this pipeline's future messages to `post` (a new source generation)."""
        self._post = post

    def start_source(self) -> None:
        """Build a new source into the running pipeline (after `stop_source`)."""
        self._error_seen.clear()
        self._last_error = None
        self.faults.reset()  # a cause seen before the rebuild is news again if it comes back
        self.source = self._add_source()
        assert self._source_bin is not None
        self.source.set_watched(self.outlet.consumers > 0)
        if not self._source_bin.sync_state_with_parent():
            reason = self._last_error or "the source refused to start"
            self.stop_source()
            raise SourceFailure(reason)

    def _in_source(self, element: Gst.Object | None) -> bool:
        """True unless `element` is known to sit outside the source (the recording side)."""
        while element is not None:
            if element is self._source_bin:
                return True
            if element is self.pipeline:
                return False
            element = element.get_parent()
        return True  # a source already removed from the pipeline

    def _release(self) -> None:
        """Stop the pipeline, let the source go (its socket, timers) and detach from the bus."""
        self.outlet.close()
        self.pipeline.set_state(Gst.State.NULL)
        self.source.close()
        tee_sink = self.tee.get_static_pad("sink")
        tee_sink.remove_probe(self._tee_probe)
        for probe in list(self._first_frame_probes):
            tee_sink.remove_probe(probe)
        self._first_frame_probes.clear()
        if self._recording is not None:
            self._recording.release()
        bus = self.pipeline.get_bus()
        bus.disconnect(self._bus_handler)
        bus.remove_signal_watch()

    # -- branches ---------------------------------------------------------------------------

    def attach_recording(self, spec: RecordingSpec) -> RecordingBranch:
        """Start recording; the first segment begins at the next keyframe."""
        with self._lock:
            if self._recording is not None:
                return self._recording
            branch = RecordingBranch(self.stream, spec, self._post, faults=self.faults)
            self.pipeline.add(branch.bin)
            branch.bin.sync_state_with_parent()
            tee_pad = self.tee.request_pad_simple("src_%u")
            if tee_pad is None or tee_pad.link(branch.sink_pad) != Gst.PadLinkReturn.OK:
                raise RuntimeError(f"{self.stream}: cannot attach the recording branch")
            self._recording = branch
            self._recording_pad = tee_pad
            return branch

    def rotate_recording(self) -> None:
        """Start the next segment at the next keyframe (placed anew)."""
        branch = self._recording
        if branch is not None:
            branch.rotate()

    def recording_failed(self, location: str) -> bool | None:
        """Writing `location` failed: drop that file, record on (see `RecordingBranch.fail`)."""
        branch = self._recording
        return branch.fail(location) if branch is not None else None

    def detach_recording(self, timeout: float = 5.0) -> None:
        """Stop recording: finish the open segment, then remove the branch; the stream runs on."""
        with self._lock:
            branch, tee_pad = self._recording, self._recording_pad
            self._recording = self._recording_pad = None
        if branch is None or tee_pad is None:
            return
        unlinked = threading.Event()

        def _on_idle(pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            pad.unlink(branch.sink_pad)
            unlinked.set()
            return Gst.PadProbeReturn.REMOVE

        tee_pad.add_probe(Gst.PadProbeType.IDLE, _on_idle)
        if not unlinked.wait(timeout):
            logger.warning("%s: recording branch not idle within %.1f s", self.stream, timeout)
        self.tee.release_request_pad(tee_pad)
        branch.finish()
        if not branch.wait_closed(timeout):
            logger.warning("%s: last segment did not close within %.1f s", self.stream, timeout)
        branch.bin.set_state(Gst.State.NULL)
        branch.release()
        self.pipeline.remove(branch.bin)

    # -- latest keyframe (snapshots) --------------------------------------------------------

    def _add_keyframe_tap(self) -> tuple[Gst.Element, Gst.Element]:
        """A tee branch keeping the latest keyframe, in C alone: identity drops every delta
        frame and fakesink holds the last buffer it got, with its caps. No Python runs per
        buffer and nothing is decoded until a snapshot is asked for."""
        keyframes = gst.make("identity", "keyframes", silent=True,
                             drop_buffer_flags=Gst.BufferFlags.DELTA_UNIT)  # fmt: skip
        last = gst.make("fakesink", "last-keyframe", sync=False, enable_last_sample=True)
        last.set_property("async", False)  # nothing to preroll: it never holds a state change
        self.pipeline.add(keyframes)
        self.pipeline.add(last)
        tee_pad = self.tee.request_pad_simple("src_%u")
        if (
            tee_pad is None
            or tee_pad.link(keyframes.get_static_pad("sink")) != Gst.PadLinkReturn.OK
            or not keyframes.link(last)
        ):
            raise RuntimeError(f"{self.stream}: cannot attach the keyframe tap")
        return keyframes, last

    def recording_progress(self) -> tuple[object, int] | None:
        """(a token that changes with every write of the recording, keyframes that reached the
        tee so far), or None when nothing is recorded. Read in C, cheap enough once a second."""
        branch = self._recording
        if branch is None:
            return None
        # The keyframe tap's identity: its count only grows (a sink's own stats restart at
        # every new segment, which a looped file or a reconnect brings).
        stats = self._keyframe_gate.get_property("stats")
        keyframes = int(stats.get_value("num-buffers")) if stats is not None else 0
        return branch.written(), keyframes

    def latest_keyframe(self) -> Gst.Sample | None:
        """The last keyframe that reached the tee, with its caps (None before the first)."""
        sample: Gst.Sample | None = self._last_keyframe.get_property("last-sample")
        return sample

    # -- bus (GLib thread) ------------------------------------------------------------------

    def _on_message(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        kind = message.type
        if kind == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            branch = self._recording
            location = branch.location_of(message.src) if branch is not None else None
            if location is not None:
                # One file's write failed: the branch fails that file over, the stream lives on.
                no_space = error.matches(Gst.ResourceError.quark(), Gst.ResourceError.NO_SPACE_LEFT)
                detail = (debug or "").strip().splitlines()
                text = redact_text(error.message)
                if detail:
                    text = f"{text} ({redact_text(detail[-1])})"
                self._post(RecordingWriteFailed(location, text, no_space))
                return
            source = message.src.get_name() if message.src else "pipeline"
            text, detail = redact_text(error.message), redact_text(debug or "")
            if not self._error_seen.is_set():
                lines = detail.strip().splitlines()
                self._last_error = f"{text} ({lines[-1]})" if lines else text
                self._error_seen.set()
            resource = error.domain == Gst.ResourceError.quark()
            self._post(PipelineError(source, text, detail, self._in_source(message.src), resource))
        elif kind == Gst.MessageType.WARNING:
            warning, _debug = message.parse_warning()
            source = message.src.get_name() if message.src else "pipeline"
            self._post(PipelineWarning(source, redact_text(warning.message)))
        elif kind == Gst.MessageType.EOS:
            self._post(PipelineEos())
        elif kind == Gst.MessageType.ELEMENT:
            structure = message.get_structure()
            reason = self.source.handle_message(structure) if structure is not None else None
            if reason is not None:
                self._post(PipelineError(source="source", message=reason, debug=""))
        elif kind == Gst.MessageType.SEGMENT_DONE and self._looping:
            self._seek_to_start()

    def _seek_to_start(self) -> None:
        """Play the file again from its start, without a flush: running time (and so the
        recording) continues without a gap. Sent upstream from the tee, so it reaches the
        demuxer whatever sinks exist (the recording branch makes its sinks on the fly)."""
        seek = Gst.Event.new_seek(
            1.0, Gst.Format.TIME, Gst.SeekFlags.SEGMENT,
            Gst.SeekType.SET, 0, Gst.SeekType.NONE, -1,
        )  # fmt: skip
        if not self.tee.get_static_pad("sink").push_event(seek):
            logger.warning("%s: the file source refused to loop", self.stream)
