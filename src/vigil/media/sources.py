"""Source bins: turn a stream's source spec into elements that deliver parsed H.264/H.265.

Every source ends in a parser whose src pad is handed to `on_output` once it exists; for RTSP,
files and V4L2 that happens when the stream's codec is known (dynamic pads), for test patterns at
once. Sources that deliver raw or other-codec video are encoded to H.264 once, here, and say so.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Protocol

from gi.repository import Gst

from vigil.config.sources import (
    FileSource,
    RtspSource,
    TestSource,
    Transport,
    V4l2Source,
)
from vigil.media import gst
from vigil.media.callbacks import CallbackFaults
from vigil.media.caps import codec_of
from vigil.media.relay import Relay

logger = logging.getLogger(__name__)

OutputCallback = Callable[[Gst.Pad], None]
FailCallback = Callable[[str], None]

PARSERS = {"h264": "h264parse", "h265": "h265parse"}
DEPAYLOADERS = {"H264": ("rtph264depay", "h264parse"), "H265": ("rtph265depay", "h265parse")}


class Source(Protocol):
    """A source added to a pipeline; it reports its output pad through `on_output`."""

    description: str

    def add_to(self, pipeline: Gst.Pipeline) -> None: ...

    def handle_message(self, structure: Gst.Structure) -> str | None:
        """A failure reason if this element message means the source failed, else None."""
        ...

    def close(self) -> None:
        """Release what the source holds outside the pipeline (after the pipeline stopped)."""
        ...

    def set_watched(self, watched: bool) -> None:
        """Viewers are (or are no longer) watching: favour latency over CPU while they are.
        Any thread."""
        ...


class SourceFailure(RuntimeError):
    """A source could not be set up; `permanent` when retrying cannot fix it."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class _NoExtras:
    """Defaults for sources with nothing outside the pipeline and no element messages."""

    def handle_message(self, structure: Gst.Structure) -> str | None:
        return None

    def close(self) -> None:
        return None

    def set_watched(self, watched: bool) -> None:
        return None


class _Connections:
    """Signal handlers a source connected, to disconnect when it closes.

    The handlers are the source's own methods and the source holds the pipeline's callbacks:
    left connected, element → handler → source → pipeline → element is a cycle through C that
    Python's GC cannot see, and every replaced source or stopped pipeline stayed in memory."""

    def __init__(self, faults: CallbackFaults | None) -> None:
        self._handlers: list[tuple[Gst.Element, int]] = []
        self._faults = faults

    def connect(
        self,
        element: Gst.Element,
        signal: str,
        callback: Callable[..., object],
        fallback: object = None,
    ) -> None:
        """Connect `callback`; an exception in it is the stream's fault (`vigil.media.callbacks`)
        and GStreamer gets `fallback`."""
        if self._faults is not None:
            where = f"{element.get_name()} {signal}"
            callback = self._faults.guard(where, callback, fallback, in_source=True)
        self._handlers.append((element, element.connect(signal, callback)))

    def disconnect_all(self) -> None:
        handlers, self._handlers = self._handlers, []
        for element, handler in handlers:
            element.disconnect(handler)


def add_chain(pipeline: Gst.Bin, elements: list[Gst.Element]) -> None:
    for element in elements:
        pipeline.add(element)
    for upstream, downstream in itertools.pairwise(elements):
        if not upstream.link(downstream):
            raise RuntimeError(f"cannot link {upstream.get_name()} to {downstream.get_name()}")
    for element in elements:
        element.sync_state_with_parent()


def encoder_chain(
    codec: str, *, bitrate_kbit: int, gop_frames: int, zerolatency: bool = True
) -> list[Gst.Element]:
    """Encoder + parser producing `codec` from raw video (used by test patterns and raw sources)."""
    if codec == "h265":
        encoder = gst.make("x265enc", bitrate=bitrate_kbit, key_int_max=gop_frames)
        encoder.set_property("speed-preset", "ultrafast")
        if zerolatency:
            encoder.set_property("tune", "zerolatency")
    else:
        encoder = gst.make("x264enc", bitrate=bitrate_kbit, key_int_max=gop_frames)
        encoder.set_property("speed-preset", "ultrafast")
        if zerolatency:
            encoder.set_property("tune", "zerolatency")
    return [encoder, gst.make(PARSERS[codec])]


