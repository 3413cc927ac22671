"""A camera simulator: N RTSP cameras for tests, demos and benchmarks, for the price of one.

The picture (a moving pattern with a burnt-in clock, or a video file looped) is encoded ONCE.
Encoded frames go through an appsink into a single shared RTSP media that every mount
(`/cam1` … `/camN`) resolves to, so 200 cameras cost one encoder plus the sending. The media
is not seekable (its source is an appsrc), which is what makes sharing it across mount paths safe:
a client's PLAY then never flushes the media under the other clients' feet.

With `stamp_time`, raw frames go through Python on their way to the encoder, which draws the
wall-clock time into each (`vigil.media.framestamp`): the serving benchmark reads it back on
arrival. Without it the raw video never leaves GStreamer.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gi

from vigil.media import gst
from vigil.media.framestamp import StampLayout, luma_band

gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstApp", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstApp, GstRtsp, GstRtspServer, GstVideo  # noqa: E402

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SimulatorSettings:
    """What the simulated cameras send."""

    cameras: int = 4
    port: int = 8654
    host: str = "127.0.0.1"
    codec: str = "h264"
    width: int = 1280
    height: int = 720
    fps: int = 25
    bitrate_kbit: int = 2000
    gop_frames: int | None = None
    file: Path | None = None
    # Credentials the cameras demand (Basic or Digest), like a real camera; None: open.
    auth: tuple[str, str] | None = None
    # A new viewer gets a keyframe at once (as most cameras do); off, it waits for the next GOP.
    keyframe_on_join: bool = True
    # Draw the wall-clock time into every frame just before encoding (latency benchmarks).
    stamp_time: bool = False

    def urls(self) -> list[str]:
        """The RTSP URL of every simulated camera."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return [f"rtsp://{host}:{self.port}/cam{i}" for i in range(1, self.cameras + 1)]


def _picture_description(s: SimulatorSettings) -> str:
    # 8-bit 4:2:0 as cameras send: left open, x264 took videotestsrc's first format and encoded
    # High 4:4:4 10-bit, which browsers offer to take over WebRTC but never decode.
    raw = f"video/x-raw,format=I420,width={s.width},height={s.height},framerate={s.fps}/1"
    if s.file is not None:
        source = f"intervideosrc channel=vigil-sim timeout=1000000000000 ! {raw}"
    else:
        source = f"videotestsrc is-live=true pattern=smpte horizontal-speed=4 ! {raw}"
    return f'{source} ! clockoverlay time-format="%Y-%m-%d %H:%M:%S"'


def _encoder_description(s: SimulatorSettings) -> str:
    gop = s.gop_frames or s.fps
    if s.codec == "h265":
        encoder = (
            f"x265enc tune=zerolatency speed-preset=ultrafast bitrate={s.bitrate_kbit} "
            f"key-int-max={gop} ! h265parse config-interval=-1 ! "
            "video/x-h265,stream-format=byte-stream,alignment=au"
        )
    else:
        # CBR so the stream really is `bitrate_kbit` even for a picture that compresses well.
        encoder = (
            f"x264enc tune=zerolatency speed-preset=ultrafast bitrate={s.bitrate_kbit} pass=cbr "
            f"key-int-max={gop} ! h264parse config-interval=-1 ! "
            "video/x-h264,stream-format=byte-stream,alignment=au"
        )
    # With a time stamp, the picture comes from _raw_description through Python.
    source = (
        "appsrc name=stamped is-live=true format=time" if s.stamp_time else _picture_description(s)
    )
    return (
        f"{source} ! {encoder} ! "
        "appsink name=out emit-signals=true sync=false max-buffers=2 drop=true"
    )


def _raw_description(s: SimulatorSettings) -> str:
    """The picture before the encoder, handed to Python to be stamped (`stamp_time` only)."""
    return (
        f"{_picture_description(s)} ! videoconvert ! video/x-raw,format=I420 ! "
        "appsink name=raw emit-signals=true sync=false max-buffers=2 drop=true"
    )


def _file_description(s: SimulatorSettings) -> str:
    # 8-bit 4:2:0 as cameras send: left open, x264 took videotestsrc's first format and encoded
    # High 4:4:4 10-bit, which browsers offer to take over WebRTC but never decode.
    raw = f"video/x-raw,format=I420,width={s.width},height={s.height},framerate={s.fps}/1"
    location = GLib.strescape(str(s.file), None)
    return (
        f'filesrc location="{location}" ! decodebin ! videoconvert ! videoscale ! videorate ! '
        f"{raw} ! intervideosink channel=vigil-sim sync=true"
    )


