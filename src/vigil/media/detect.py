"""A stream's detection branch: decoded, scaled frames for the detector, at the detect rate.

Its own pipeline, fed from the stream's video relay like a viewer (a leaky branch off the
ingest tee, so a detector that falls behind loses its own frames, never the recording's):

    proxysrc ! identity (gate) ! decoder ! videorate (max-rate) ! videoscale ! caps
             ! videoconvert ! BGR caps ! appsink (drop, 1 buffer)

The gate decides what is decoded. In keyframe mode, identity drops every delta frame in C
(`drop-buffer-flags`), so a camera sending a keyframe a second costs one decode a second
instead of 25, and Python sees keyframes only. In full mode every frame is decoded and
videorate keeps `fps` of them. `auto` picks keyframes when the camera's measured keyframe
interval is short enough for the requested rate, and switches only on a keyframe, so the
decoder never starts from a frame whose references it did not see. The registered branch is
a background consumer of the relay: it does not count as a viewer.

Frames reach Python on the appsink's streaming thread, copied out of the buffer as a
contiguous BGR array; `on_frame` must not block (the scheduler keeps only the newest).
"""

from __future__ import annotations

import itertools
import logging
import statistics
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import gi
import numpy as np

from vigil.media import gst
from vigil.media.callbacks import CallbackFaults
from vigil.media.relay import Relay, align