class RtspPullSource(_NoExtras):
    """rtspsrc pulling one video stream from a camera, depayloaded and parsed."""

    def __init__(
        self,
        stream: str,
        spec: RtspSource,
        on_output: OutputCallback,
        on_fail: FailCallback,
        faults: CallbackFaults | None = None,
    ) -> None:
        self.stream = stream
        self.spec = spec
        self.description = f"rtsp {spec.redacted_url} ({spec.transport})"
        self._on_output = on_output
        self._on_fail = on_fail
        self._pipeline: Gst.Pipeline | None = None
        self._signals = _Connections(faults)
        self._linked = False
        self.uses_native_stamper = False

    def add_to(self, pipeline: Gst.Pipeline) -> None:
        self._pipeline = pipeline
        src = gst.make("rtspsrc", "source", location=self.spec.url)
        # Recording wants the camera's own timing: PTS from RTP timestamps, no skew smoothing.
        src.set_property("buffer-mode", 0)
        src.set_property("latency", 200)
        src.set_property("tcp-timeout", 10_000_000)
        src.set_property("timeout", 5_000_000)
        if self.spec.transport == Transport.TCP:
            src.set_property("protocols", "tcp")
        elif self.spec.transport == Transport.UDP:
            src.set_property("protocols", "udp")
        if self.spec.transport == Transport.TCP and gst.native_available():
            # TCP delivers in order and loses nothing: no jitterbuffer (and its thread) needed.
            self.uses_native_stamper = True
            src.connect("new-manager", self._on_new_manager)
        self._signals.connect(src, "select-stream", self._on_select_stream, False)
        self._signals.connect(src, "pad-added", self._on_pad_added)
        pipeline.add(src)

    def close(self) -> None:
        self._signals.disconnect_all()  # see _Connections
        self._pipeline = None

    @staticmethod
    def _on_new_manager(_src: Gst.Element, manager: Gst.Element) -> None:
        manager.connect("request-jitterbuffer", _make_stamper)

    def _on_select_stream(self, _src: Gst.Element, _num: int, caps: Gst.Caps) -> bool:
        structure = caps.get_structure(0)
        media = structure.get_string("media")
        encoding = (structure.get_string("encoding-name") or "").upper()
        if media != "video" or self._linked:
            return False
        if encoding not in DEPAYLOADERS:
            self._on_fail(
                f"camera sends {encoding or 'unknown'} video; Vigil records H264 and H265"
            )
            return False
        return True

    def _on_pad_added(self, _src: Gst.Element, pad: Gst.Pad) -> None:
        caps = pad.get_current_caps() or pad.query_caps(None)
        structure = caps.get_structure(0)
        if structure.get_string("media") != "video" or self._linked:
            return
        encoding = (structure.get_string("encoding-name") or "").upper()
        if encoding not in DEPAYLOADERS:
            return
        depay_name, parse_name = DEPAYLOADERS[encoding]
        assert self._pipeline is not None
        depay = gst.make(depay_name, "depay")
        parse = gst.make(parse_name, "parse")
        add_chain(self._pipeline, [depay, parse])
        if pad.link(depay.get_static_pad("sink")) != Gst.PadLinkReturn.OK:
            self._on_fail(f"cannot link the camera's {encoding} stream to the depayloader")
            return
        self._linked = True
        self._on_output(parse.get_static_pad("src"))


def _make_stamper(_rtpbin: Gst.Element, _session: int) -> Gst.Element:
    return Gst.ElementFactory.make("vigilrtpstamp", None)


class TestPatternSource(_NoExtras):
    """A live synthetic pattern with a burnt-in clock, encoded once for this stream."""

    def __init__(self, stream: str, spec: TestSource, on_output: OutputCallback) -> None:
        self.stream = stream
        self.spec = spec
        self.description = (
            f"test pattern {spec.pattern} {spec.codec} {spec.width}x{spec.height}@{spec.fps}"
        )
        self._on_output = on_output

    def add_to(self, pipeline: Gst.Pipeline) -> None:
        spec = self.spec
        src = gst.make("videotestsrc", "source", is_live=True)
        src.set_property("pattern", spec.pattern)
        caps = gst.make("capsfilter")
        caps.set_property(
            "caps",
            Gst.Caps.from_string(
                # I420: 8-bit 4:2:0 like a camera's; left open, x264 is handed videotestsrc's
                # first format and encodes High 4:4:4 (10-bit), which browsers cannot decode.
                f"video/x-raw,format=I420,width={spec.width},height={spec.height},"
                f"framerate={spec.fps}/1"
            ),
        )
        overlay = gst.make("clockoverlay", time_format="%Y-%m-%d %H:%M:%S")
        overlay.set_property("text", self.stream)
        gop = spec.gop_frames or spec.fps
        chain = [
            src,
            caps,
            overlay,
            *encoder_chain(spec.codec, bitrate_kbit=spec.bitrate_kbit, gop_frames=gop),
        ]
        add_chain(pipeline, chain)
        self._on_output(chain[-1].get_static_pad("src"))


