"""Joining recorded segments into one MP4 without re-encoding: the export of a time range.

Each segment file is demuxed on its own (`filesrc ! qtdemux ! appsink`); its access units are
placed on one continuous output timeline and pushed into `appsrc ! mp4mux ! filesink`.

- The clip starts with the GOP that holds `start` (at the keyframe at or before it: a decoder
  needs it) and ends with the last frame before `end` (an end can be cut anywhere).
- Files are butted together: each file keeps its own frame spacing and starts where the previous
  one ended. Consecutive segments are contiguous to the frame, so continuous recording comes
  out exactly as recorded; a gap between two files (camera down, Vigil stopped) is skipped, not
  shown as a frozen frame, and reported as `skipped_s`.
- The output is a progressive MP4 with its index (moov) in front, which browsers and ffplay
  play and seek before the whole file has arrived. mp4mux writes the media data to a scratch
  file and copies it behind the index at the end, so an export needs about twice its size on
  disk for a moment; the caller chooses where (next to the output, not /tmp).
- mp4mux cannot change codec parameters inside a file: at a file whose format differs (a camera
  that came back with another resolution) the clip ends, and `ended_early` says so.

Python handles every buffer here, but in an export worker thread (never on a live stream's
streaming thread), a few microseconds each: about 1,500 buffers per minute of 25 fps video.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from gi.repository import Gst

from vigil.media import gst

logger = logging.getLogger(__name__)

# How long one wait for a buffer or a bus message lasts before cancellation is checked again.
POLL_NS = 250_000_000
# Data queued in front of the muxer before pushing waits (keeps memory flat for long exports).
MAX_QUEUED_BYTES = 8 * 1024 * 1024
# Assumed frame length when neither the buffer nor its neighbours say (25 fps).
DEFAULT_FRAME_NS = 40_000_000
VIDEO_CAPS = "video/x-h264; video/x-h265"
_NONE = Gst.CLOCK_TIME_NONE


class ExportCancelled(Exception):
    """The caller gave up on the export (the client went away)."""


class ExportFailed(RuntimeError):
    """The clip could not be written (the muxer or the disk failed)."""


@dataclass(frozen=True)
class MuxedClip:
    """What was written. Times are wall-clock (UTC) times of the recording."""

    first_frame: datetime  # the keyframe the clip starts with (at or before the asked start)
    end: datetime  # where the last frame written ends
    duration_s: float  # length of the clip's timeline (gaps skipped)
    frames: int
    skipped_s: float  # time between files that holds no video and was left out
    unreadable_files: int  # files that could not be read (in part or at all) and were skipped
    ended_early: str | None  # why the clip stops before the asked end, if it does


def write_mp4(
    files: Sequence[tuple[Path, datetime]],
    start: datetime,
    end: datetime,
    output: Path,
    *,
    scratch: Path,
    cancelled: threading.Event | None = None,
) -> MuxedClip | None:
    """Write the video of ``[start, end)`` from `files` ((path, wall-clock start) in time order)
    to `output`; `scratch` is mp4mux's temporary media file. Blocking: call it from a worker
    thread. Returns None (and writes nothing) if no frame lies in the range.

    Raises `ExportCancelled` when `cancelled` is set, `ExportFailed` if writing fails; files
    that cannot be read are skipped (and counted)."""
    gst.init()
    join = _Joiner(start, end, output, scratch)
    stop = cancelled or threading.Event()
    try:
        for index, (path, file_start) in enumerate(files):
            if not join.add_file(index, path, file_start, stop):
                break
        return join.finish(stop)
    finally:
        join.close()


@dataclass
class _Pending:
    buffer: Gst.Buffer
    rel_ns: int
    file_index: int


class _Joiner:
    """The placing of frames on the output timeline, and the writer they go to."""

    def __init__(self, start: datetime, end: datetime, output: Path, scratch: Path) -> None:
        self.start = start
        self.end_rel = _ns(end - start)
        self.output = output
        self.scratch = scratch
        self.writer: _Mp4Writer | None = None
        self.format: tuple[object, ...] | None = None
        self.pending: list[_Pending] = []  # the GOP before `start`, until `start` is reached
        self.frames = 0
        self.first_rel = 0
        self.shift = 0  # output time = input time - shift (input time: ns after `start`)
        self.lead = 0  # added to every output time so that no DTS is negative (B-frames)
        self.out_end = 0
        self.rel_end = 0
        self.skipped_ns = 0
        self.last_file = -1
        self.unreadable = 0
        self.ended_early: str | None = None

    def add_file(self, index: int, path: Path, file_start: datetime, stop: threading.Event) -> bool:
        """Take the frames of one file; False once the clip is complete (or must end)."""
        offset = _ns(file_start - self.start)
        base: int | None = None
        previous_pts: int | None = None
        frame_ns = DEFAULT_FRAME_NS
        reader = _SegmentReader(path)
        try:
            for sample in reader.samples(stop):
                if base is None:
                    file_format = _format_of(sample.get_caps())
                    if not self.frames:
                        # The GOP kept from an earlier file ended before `start`: `start` lies
                        # in the gap before this file, whose first keyframe is where video is.
                        self.pending.clear()
                        self.format = file_format
                    elif file_format != self.format:
                        self.ended_early = (
                            f"the video format changes at {file_start.isoformat()} (new "
                            "resolution or codec parameters); one MP4 holds one format"
                        )
                        return False
                buffer = sample.get_buffer()
                if buffer is None or buffer.pts == _NONE:
                    continue
                if base is None:
                    base = buffer.pts
                if previous_pts is not None and buffer.pts > previous_pts:
                    frame_ns = buffer.pts - previous_pts
                previous_pts = buffer.pts
                rel = offset + buffer.pts - base
                if rel >= self.end_rel:
                    return False
                self._take(_Pending(buffer, rel, index), frame_ns, sample.get_caps())
        except ExportFailed as error:
            # A file that cannot be read (a truncated leftover, a disk error) costs its part
            # of the clip, not the whole export.
            logger.warning("export: skipping the rest of %s: %s", path.name, error)
            self.unreadable += 1
        finally:
            reader.close()
        return True

    def _take(self, item: _Pending, frame_ns: int, caps: Gst.Caps) -> None:
        keyframe = not item.buffer.has_flags(Gst.BufferFlags.DELTA_UNIT)
        if not self.frames:
            if item.rel_ns < 0:
                if keyframe:
                    self.pending = [item]
                elif self.pending:
                    self.pending.append(item)
                return
            if keyframe and (item.rel_ns == 0 or not self.pending):
                self.pending = []
            elif not self.pending:
                return  # no keyframe yet: nothing before this frame could be decoded
            lead_in, self.pending = self.pending, []
            for earlier in lead_in:
                self._emit(earlier, frame_ns, caps)
        self._emit(item, frame_ns, caps)

    def _emit(self, item: _Pending, frame_ns: int, caps: Gst.Caps) -> None:
        buffer = item.buffer
        if self.writer is None:
            self.writer = _Mp4Writer(caps, self.output, self.scratch)
            self.first_rel = self.shift = item.rel_ns
            if buffer.dts != _NONE and buffer.dts < buffer.pts:
                self.lead = buffer.pts - buffer.dts
        elif item.file_index != self.last_file:
            # The next file starts where the previous one ended; what lies between is a gap.
            self.skipped_ns += max(0, item.rel_ns - self.rel_end)
            self.shift = item.rel_ns - self.out_end
        self.last_file = item.file_index
        out = item.rel_ns - self.shift
        reorder = buffer.pts - buffer.dts if buffer.dts != _NONE else None
        duration = buffer.duration if buffer.duration != _NONE else frame_ns
        buffer.pts = out + self.lead
        buffer.dts = _NONE if reorder is None else max(0, out + self.lead - reorder)
        self.out_end = max(self.out_end, out + duration)
        self.rel_end = max(self.rel_end, item.rel_ns + duration)
        self.frames += 1
        self.writer.push(buffer)

    def finish(self, stop: threading.Event) -> MuxedClip | None:
        if self.writer is None:
            return None
        self.writer.finish(stop)
        return MuxedClip(
            first_frame=self.start + timedelta(microseconds=self.first_rel // 1000),
            end=self.start + timedelta(microseconds=self.rel_end // 1000),
            duration_s=self.out_end / 1e9,
            frames=self.frames,
            skipped_s=self.skipped_ns / 1e9,
            unreadable_files=self.unreadable,
            ended_early=self.ended_early,
        )

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class _SegmentReader:
    """One segment file's video access units, in order, with their caps."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pipeline = Gst.Pipeline.new("export-read")
        source = gst.make("filesrc", location=str(path))
        demux = gst.make("qtdemux")
        self.sink = gst.make("appsink", caps=Gst.Caps.from_string(VIDEO_CAPS), sync=False,
                             max_buffers=64, emit_signals=False)  # fmt: skip
        for element in (source, demux, self.sink):
            self.pipeline.add(element)
        if not source.link(demux):
            raise ExportFailed("cannot link filesrc to qtdemux")
        demux.connect("pad-added", self._on_pad)

    def _on_pad(self, _demux: Gst.Element, pad: Gst.Pad) -> None:
        sink_pad = self.sink.get_static_pad("sink")
        if pad.get_name().startswith("video") and not sink_pad.is_linked():
            pad.link(sink_pad)

    def samples(self, stop: threading.Event) -> Iterator[Gst.Sample]:
        """Every video sample of the file; `ExportFailed` if it cannot be read."""
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise ExportFailed(_bus_error(self.pipeline) or "cannot open the file")
        while True:
            if stop.is_set():
                raise ExportCancelled
            sample = self.sink.emit("try-pull-sample", POLL_NS)
            if sample is not None:
                yield sample
            elif self.sink.get_property("eos"):
                return
            elif (error := _bus_error(self.pipeline)) is not None:
                raise ExportFailed(error)

    def close(self) -> None:
        self.pipeline.set_state(Gst.State.NULL)