def _payloader(codec: str) -> str:
    return "rtph265pay" if codec == "h265" else "rtph264pay"


class _SharedFactory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc]
    """One media for every mount path: every simulated camera is the same camera."""

    def do_gen_key(self, _url: object) -> str:
        return "vigil-sim"


class CameraSimulator:
    """Serves `settings.cameras` RTSP cameras; runs on the default GLib main context."""

    def __init__(self, settings: SimulatorSettings) -> None:
        gst.init()
        self.settings = settings
        self._lock = threading.Lock()
        self._appsrcs: dict[Gst.Element, int | None] = {}
        self._caps: Gst.Caps | None = None
        self._caps_ready = threading.Event()
        self._encoder = Gst.parse_launch(_encoder_description(settings))
        self._decoder = Gst.parse_launch(_file_description(settings)) if settings.file else None
        appsink = self._encoder.get_by_name("out")
        appsink.connect("new-sample", self._on_sample)
        self._raw: Gst.Pipeline | None = None
        self._stamped: Gst.Element | None = None
        self._stamp_places: tuple[StampLayout, GstVideo.VideoInfo] | None = None
        if settings.stamp_time:
            self._raw = Gst.parse_launch(_raw_description(settings))
            self._raw.get_by_name("raw").connect("new-sample", self._on_raw_sample)
            self._stamped = self._encoder.get_by_name("stamped")
        self._server = GstRtspServer.RTSPServer()
        self._server.set_address(settings.host)
        self._server.set_service(str(settings.port))
        self._factory = _SharedFactory()
        self._factory.set_shared(True)
        self._factory.set_launch(
            "( appsrc name=src is-live=true format=time max-bytes=4000000 "
            f"leaky-type=downstream ! {_payloader(settings.codec)} name=pay0 pt=96 "
            "config-interval=0 )"
        )
        self._factory.connect("media-configure", self._on_media_configure)
        if settings.keyframe_on_join:
            self._server.connect("client-connected", self._on_client_connected)
        if settings.auth is not None:
            self._protect(*settings.auth)
        mounts = self._server.get_mount_points()
        for index in range(1, settings.cameras + 1):
            mounts.add_factory(f"/cam{index}", self._factory)
        self._source_id: int | None = None
        self._watches: list[Gst.Bus] = []
        self._looping = False

    def _protect(self, user: str, password: str) -> None:
        auth = GstRtspServer.RTSPAuth.new()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", "viewer")
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        auth.add_digest(user, password, token)
        # Digest is what cameras commonly demand; GstRtspServer then answers with a Digest
        # challenge (Basic credentials still work for clients that send them unasked).
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        self._server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions.new()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        self._factory.set_permissions(permissions)

    def start(self) -> None:
        """Start encoding and listening; call from (or before running) the GLib main loop."""
        for pipeline in filter(None, (self._decoder, self._encoder, self._raw)):
            bus = pipeline.get_bus()
            bus.add_signal_watch()
            bus.connect("message", self._on_bus_message)
            self._watches.append(bus)
            if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
                raise RuntimeError("the simulator's encoder failed to start")
        # Clients need the stream's caps for the SDP: only listen once the encoder has
        # produced its first frame, so no client ever sees a camera without caps.
        if not self._caps_ready.wait(15):
            raise RuntimeError("the simulator's encoder produced no frame within 15 s")
        self._source_id = self._server.attach(None)
        if self._source_id == 0:
            raise OSError(f"cannot listen on {self.settings.host}:{self.settings.port}")

    def stop(self) -> None:
        """Stop serving and encoding."""
        if self._source_id:
            GLib.source_remove(self._source_id)
            self._source_id = None
        for bus in self._watches:
            bus.remove_signal_watch()
        self._watches.clear()
        for pipeline in filter(None, (self._raw, self._encoder, self._decoder)):
            pipeline.set_state(Gst.State.NULL)

    def _on_raw_sample(self, appsink: GstApp.AppSink) -> Gst.FlowReturn:
        """Stamp the wall-clock time into a raw frame and hand it to the encoder."""
        sample = appsink.pull_sample()
        if sample is None or self._stamped is None:
            return Gst.FlowReturn.OK
        if self._stamp_places is None:
            caps = sample.get_caps()
            self._stamped.set_property("caps", caps)
            info = GstVideo.VideoInfo.new_from_caps(caps)
            self._stamp_places = (StampLayout.for_frame(info.width, info.height), info)
        layout, info = self._stamp_places
        # The frame may still be referenced upstream: draw on a copy of its own.
        buffer = sample.get_buffer().copy_deep()
        for plane in (1, 2):  # neutral chroma under the blocks: clean black and white
            stride = info.stride[plane]
            buffer.fill(
                info.offset[plane] + layout.top // 2 * stride,
                b"\x80" * (layout.block // 2 * stride),
            )
        band = luma_band(time.time_ns() // 1_000_000, layout, info.stride[0])
        buffer.fill(info.offset[0] + layout.top * info.stride[0], band)
        return self._stamped.emit("push-buffer", buffer)

    def _on_sample(self, appsink: GstApp.AppSink) -> Gst.FlowReturn:
        sample = appsink.pull_sample()
        if sample is None:
            return Gst.FlowReturn.OK
        if self._caps is None:
            self._caps = sample.get_caps()
            self._caps_ready.set()
        with self._lock:
            targets = list(self._appsrcs.items())
        source = sample.get_buffer()
        for appsrc, offset in targets:
            if offset is None:
                offset = self._offset_for(appsrc, sample.get_segment(), source.pts)
                if offset is None:
                    continue
            # Keep the encoder's exact frame spacing, moved onto the media's running time:
            # a real camera's RTP timestamps are regular, not arrival-jittered.
            if source.pts + offset < 0:
                continue  # captured before this media started
            buffer = source.copy()
            buffer.pts = source.pts + offset
            buffer.dts = Gst.CLOCK_TIME_NONE
            appsrc.push_buffer(buffer)
        return Gst.FlowReturn.OK

    def _offset_for(self, appsrc: Gst.Element, segment: Gst.Segment, pts: int) -> int | None:
        """The media's running time minus the capture pipeline's, through their shared clock.

        GstRtspServer's RTP sinks sync to the clock: a frame is sent when the media's running
        time reaches its timestamp. Taken from when a first frame happened to arrive, the
        offset would hold every later frame back by as long as that one was late (seen: ~0.6 s
        for good, after a start under load); mapped through the clock, a frame is due at the
        moment it was captured, so each goes out as soon as it is encoded."""
        clock = appsrc.get_clock()
        if clock is None or pts == Gst.CLOCK_TIME_NONE:
            return None
        capture = self._raw if self._raw is not None else self._encoder
        if capture.get_clock() is not clock:
            # Not one clock (not expected: both use the system clock): time of arrival it is.
            offset = int(clock.get_time() - appsrc.get_base_time()) - pts
        else:
            # The encoder's timestamps live in its own segment (x264enc starts at 1000 h).
            running = segment.to_running_time(Gst.Format.TIME, pts)
            offset = running - pts + int(capture.get_base_time()) - int(appsrc.get_base_time())
        with self._lock:
            if appsrc in self._appsrcs:
                self._appsrcs[appsrc] = offset
        return offset

    def _on_media_configure(
        self, _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia
    ) -> None:
        appsrc = media.get_element().get_child_by_name("src")
        appsrc.set_property("caps", self._caps)
        with self._lock:
            self._appsrcs[appsrc] = None
        media.connect("unprepared", self._on_unprepared, appsrc)

    def _on_client_connected(
        self, _server: GstRtspServer.RTSPServer, client: GstRtspServer.RTSPClient
    ) -> None:
        client.connect("play-request", self._on_play_request)

    def _on_play_request(self, _client: GstRtspServer.RTSPClient, _context: object) -> None:
        """Start every new viewer on a keyframe, as most cameras do, instead of making it wait
        for the next GOP. On PLAY, not when the shared media is configured: that happens only
        for the first viewer."""
        self._encoder.send_event(
            Gst.Event.new_custom(
                Gst.EventType.CUSTOM_UPSTREAM,
                Gst.Structure.new_from_string("GstForceKeyUnit, all-headers=(boolean)true"),
            )
        )

    def _on_unprepared(self, _media: GstRtspServer.RTSPMedia, appsrc: Gst.Element) -> None:
        with self._lock:
            self._appsrcs.pop(appsrc, None)

    def _on_bus_message(self, _bus: Gst.Bus, message: Gst.Message) -> None:
        if message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            logger.error("simulator: %s (%s)", error.message, debug)
        elif message.type == Gst.MessageType.SEGMENT_DONE and self._decoder is not None:
            # Non-flushing segment seek: the file loops without a gap in running time.
            self._decoder.seek_simple(Gst.Format.TIME, Gst.SeekFlags.SEGMENT, 0)
        elif (
            message.type == Gst.MessageType.ASYNC_DONE
            and self._decoder is not None
            and message.src is self._decoder
            and not self._looping
        ):
            self._looping = True
            self._decoder.seek_simple(
                Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.SEGMENT, 0
            )