class _ParsebinSource(_NoExtras):
    """Shared logic for sources demuxed by parsebin: pass H.264/H.265 through, encode the rest."""

    live = True

    def __init__(
        self,
        stream: str,
        on_output: OutputCallback,
        on_fail: FailCallback,
        faults: CallbackFaults | None = None,
    ) -> None:
        self.stream = stream
        self._on_output = on_output
        self._on_fail = on_fail
        self._pipeline: Gst.Pipeline | None = None
        self._signals = _Connections(faults)
        self._linked = False
        self.transcoding: str | None = None

    def close(self) -> None:
        self._signals.disconnect_all()  # see _Connections
        self._pipeline = None

    def _make_parsebin(self) -> Gst.Element:
        parsebin = gst.make("parsebin", "demux")
        self._signals.connect(parsebin, "pad-added", self._on_pad_added)
        return parsebin

    def _on_pad_added(self, _bin: Gst.Element, pad: Gst.Pad) -> None:
        caps = pad.get_current_caps() or pad.query_caps(None)
        name = caps.get_structure(0).get_name()
        if self._linked or not (name.startswith("video/") or name.startswith("image/")):
            return
        assert self._pipeline is not None
        codec, _w, _h = codec_of(caps)
        chain: list[Gst.Element] = []
        if codec is None:
            # Not H.264/H.265: decode and encode once to H.264 so it can be recorded as-is after.
            self.transcoding = name
            logger.info("%s: source delivers %s; encoding it to H.264", self.stream, name)
            chain = [
                gst.make("decodebin"),
                gst.make("videoconvert"),
                *encoder_chain("h264", bitrate_kbit=2000, gop_frames=25),
            ]
        if not self.live:
            # Files are not live: pace them to the clock as a camera would deliver them.
            chain.append(gst.make("clocksync"))
        if not chain:
            self._linked = True
            self._on_output(pad)
            return
        decodebin = chain[0] if codec is None else None
        if decodebin is not None:
            rest = chain[1:]
            add_chain(self._pipeline, rest)
            self._pipeline.add(decodebin)
            decodebin.sync_state_with_parent()
            target = rest[0].get_static_pad("sink")
            decodebin.connect(
                "pad-added", lambda _d, dpad: dpad.link(target) if not target.is_linked() else None
            )
            pad.link(decodebin.get_static_pad("sink"))
        else:
            add_chain(self._pipeline, chain)
            pad.link(chain[0].get_static_pad("sink"))
        self._linked = True
        self._on_output(chain[-1].get_static_pad("src"))


class FileLoopSource(_ParsebinSource):
    """A video file played in real time, looped seamlessly (segment seeks) when asked to."""

    live = False

    def __init__(
        self,
        stream: str,
        spec: FileSource,
        on_output: OutputCallback,
        on_fail: FailCallback,
        faults: CallbackFaults | None = None,
    ) -> None:
        super().__init__(stream, on_output, on_fail, faults)
        self.spec = spec
        self.description = f"file {spec.path}" + (" (looped)" if spec.loop else "")

    def add_to(self, pipeline: Gst.Pipeline) -> None:
        self._pipeline = pipeline
        src = gst.make("filesrc", "source", location=str(self.spec.path))
        parsebin = self._make_parsebin()
        add_chain(pipeline, [src, parsebin])


class V4l2DeviceSource(_ParsebinSource):
    """A local V4L2 device; H.264 cameras pass through, raw/MJPEG ones are encoded once."""

    def __init__(
        self,
        stream: str,
        spec: V4l2Source,
        on_output: OutputCallback,
        on_fail: FailCallback,
        faults: CallbackFaults | None = None,
    ) -> None:
        super().__init__(stream, on_output, on_fail, faults)
        self.spec = spec
        self.description = f"v4l2 {spec.device}"

    def add_to(self, pipeline: Gst.Pipeline) -> None:
        self._pipeline = pipeline
        src = gst.make("v4l2src", "source", device=str(self.spec.device))
        elements = [src]
        fields = []
        if self.spec.width and self.spec.height:
            fields.append(f"width={self.spec.width},height={self.spec.height}")
        if self.spec.fps:
            fields.append(f"framerate={self.spec.fps}/1")
        if fields:
            caps = gst.make("capsfilter")
            # Size and rate apply whatever the camera encodes: raw, MJPEG or H.264 itself.
            wanted = ",".join(fields)
            formats = ("video/x-raw", "image/jpeg", "video/x-h264")
            caps.set_property(
                "caps", Gst.Caps.from_string(";".join(f"{kind},{wanted}" for kind in formats))
            )
            elements.append(caps)
        elements.append(self._make_parsebin())
        add_chain(pipeline, elements)


class NoPublisher(SourceFailure):
    """A `publish` stream has no publisher connected (not a fault: it waits for one)."""


class PublishedSource(_NoExtras):
    """Video a publisher sends in (RTSP RECORD, WHIP), received from the stream's publish relay.

    The publisher's pipeline parses the video and offers it on its outlet; this source is a
    ``proxysrc`` registered with the relay, so it is fed by whichever publisher is connected.
    Without one it refuses to start (the supervisor retries, and is told when one arrives)."""

    def __init__(self, stream: str, relay: Relay, on_output: OutputCallback) -> None:
        self.stream = stream
        self.description = "published (RTSP RECORD or WHIP)"
        self._relay = relay
        self._on_output = on_output
        self._proxysrc: Gst.Element | None = None

    def add_to(self, pipeline: Gst.Pipeline) -> None:
        if not self._relay.live:
            raise NoPublisher(
                f"waiting for a publisher: send to rtsp://<vigil>:8554/{self.stream} "
                f"(RTSP RECORD) or POST /{self.stream}/whip"
            )
        src = gst.make("proxysrc", "source")
        pipeline.add(src)
        src.sync_state_with_parent()
        self._proxysrc = src
        self._on_output(src.get_static_pad("src"))
        self._relay.add(src)

    def close(self) -> None:
        src, self._proxysrc = self._proxysrc, None
        if src is not None:
            self._relay.remove(src)