gi.require_version("GstApp", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import Gst, GstApp, GstVideo  # noqa: E402

logger = logging.getLogger(__name__)

FrameCallback = Callable[[np.ndarray, datetime], None]

_SOFTWARE = {"video/x-h264": "avdec_h264", "video/x-h265": "avdec_h265"}
_NVIDIA = {"video/x-h264": "nvh264dec", "video/x-h265": "nvh265dec"}
# Keyframe mode is chosen when keyframes come at least this fraction as often as asked:
# a camera with a keyframe a second serves fps 1 (and 0.9), not 2.
KEYFRAME_SLACK = 1.2
# Keyframe intervals remembered for the estimate (the median of them).
INTERVALS = 5
# How often a branch looks for the caps of a producer that is bound but not negotiated yet.
CAPS_POLL_S = 0.25


@dataclass(frozen=True, slots=True)
class DecoderPick:
    """The decoder chosen for a codec and why (a requested NVIDIA decoder may be missing)."""

    element: str | None  # None: no decoder for this codec
    hardware: bool
    warning: str | None = None


def pick_decoder(media_type: str, choice: str) -> DecoderPick:
    """The decoder for `media_type` given `detection.decoder` (auto, software, nvidia)."""
    software = _SOFTWARE.get(media_type)
    nvidia = _NVIDIA.get(media_type)
    if choice != "software" and nvidia is not None and gst.has_element(nvidia):
        return DecoderPick(nvidia, hardware=True)
    warning = None
    if choice == "nvidia":
        warning = (
            f"detection.decoder is nvidia but {nvidia or 'no NVIDIA decoder'} is not available "
            "(GStreamer's nvcodec plugin did not register it: no NVIDIA GPU or driver); "
            f"decoding with {software} instead"
        )
    return DecoderPick(software, hardware=False, warning=warning)


def working_size(width: int, height: int, frame_width: int) -> tuple[int, int]:
    """The size frames are scaled to: `frame_width` wide at most, aspect kept, even sides."""
    if width <= 0 or height <= 0:
        return (frame_width, frame_width * 9 // 16 // 2 * 2)
    out_w = min(frame_width, width) // 2 * 2
    out_h = max(2, round(out_w * height / width / 2) * 2)
    return (out_w, out_h)


class DetectBranch:
    """The detection pipeline of one stream; rebuilt when the stream's codec changes."""

    def __init__(
        self,
        stream: str,
        relay: Relay,
        *,
        fps: float,
        decode: str,
        decoder: str,
        frame_width: int,
        on_frame: FrameCallback,
        on_error: Callable[[str], None],
    ) -> None:
        self.stream = stream
        self._relay = relay
        self.fps = fps
        self.decode = decode  # auto, keyframes or all
        self._decoder_choice = decoder
        self._frame_width = frame_width
        self._on_frame = on_frame
        self._on_error = on_error
        # An exception in one of this branch's callbacks is detection's failure (its state
        # says so, logged once with the traceback), never a silent drop of frames.
        self._faults = CallbackFaults(
            stream, lambda failed: on_error(f"exception in {failed.where}: {failed.error}")
        )
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._pipeline: Gst.Pipeline | None = None
        self._proxysrc: Gst.Element | None = None
        self._gate: Gst.Element | None = None
        self._media_type: str | None = None
        self._unwatch: Callable[[], None] | None = None
        self._closed = False
        self.decoder: str | None = None
        self.hardware = False
        self.warning: str | None = None
        self.size: tuple[int, int] | None = None
        # Gate state: touched on the streaming thread only (the pad probe).
        self.keyframes_only = decode != "all"
        self._synced = False
        self._last_key_pts: int | None = None
        self._intervals: deque[float] = deque(maxlen=INTERVALS)
        self.frames = 0

    # -- life ------------------------------------------------------------------------------

    def start(self) -> None:
        """Follow the relay: build now if the stream is live, else when it is."""
        self._unwatch = self._relay.watch(self._on_live)
        if self._relay.live:
            self._rebuild_if_needed()

    def stop(self) -> None:
        """Take the branch off the relay and stop the pipeline. Blocking (state change)."""
        with self._lock:
            self._closed = True
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None
        self._teardown()

    def _on_live(self, live: bool) -> None:
        # Called on whatever thread binds the relay; the build must not run inside that.
        if live:
            threading.Thread(
                target=self._rebuild_if_needed, name=f"detect-build-{self.stream}", daemon=True
            ).start()

    def _rebuild_if_needed(self) -> None:
        # One build at a time: a bind, a caps poll and an error restart may all ask at once.
        with self._build_lock:
            self._rebuild_locked()

    def _rebuild_locked(self) -> None:
        caps = self._relay.caps
        media_type = caps.get_structure(0).get_name() if caps and caps.get_size() else None
        with self._lock:
            if self._closed or (self._pipeline is not None and media_type == self._media_type):
                return
        self._teardown()
        if media_type is None:
            if self._relay.live:  # a producer that has not negotiated yet: look again soon
                timer = threading.Timer(CAPS_POLL_S, self._rebuild_if_needed)
                timer.daemon = True
                timer.start()
            return
        try:
            self._build(media_type, caps)
        except Exception as error:  # a missing element, a link failure: say it, keep recording
            logger.error("%s: detection branch not built: %s", self.stream, error)
            self._on_error(str(error))

    def _build(self, media_type: str, caps: Gst.Caps | None) -> None:
        pick = pick_decoder(media_type, self._decoder_choice)
        if pick.warning is not None and pick.warning != self.warning:
            logger.warning("%s: %s", self.stream, pick.warning)
        self.warning = pick.warning
        if pick.element is None:
            raise RuntimeError(f"no decoder for {media_type}: detection needs H.264 or H.265")
        structure = caps.get_structure(0) if caps is not None else None
        width = structure.get_value("width") if structure and structure.has_field("width") else 0
        height = structure.get_value("height") if structure and structure.has_field("height") else 0
        out_w, out_h = working_size(int(width or 0), int(height or 0), self._frame_width)
        pipeline = Gst.Pipeline.new(f"detect-{self.stream}")
        proxysrc = gst.make("proxysrc")
        gate = gst.make("identity", "gate", silent=True)
        decoder = gst.make(pick.element)
        if not pick.hardware:
            # Slice threads add no delay; frame threads would hold a keyframe-only stream's
            # frames back by one keyframe interval per thread.
            decoder.set_property("thread-type", 2)
        rate = gst.make("videorate", "rate", max_rate=max(1, round(self.fps)), drop_only=True)
        scale = gst.make("videoscale")
        scaled = gst.make(
            "capsfilter",
            caps=Gst.Caps.from_string(
                f"video/x-raw,width={out_w},height={out_h},pixel-aspect-ratio=1/1"
            ),
        )
        convert = gst.make("videoconvert")
        bgr = gst.make("capsfilter", caps=Gst.Caps.from_string("video/x-raw,format=BGR"))
        sink = gst.make("appsink", sync=False, max_buffers=1, drop=True, emit_signals=False)
        sink.set_property("async", False)
        elements = [proxysrc, gate, decoder, rate, scale, scaled, convert, bgr, sink]
        for element in elements:
            pipeline.add(element)
        for upstream, downstream in itertools.pairwise(elements):
            if not upstream.link(downstream):
                raise RuntimeError(f"cannot link {upstream.get_name()} to {downstream.get_name()}")
        gate_pad = gate.get_static_pad("src")
        guard = self._faults.guard
        gate_pad.add_probe(
            Gst.PadProbeType.BUFFER,
            guard("detection gate probe", self._on_gate_buffer, Gst.PadProbeReturn.OK),
        )
        gate.get_static_pad("sink").add_probe(
            Gst.PadProbeType.EVENT_DOWNSTREAM,
            guard("detection gate event probe", self._on_gate_event, Gst.PadProbeReturn.OK),
        )
        self.keyframes_only = self.decode != "all"
        self._apply_gate(gate)
        sink.connect("new-sample", guard("detection frame", self._on_sample, Gst.FlowReturn.OK))
        sink.set_property("emit-signals", True)
        bus = pipeline.get_bus()
        bus.set_sync_handler(
            guard("detection bus handler", self._on_bus_message, Gst.BusSyncReply.DROP)
        )
        align(pipeline, self._relay.producer)
        if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            pipeline.set_state(Gst.State.NULL)
            raise RuntimeError("the detection pipeline did not start")
        with self._lock:
            if self._closed:
                pipeline.set_state(Gst.State.NULL)
                return
            self._pipeline, self._proxysrc, self._gate = pipeline, proxysrc, gate
            self._media_type = media_type
        self.decoder, self.hardware, self.size = pick.element, pick.hardware, (out_w, out_h)
        self._relay.add(proxysrc, watching=False)
        logger.info("%s: detection decodes with %s at %dx%d, %s", self.stream, pick.element,
                    out_w, out_h, self.mode)  # fmt: skip

    def _teardown(self) -> None:
        with self._lock:
            pipeline, proxysrc = self._pipeline, self._proxysrc
            self._pipeline = self._proxysrc = self._gate = None
            self._media_type = None
        if proxysrc is not None:
            self._relay.remove(proxysrc)
        if pipeline is not None:
            pipeline.get_bus().set_sync_handler(None)
            pipeline.set_state(Gst.State.NULL)

    # -- settings --------------------------------------------------------------------------

    def configure(self, *, fps: float, decode: str) -> None:
        """A new detect rate or decode mode, applied to the running pipeline."""
        self.fps, self.decode = fps, decode
        with self._lock:
            pipeline = self._pipeline
        if pipeline is None:
            return
        pipeline.get_by_name("rate").set_property("max-rate", max(1, round(fps)))
        if decode == "all":
            self._set_keyframes_only(False, at_keyframe=False)

    @property
    def mode(self) -> str:
        """What is decoded now: "keyframes" or "all"."""
        return "keyframes" if self.keyframes_only else "all"

    @property
    def keyframe_interval_s(self) -> float | None:
        """The camera's keyframe interval as measured (median of the last few)."""
        intervals = list(self._intervals)
        return statistics.median(intervals) if intervals else None

    def _wants_keyframes_only(self) -> bool:
        if self.decode == "keyframes":
            return True
        if self.decode == "all":
            return False
        interval = self.keyframe_interval_s
        if interval is None:
            return self.keyframes_only  # no estimate yet: stay as we are
        return interval <= KEYFRAME_SLACK / self.fps

    def _set_keyframes_only(self, value: bool, *, at_keyframe: bool) -> None:
        if value == self.keyframes_only:
            return
        if value is False and not at_keyframe:
            self._synced = False  # deltas pass from the next keyframe on
        self.keyframes_only = value
        with self._lock:
            gate = self._gate
        if gate is not None:
            self._apply_gate(gate)
        logger.info("%s: detection now decodes %s", self.stream, self.mode)

    def _apply_gate(self, gate: Gst.Element) -> None:
        flags = Gst.BufferFlags.DELTA_UNIT if self.keyframes_only else Gst.BufferFlags(0)
        gate.set_property("drop-buffer-flags", flags)

    # -- streaming thread ------------------------------------------------------------------

    def _on_gate_event(self, _pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        event = info.get_event()
        if event is not None and event.type in (
            Gst.EventType.STREAM_START,
            Gst.EventType.FLUSH_STOP,
            Gst.EventType.SEGMENT,
        ):
            self._synced = False  # a new producer: wait for its first keyframe
            self._last_key_pts = None
        return Gst.PadProbeReturn.OK

    def _on_gate_buffer(self, _pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        buffer = info.get_buffer()
        if buffer is None:
            return Gst.PadProbeReturn.OK
        if buffer.has_flags(Gst.BufferFlags.DELTA_UNIT):
            return Gst.PadProbeReturn.OK if self._synced else Gst.PadProbeReturn.DROP
        pts = buffer.pts
        if pts != Gst.CLOCK_TIME_NONE:
            if self._last_key_pts is not None and pts > self._last_key_pts:
                self._intervals.append((pts - self._last_key_pts) / Gst.SECOND)
            self._last_key_pts = pts
        self._synced = True
        want = self._wants_keyframes_only()
        if want != self.keyframes_only:
            self._set_keyframes_only(want, at_keyframe=True)
        return Gst.PadProbeReturn.OK

    def _on_sample(self, sink: GstApp.AppSink) -> Gst.FlowReturn:
        sample = sink.emit("pull-sample")
        if sample is None:
            return Gst.FlowReturn.OK
        image = frame_array(sample)
        if image is not None:
            self.frames += 1
            try:
                self._on_frame(image, datetime.now(UTC))
            except Exception:
                logger.exception("%s: detection frame handler failed", self.stream)
        return Gst.FlowReturn.OK

    def _on_bus_message(self, _bus: Gst.Bus, message: Gst.Message) -> Gst.BusSyncReply:
        if message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            logger.warning("%s: detection pipeline error: %s (%s)", self.stream,
                           error.message, debug)  # fmt: skip
            self._on_error(error.message)
            # Rebuilt off the streaming thread: the relay keeps feeding the next pipeline.
            threading.Thread(target=self._restart, name=f"detect-restart-{self.stream}",
                             daemon=True).start()  # fmt: skip
        return Gst.BusSyncReply.DROP

    def _restart(self) -> None:
        with self._build_lock:
            self._teardown()
            self._rebuild_locked()


def frame_array(sample: Gst.Sample) -> np.ndarray | None:
    """The sample's BGR picture as a contiguous H x W x 3 uint8 array (a copy)."""
    caps, buffer = sample.get_caps(), sample.get_buffer()
    if caps is None or buffer is None:
        return None
    info = GstVideo.VideoInfo.new_from_caps(caps)
    if info is None:
        return None
    width, height, stride = info.width, info.height, info.stride[0]
    ok, mapped = buffer.map(Gst.MapFlags.READ)
    if not ok:
        return None
    try:
        data = np.frombuffer(mapped.data, dtype=np.uint8, count=stride * height)
        rows = data.reshape(height, stride)[:, : width * 3]
        return np.ascontiguousarray(rows.reshape(height, width, 3))
    finally:
        buffer.unmap(mapped)
