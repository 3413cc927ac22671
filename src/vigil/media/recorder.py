"""The recording branch: the stream's encoded video, copied into fragmented MP4 segments.

splitmuxsink cuts segments on keyframes at `segment_seconds`; mp4mux writes a fragment about
every `fragment_seconds`, so a crash loses at most the fragment in flight. File names come from
the recording layer (`location_for`), asked when splitmuxsink opens each file.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gi.repository import Gst

from vigil.events import utc_now
from vigil.media import gst
from vigil.media.caps import codec_of
from vigil.media.messages import MediaMessage, SegmentFileClosed, SegmentFileOpened

logger = logging.getLogger(__name__)

OPENED = "splitmuxsink-fragment-opened"
CLOSED = "splitmuxsink-fragment-closed"


@dataclass(frozen=True)
class RecordingSpec:
    """How to record: segment and fragment lengths, and who names the files."""

    segment_seconds: int
    fragment_seconds: float
    # Called on a GStreamer streaming thread with the segment's UTC start; returns the file path.
    location_for: Callable[[datetime], str]


class RecordingBranch:
    """A bin (keyframe gate → splitmuxsink) that attaches to an ingest tee."""

    def __init__(self, stream: str, spec: RecordingSpec, post: Callable[[MediaMessage], None]):
        self.stream = stream
        self.spec = spec
        self._post = post
        self._lock = threading.Lock()
        self._opened_at: dict[str, int] = {}  # location -> running time of its first frame
        self._all_closed = threading.Event()
        self._all_closed.set()
        # (UTC, running time) of the first segment: later segments are placed on the media
        # timeline from it, so consecutive segments are contiguous to the frame.
        self._anchor: tuple[datetime, int] | None = None
        self.bin = Gst.Bin.new(f"record-{stream}")
        self.sink = gst.make(
            "splitmuxsink",
            "recorder",
            max_size_time=spec.segment_seconds * Gst.SECOND,
            async_finalize=True,
            muxer_factory="mp4mux",
            send_keyframe_requests=False,
        )
        fragment_ms = max(100, round(spec.fragment_seconds * 1000))
        self.sink.set_property(
            "muxer-properties",
            Gst.Structure.new_from_string(f"properties,fragment-duration={fragment_ms}"),
        )
        # Unbuffered writes: a fragment reaches the kernel as soon as mp4mux emits it, so a
        # SIGKILL costs at most the fragment being assembled, not filesink's 64 KB buffer too.
        self.sink.set_property(
            "sink-properties", Gst.Structure.new_from_string("properties,buffer-mode=2")
        )
        self.sink.connect("format-location-full", self._format_location)
        self.bin.add(self.sink)
        target = self.sink.request_pad_simple("video")
        if target is None:
            raise RuntimeError("splitmuxsink refused a video pad")
        ghost = Gst.GhostPad.new("sink", target)
        ghost.set_active(True)
        self.bin.add_pad(ghost)
        self.sink_pad = ghost
        # A segment must start on a keyframe: drop what comes before the first one.
        ghost.add_probe(Gst.PadProbeType.BUFFER, _drop_until_keyframe)

    def _format_location(self, splitmux: Gst.Element, _fragment_id: int, sample: Gst.Sample) -> str:
        start, running_time = _wall_clock_of(splitmux, sample)
        if self._anchor is None:
            self._anchor = (start, running_time)
        else:
            anchor_start, anchor_rt = self._anchor
            start = anchor_start + timedelta(microseconds=(running_time - anchor_rt) // 1000)
        location = self.spec.location_for(start)
        codec, width, height = codec_of(sample.get_caps())
        with self._lock:
            self._opened_at[location] = running_time
            self._all_closed.clear()
        self._post(SegmentFileOpened(location, start, codec, width, height))
        return location

    def wait_closed(self, timeout: float) -> bool:
        """Wait until every file this branch opened has been closed; False on timeout."""
        return self._all_closed.wait(timeout)

    def handle_message(self, structure: Gst.Structure) -> bool:
        """Turn splitmuxsink's bus messages into `SegmentFileClosed`; True if it was ours."""
        name = structure.get_name()
        if name == OPENED:
            return True
        if name != CLOSED:
            return False
        location = structure.get_string("location")
        ok, running_time = structure.get_uint64("running-time")
        with self._lock:
            opened = self._opened_at.pop(location, None)
            if not self._opened_at:
                self._all_closed.set()
        duration = 0.0
        if ok and opened is not None and running_time >= opened:
            duration = (running_time - opened) / Gst.SECOND
        self._post(SegmentFileClosed(location, duration))
        return True


def _wall_clock_of(element: Gst.Element, sample: Gst.Sample) -> tuple[datetime, int]:
    """UTC time and running time of the sample's first frame, from the pipeline clock."""
    now = utc_now()
    buffer = sample.get_buffer()
    segment = sample.get_segment()
    running_time = Gst.CLOCK_TIME_NONE
    if buffer is not None and segment is not None and buffer.pts != Gst.CLOCK_TIME_NONE:
        running_time = segment.to_running_time(Gst.Format.TIME, buffer.pts)
    # splitmuxsink's own base time is not the pipeline's (it manages its children itself):
    # running time is defined by the top-level pipeline.
    top = element
    while (parent := top.get_parent()) is not None:
        top = parent
    clock = top.get_clock()
    if clock is None or running_time == Gst.CLOCK_TIME_NONE:
        return now, 0 if running_time == Gst.CLOCK_TIME_NONE else running_time
    current = clock.get_time() - top.get_base_time()
    age_ns = max(0, current - running_time)
    return now - timedelta(microseconds=age_ns // 1000), running_time


def _drop_until_keyframe(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
    buffer = info.get_buffer()
    if buffer is None or buffer.pts == Gst.CLOCK_TIME_NONE:
        return Gst.PadProbeReturn.DROP
    if buffer.has_flags(Gst.BufferFlags.DELTA_UNIT):
        return Gst.PadProbeReturn.DROP
    return Gst.PadProbeReturn.REMOVE