class _Mp4Writer:
    """`appsrc ! mp4mux faststart=true ! filesink`: a progressive MP4, index in front."""

    def __init__(self, caps: Gst.Caps, output: Path, scratch: Path) -> None:
        self.pipeline = Gst.Pipeline.new("export-write")
        # Not `block=true`: a push blocked on a full queue would never return once the muxer
        # failed (disk full); the queue is bounded by waiting in `push` instead.
        self.source = gst.make("appsrc", caps=caps, format=Gst.Format.TIME, max_bytes=0)
        mux = gst.make("mp4mux", faststart=True, faststart_file=str(scratch))
        sink = gst.make("filesink", location=str(output))
        for element in (self.source, mux, sink):
            self.pipeline.add(element)
        video = mux.request_pad_simple("video_%u")  # a plain link could pick an audio pad
        if video is None or self.source.get_static_pad("src").link(video) != Gst.PadLinkReturn.OK:
            raise ExportFailed("cannot link the clip's video to mp4mux")
        if not mux.link(sink):
            raise ExportFailed("cannot link mp4mux to filesink")
        self.pushed = 0
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise ExportFailed(_bus_error(self.pipeline) or "cannot start writing the clip")

    def push(self, buffer: Gst.Buffer) -> None:
        self.pushed += 1
        # appsrc queues without telling: a muxer that failed (refused caps, disk full) shows
        # on the bus only, so look there now and then, and whenever the queue is full.
        if self.pushed % 100 == 0 and (error := _bus_error(self.pipeline)) is not None:
            raise ExportFailed(error)
        while self.source.get_property("current-level-bytes") > MAX_QUEUED_BYTES:
            if (error := _bus_error(self.pipeline)) is not None:
                raise ExportFailed(error)
            time.sleep(0.005)
        result = self.source.emit("push-buffer", buffer)
        if result not in (Gst.FlowReturn.OK,):
            raise ExportFailed(_bus_error(self.pipeline) or f"mp4mux refused a frame ({result})")

    def finish(self, stop: threading.Event) -> None:
        """Send EOS and wait until the file is complete (the index is written last)."""
        self.source.emit("end-of-stream")
        bus = self.pipeline.get_bus()
        while True:
            if stop.is_set():
                raise ExportCancelled
            message = bus.timed_pop_filtered(POLL_NS, Gst.MessageType.EOS | Gst.MessageType.ERROR)
            if message is None:
                continue
            if message.type == Gst.MessageType.ERROR:
                error, _debug = message.parse_error()
                raise ExportFailed(error.message)
            return

    def close(self) -> None:
        self.pipeline.set_state(Gst.State.NULL)


def _format_of(caps: Gst.Caps | None) -> tuple[object, ...]:
    """What must stay the same within one MP4 track: codec, layout, size, parameter sets."""
    if caps is None or caps.is_empty():
        return ()
    structure = caps.get_structure(0)
    codec_data = structure.get_value("codec_data") if structure.has_field("codec_data") else None
    parameters = codec_data.extract_dup(0, codec_data.get_size()) if codec_data else None
    return (
        structure.get_name(),
        structure.get_string("stream-format"),
        structure.get_int("width")[1],
        structure.get_int("height")[1],
        parameters,
    )


def _bus_error(pipeline: Gst.Pipeline) -> str | None:
    message = pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
    if message is None:
        return None
    error, _debug = message.parse_error()
    return str(error.message)


def _ns(delta: timedelta) -> int:
    return (delta // timedelta(microseconds=1)) * 1000
