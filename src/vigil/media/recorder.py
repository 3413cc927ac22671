"""The recording branch: the stream's encoded video, copied into fragmented MP4 segments.

Why not splitmuxsink: it holds every GOP in memory until the next keyframe arrives (to decide
whether the GOP still fits the current file), so a crash loses a whole GOP plus a fragment —
2 to 5 s with real cameras — and each stream pays for the buffered GOP and an extra thread.
Here the branch is a plain `mp4mux (fragmented) ! filesink` per segment; a crash loses at most
the fragment being assembled (`fragment_seconds`).

Segments are cut on keyframes: a GLib timer arms a pad probe shortly before the segment is due;
the probe waits for the first keyframe at or after the due running time, opens the next file
there and retargets the branch's input to it, then removes itself. So Python only looks at
buffers for about one GOP per segment, never for the whole stream. The old file is finished by
sending it EOS; it is reported closed once its EOS reached the filesink.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from gi.repository import GLib, Gst

from vigil.events import utc_now
from vigil.media import gst
from vigil.media.callbacks import CallbackFaults
from vigil.media.caps import codec_of
from vigil.media.messages import (
    MediaMessage,
    RecordingBlockedMessage,
    SegmentFileClosed,
    SegmentFileOpened,
)

logger = logging.getLogger(__name__)

# A segment whose successor finds no room keeps growing at most this many times its length.
GROW_LIMIT_SEGMENTS = 2
# Arm the keyframe probe this long before a segment is due (wall and media clocks differ a bit).
ARM_EARLY_S = 0.5
MP4_FORMATS = (
    "video/x-h264,stream-format={avc,avc3},alignment=au;"
    "video/x-h265,stream-format={hvc1,hev1},alignment=au"
)


class PlacementRefused(Exception):
    """`location_for` cannot give a file now (no volume has room). With `finish_current` the
    open file is finished too (waiting will not help); otherwise it goes on growing and the
    next keyframe asks again."""

    def __init__(self, message: str, *, finish_current: bool) -> None:
        super().__init__(message)
        self.finish_current = finish_current


@dataclass(frozen=True)
class RecordingSpec:
    """How to record: segment and fragment lengths, and who names the files."""

    segment_seconds: int
    fragment_seconds: float
    # Called on a GStreamer streaming thread with the segment's UTC start; returns the file path
    # or raises `PlacementRefused`.
    location_for: Callable[[datetime], str]


@dataclass(eq=False)
class _FileChain:
    """One segment being written: its muxer, its filesink and where it started."""

    location: str
    guard: Gst.Element
    mux: Gst.Element
    sink: Gst.Element
    pad: Gst.Pad  # the guard's sink pad: where the branch input links
    start_running_time: int
    caps: Gst.Caps | None
    eos_probe: int | None = None  # on the filesink's pad until the file's EOS gets there
    duration_s: float = 0.0  # known once the next segment started (running-time difference)
    failed: bool = False


class RecordingBranch:
    """A bin whose sink pad takes parsed H.264/H.265 and writes segment files."""

    def __init__(
        self,
        stream: str,
        spec: RecordingSpec,
        post: Callable[[MediaMessage], None],
        *,
        faults: CallbackFaults | None = None,
    ) -> None:
        self.stream = stream
        self.spec = spec
        self._post = post
        # The pipeline's guard (or one of its own when used alone, e.g. in tests).
        self._faults = faults or CallbackFaults(stream, post)
        self._lock = threading.Lock()
        self._file: _FileChain | None = None
        self._unfinished: set[_FileChain] = set()  # opened, EOS not yet at their filesink
        self._open_files = 0
        self._all_closed = threading.Event()
        self._all_closed.set()
        self._serial = 0
        self._split_at: int | None = None  # running time the next segment is due
        self._probe_id: int | None = None
        self._timer_id: int | None = None
        self._stopping = False
        self._blocked: str | None = None  # why no file can be opened, while that lasts
        self._chains: dict[str, _FileChain] = {}  # open files by location
        # Element name → file, for the last few files: a failed file's elements may post more
        # errors after they were taken out of the bin.
        self._names: dict[str, str] = {}
        # (UTC, running time) of the first segment: later segments are placed on the media
        # timeline from it, so consecutive segments are contiguous to the frame.
        self._anchor: tuple[datetime, int] | None = None
        self.bin = Gst.Bin.new(f"record-{stream}")
        # The formats mp4mux takes, stated before any muxer exists, so that the parser upstream
        # negotiates them (H.265 parsers would otherwise keep byte-stream, which mp4mux refuses).
        self._filter = gst.make("capsfilter", "formats", caps=Gst.Caps.from_string(MP4_FORMATS))
        self.bin.add(self._filter)
        self.sink_pad = Gst.GhostPad.new("sink", self._filter.get_static_pad("sink"))
        self.sink_pad.set_active(True)
        self.bin.add_pad(self.sink_pad)
        self._out = self._filter.get_static_pad("src")
        self._event_probe = self._out.add_probe(
            Gst.PadProbeType.EVENT_DOWNSTREAM,
            self._faults.guard("recording event probe", self._on_event, Gst.PadProbeReturn.OK),
        )
        # The first segment starts at the first keyframe.
        self._arm()

    # -- splitting ----------------------------------------------------------------------------

    def _arm(self) -> None:
        with self._lock:
            if self._probe_id is None and not self._stopping:
                self._probe_id = self._out.add_probe(
                    Gst.PadProbeType.BUFFER,
                    self._faults.guard(
                        "recording split probe", self._on_buffer, Gst.PadProbeReturn.OK
                    ),
                )

    def _on_buffer(self, pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        buffer = info.get_buffer()
        writing = self._file is not None
        if buffer is None or buffer.pts == Gst.CLOCK_TIME_NONE:
            return Gst.PadProbeReturn.OK if writing else Gst.PadProbeReturn.DROP
        if buffer.has_flags(Gst.BufferFlags.DELTA_UNIT):
            # Before the first file, drop: a segment must start on a keyframe.
            return Gst.PadProbeReturn.OK if writing else Gst.PadProbeReturn.DROP
        running_time = _running_time(pad, buffer.pts)
        if writing and self._split_at is not None and running_time < self._split_at:
            return Gst.PadProbeReturn.OK
        caps = pad.get_current_caps()
        try:
            self._start_file(caps, running_time)
        except PlacementRefused as refused:
            return self._refused(pad, refused, running_time)
        except Exception:  # never let an exception escape into the streaming thread
            logger.exception("%s: cannot open the next segment", self.stream)
            return Gst.PadProbeReturn.DROP if self._file is None else Gst.PadProbeReturn.OK
        if self._blocked is not None:
            logger.info("%s: recording again", self.stream)
            self._blocked = None
        with self._lock:
            self._probe_id = None
        return Gst.PadProbeReturn.REMOVE

    def _refused(
        self, pad: Gst.Pad, refused: PlacementRefused, running_time: int
    ) -> Gst.PadProbeReturn:
        """No file can be opened: keep the open one growing (while retention makes room, up to
        twice its length: the index relies on segments being bounded), or finish it and drop
        video until a file can be opened."""
        chain = self._file
        if chain is not None and not refused.finish_current:
            age = running_time - chain.start_running_time
            if age < GROW_LIMIT_SEGMENTS * self.spec.segment_seconds * Gst.SECOND:
                return Gst.PadProbeReturn.OK  # the next keyframe asks again
        if chain is not None:
            with self._lock:
                self._file = None
                self._split_at = None
            pad.unlink(chain.pad)
            chain.pad.send_event(Gst.Event.new_eos())
        if self._blocked is None:
            self._blocked = str(refused)
            logger.error("%s: recording blocked: %s", self.stream, refused)
            self._post(RecordingBlockedMessage(str(refused)))
        return Gst.PadProbeReturn.DROP

    def _start_file(self, caps: Gst.Caps | None, running_time: int) -> None:
        start = self._wall_clock(running_time)
        location = self.spec.location_for(start)
        self._serial += 1
        # Converts a failed write's flow error into OK for the branch input: without it the
        # error would travel up through the tee and stop the camera's source and every other
        # branch. The failure itself is reported by the filesink's error message.
        guard = gst.make("errorignore", f"guard{self._serial}", ignore_error=True,
                         ignore_notlinked=True, ignore_notnegotiated=False,
                         convert_to=Gst.FlowReturn.OK)  # fmt: skip
        mux = gst.make("mp4mux", f"mux{self._serial}")
        mux.set_property("fragment-duration", max(100, round(self.spec.fragment_seconds * 1000)))
        # Unbuffered writes: a fragment reaches the kernel as soon as mp4mux emits it, so a
        # SIGKILL costs at most the fragment being assembled, not filesink's 64 KB buffer too.
        sink = gst.make("filesink", f"file{self._serial}", location=location, buffer_mode=2)
        sink.set_property("sync", False)
        sink.set_property("async", False)
        self.bin.add(guard)
        self.bin.add(mux)
        self.bin.add(sink)
        if not mux.link(sink):
            raise RuntimeError("cannot link mp4mux to filesink")
        sink.sync_state_with_parent()
        mux.sync_state_with_parent()
        mux_pad = mux.request_pad_simple("video_%u")
        if mux_pad is None:
            raise RuntimeError("mp4mux refused a video pad")
        if guard.get_static_pad("src").link(mux_pad) != Gst.PadLinkReturn.OK:
            raise RuntimeError("cannot link the write guard to mp4mux")
        guard.sync_state_with_parent()
        new = _FileChain(location, guard, mux, sink, guard.get_static_pad("sink"), running_time,
                         caps)  # fmt: skip
        new.eos_probe = sink.get_static_pad("sink").add_probe(
            Gst.PadProbeType.EVENT_DOWNSTREAM,
            self._faults.guard("segment end probe", self._on_sink_event, Gst.PadProbeReturn.OK),
            new,
        )
        with self._lock:
            old, self._file = self._file, new
            self._chains[location] = new
            for element in (guard, mux, sink):
                self._names[element.get_name()] = location
            while len(self._names) > 48:
                del self._names[next(iter(self._names))]
            if old is not None:
                old.duration_s = (running_time - old.start_running_time) / Gst.SECOND
            self._unfinished.add(new)
            self._open_files += 1
            self._all_closed.clear()
            self._split_at = running_time + self.spec.segment_seconds * Gst.SECOND
        # Inside this pad's buffer probe the peer is read only after the probe returns, so
        # relinking here sends the keyframe (and the sticky events) to the new muxer.
        if old is not None:
            self._out.unlink(old.pad)
        elif self._out.is_linked():
            self._out.unlink(self._out.get_peer())
        if self._out.link(new.pad) != Gst.PadLinkReturn.OK:
            raise RuntimeError("cannot link the recording input to mp4mux")
        codec, width, height = codec_of(caps)
        self._post(SegmentFileOpened(location, start, codec, width, height))
        if old is not None:
            old.pad.send_event(Gst.Event.new_eos())
        self._schedule_split()

    def _schedule_split(self) -> None:
        delay_ms = max(0, round((self.spec.segment_seconds - ARM_EARLY_S) * 1000))

        def fire() -> bool:
            with self._lock:
                self._timer_id = None
            self._arm()
            return False  # GLib.SOURCE_REMOVE

        with self._lock:
            if self._stopping:
                return
            if self._timer_id is not None:
                GLib.source_remove(self._timer_id)
            self._timer_id = GLib.timeout_add(
                delay_ms, self._faults.guard("segment timer", fire, False)
            )

    def _wall_clock(self, running_time: int) -> datetime:
        if self._anchor is None:
            self._anchor = (_wall_clock_of(self.bin, running_time), running_time)
        anchor_start, anchor_rt = self._anchor
        return anchor_start + timedelta(microseconds=(running_time - anchor_rt) // 1000)

    def _on_event(self, pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        """New caps (a camera that came back with another resolution or SPS) cannot go into
        the open file: finish it; the next keyframe, in the new format, starts the next one."""
        event = info.get_event()
        if event is None or event.type != Gst.EventType.CAPS:
            return Gst.PadProbeReturn.OK
        chain = self._file
        caps = event.parse_caps()
        if chain is not None and chain.caps is not None and not caps.is_equal(chain.caps):
            logger.info("%s: stream format changed; starting a new segment", self.stream)
            with self._lock:
                self._file = None
                self._split_at = None
            pad.unlink(chain.pad)
            chain.pad.send_event(Gst.Event.new_eos())
            self._arm()
        return Gst.PadProbeReturn.OK

    def cut(self, timeout: float = 5.0) -> None:
        """Finish the open file now (its source went away); the next keyframe starts a new one.

        Called from a worker thread: the file is unlinked when the branch input is idle, so no
        buffer is cut in half."""
        with self._lock:
            chain, self._file = self._file, None
            self._split_at = None
            if self._timer_id is not None:
                GLib.source_remove(self._timer_id)
                self._timer_id = None
        if chain is not None:
            self._unlink_when_idle(chain, timeout)
            chain.pad.send_event(Gst.Event.new_eos())
        self._arm()

    def _unlink_when_idle(self, chain: _FileChain, timeout: float) -> None:
        """Unlink the branch input from `chain` between two buffers (none is cut in half)."""
        unlinked = threading.Event()

        def _on_idle(pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
            if pad.get_peer() == chain.pad:
                pad.unlink(chain.pad)
            unlinked.set()
            return Gst.PadProbeReturn.REMOVE

        self._out.add_probe(Gst.PadProbeType.IDLE, _on_idle)
        if not unlinked.wait(timeout):
            logger.warning("%s: recording input not idle within %.1f s", self.stream, timeout)

    def rotate(self) -> None:
        """Start the next segment at the next keyframe (its file placed anew): how a stream
        moves off a volume being ejected or gone, without losing a frame."""
        with self._lock:
            if self._file is None or self._stopping:
                return
            self._split_at = 0
        self._arm()

    def fail(self, location: str, timeout: float = 5.0) -> bool | None:
        """Writing `location` failed (disk full, I/O error, disk gone): tear that file down now
        and, if it was the open one, start the next segment at the next keyframe (placed
        elsewhere by `location_for`). True if it was the open file (recording is interrupted
        until then), False if it had already been finished at its split (its end is what is
        lost), None if the file is not one of ours (any more). Blocking: call from a worker
        thread."""
        with self._lock:
            chain = self._chains.get(location)
            if chain is None or chain.failed:
                return None
            chain.failed = True
            current = chain is self._file
            if current:
                self._file = None
                self._split_at = None
        if current:
            self._unlink_when_idle(chain, timeout)
            clock_duration = (_now_running_time(self.bin) - chain.start_running_time) / Gst.SECOND
            chain.duration_s = max(0.0, clock_duration)
        with self._lock:
            if chain.eos_probe is not None:
                chain.sink.get_static_pad("sink").remove_probe(chain.eos_probe)
                chain.eos_probe = None
            self._unfinished.discard(chain)
        GLib.idle_add(self._faults.guard("segment close", self._retire, False), chain)
        self._arm()
        return current

    def location_of(self, element: Gst.Object | None) -> str | None:
        """The file written by the chain `element` belongs to (for a bus message's source)."""
        with self._lock:
            while element is not None:
                name = element.get_name()
                if name in self._names and element.get_parent() in (None, self.bin):
                    return self._names[name]
                element = element.get_parent()
        return None

    @property
    def blocked(self) -> str | None:
        """Why no segment can be opened now (no volume with room), or None."""
        return self._blocked

    # -- closing ------------------------------------------------------------------------------

    def _on_sink_event(
        self, _pad: Gst.Pad, info: Gst.PadProbeInfo, chain: _FileChain
    ) -> Gst.PadProbeReturn:
        event = info.get_event()
        if event is None or event.type != Gst.EventType.EOS:
            return Gst.PadProbeReturn.OK
        # The muxer has written its last fragment; the file is complete once filesink has it.
        with self._lock:
            chain.eos_probe = None
            self._unfinished.discard(chain)
        GLib.idle_add(self._faults.guard("segment close", self._retire, False), chain)
        # REMOVE, not OK: the probe's closure holds `chain`, which holds the filesink that owns
        # this pad. Left in place, that cycle runs through C where Python's GC cannot see it,
        # and every finished segment's mp4mux and filesink stayed alive (~40 KB each).
        return Gst.PadProbeReturn.REMOVE

    def _retire(self, chain: _FileChain) -> bool:
        """Release a finished file's elements (GLib thread) and report it closed."""
        with self._lock:
            if self._chains.pop(chain.location, None) is None:
                return False  # already retired (a failed file torn down early)
        for element in (chain.sink, chain.mux, chain.guard):
            element.set_state(Gst.State.NULL)
            if element.get_parent() is self.bin:
                self.bin.remove(element)
        self._post(SegmentFileClosed(chain.location, chain.duration_s))
        with self._lock:
            self._open_files -= 1
            if self._open_files == 0:
                self._all_closed.set()
        return False  # GLib.SOURCE_REMOVE

    def finish(self) -> None:
        """Stop splitting and finish the open file (EOS into its muxer)."""
        with self._lock:
            self._stopping = True
            if self._timer_id is not None:
                GLib.source_remove(self._timer_id)
                self._timer_id = None
            if self._probe_id is not None:
                self._out.remove_probe(self._probe_id)
                self._probe_id = None
            chain = self._file
        if chain is not None:
            chain.pad.send_event(Gst.Event.new_eos())

    def release(self) -> None:
        """Drop the probes and timer that point back at this branch; call once its pipeline
        is in NULL. They hold the branch (and so its bin) from C, a cycle Python's GC cannot
        see: without this every stopped pipeline stayed in memory whole."""
        with self._lock:
            self._stopping = True
            if self._timer_id is not None:
                GLib.source_remove(self._timer_id)
                self._timer_id = None
            if self._probe_id is not None:
                self._out.remove_probe(self._probe_id)
                self._probe_id = None
            self._file = None
            self._chains.clear()
            unfinished, self._unfinished = self._unfinished, set()
        if self._event_probe:
            self._out.remove_probe(self._event_probe)
            self._event_probe = 0
        for chain in unfinished:  # stopped before their EOS reached the filesink
            if chain.eos_probe is not None:
                chain.sink.get_static_pad("sink").remove_probe(chain.eos_probe)
                chain.eos_probe = None

    def wait_closed(self, timeout: float) -> bool:
        """Wait until every file this branch opened has been closed; False on timeout."""
        return self._all_closed.wait(timeout)

    def written(self) -> tuple[int, int]:
        """(which file, buffers its filesink has written): changes with every write, so the
        supervisor can tell a recording that stalled while video arrives. Counted in C."""
        chain = self._file
        if chain is None:
            return self._serial, -1
        stats = chain.sink.get_property("stats")
        rendered = int(stats.get_value("rendered")) if stats is not None else 0
        return self._serial, rendered

    @property
    def writing(self) -> bool:
        """True once a segment file is open."""
        return self._file is not None


def _running_time(pad: Gst.Pad, pts: int) -> int:
    event = pad.get_sticky_event(Gst.EventType.SEGMENT, 0)
    if event is None:
        return pts
    running_time = event.parse_segment().to_running_time(Gst.Format.TIME, pts)
    return pts if running_time == Gst.CLOCK_TIME_NONE else int(running_time)


def _now_running_time(element: Gst.Element) -> int:
    top = element
    while (parent := top.get_parent()) is not None:
        top = parent
    clock = top.get_clock()
    return 0 if clock is None else max(0, clock.get_time() - top.get_base_time())


def _wall_clock_of(element: Gst.Element, running_time: int) -> datetime:
    """UTC time at which the frame with `running_time` was captured (by the pipeline clock)."""
    now = utc_now()
    top = element
    while (parent := top.get_parent()) is not None:
        top = parent
    clock = top.get_clock()
    if clock is None:
        return now
    current = clock.get_time() - top.get_base_time()
    age_ns = max(0, current - running_time)
    return now - timedelta(microseconds=age_ns // 1000)
