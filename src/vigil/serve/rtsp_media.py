"""One stream's RTSP media factory: the shared PLAY media fed from the stream's relay, and one
RECORD media per publisher that offers what it receives on an outlet.

PLAY: ``proxysrc ! rtph264pay`` (or rtph265pay, chosen from the caps at the producer's tee),
shared by every viewer of the stream. The proxysrc is registered with the stream's video relay,
so the media outlives camera reconnects and pipeline rebuilds (the relay re-feeds it), and is
released when the media is unprepared after its last viewer leaves. The RTP sinks GstRTSPStream
adds (appsink for TCP, multiudpsink for UDP) are made not to sync: a viewer gets each frame the
moment it arrives, the timestamps already being the producer's.

RECORD: ``rtph264depay name=depay0 ! h264parse ! tee`` (H.265 alike, picked from the ANNOUNCE
SDP), wrapped in an `Outlet` and bound to the stream's publish relay once the pipeline plays;
the stream's ingest pipeline (`PublishedSource`) takes it from there. Unbound when unprepared.

Everything here runs on the GLib thread that runs the RTSP server.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import gi

from vigil.media import gst
from vigil.media.relay import Outlet, RelayHub, align
from vigil.media.sources import DEPAYLOADERS

gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import Gst, GstRtsp, GstRtspServer  # noqa: E402

logger = logging.getLogger(__name__)

PAYLOADERS = {"video/x-h264": "rtph264pay", "video/x-h265": "rtph265pay"}
# Depayloaded video waits this long for reordered packets (a publisher on TCP needs none; on UDP
# a little): low, for latency.
RECORD_LATENCY_MS = 100
# GstRTSPStream's RTP sinks, made not to wait for the clock (see the module docstring).
_RTP_SINKS = frozenset({"appsink", "multiudpsink", "udpsink"})
_keys = itertools.count(1)
_GOING = frozenset({
    GstRtspServer.RTSPMediaStatus.UNPREPARING, GstRtspServer.RTSPMediaStatus.UNPREPARED,
    GstRtspServer.RTSPMediaStatus.ERROR,
})  # fmt: skip


def payloader_for(caps: Gst.Caps | None) -> str | None:
    """The RTP payloader for video with these caps, or None (unknown, or not known yet)."""
    if caps is None or caps.get_size() == 0:
        return None
    return PAYLOADERS.get(caps.get_structure(0).get_name())


class PendingRecords:
    """The encoding a publisher just announced, per thread: GstRtspServer handles each client
    in a thread of its own, and an ANNOUNCE's media is built in that thread, within the same
    request the server's gate admitted it in. Keyed by the OS thread, not `threading.local`:
    each call from GStreamer's threads into Python gets a fresh thread state, and with it a
    fresh `threading.local`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_thread: dict[int, str] = {}

    def expect(self, encoding: str | None) -> None:
        """The next media built in this thread is a publisher's sending `encoding` (or not)."""
        with self._lock:
            if encoding is None:
                self._by_thread.pop(threading.get_ident(), None)
            else:
                self._by_thread[threading.get_ident()] = encoding

    def peek(self) -> str | None:
        with self._lock:
            return self._by_thread.get(threading.get_ident())

    def take(self) -> str | None:
        with self._lock:
            return self._by_thread.pop(threading.get_ident(), None)


@dataclass(frozen=True)
class PublishHooks:
    """What the server wants to hear about a publisher's media (GLib thread)."""

    recording: Callable[[str, GstRtspServer.RTSPMedia], None]  # its pipeline plays
    ended: Callable[[str, GstRtspServer.RTSPMedia], None]  # unprepared: the publisher is gone


class StreamFactory(GstRtspServer.RTSPMediaFactory):  # type: ignore[misc]
    """Medias of one stream at ``/<stream>``: a shared PLAY media, and RECORD medias for a
    `publish` stream (built when `pending` says this thread's request is a publisher's)."""

    def __init__(
        self,
        stream: str,
        *,
        publish: bool,
        relays: RelayHub,
        pending: PendingRecords,
        hooks: PublishHooks,
    ) -> None:
        super().__init__()
        self.stream = stream
        self.publish = publish
        self._relays = relays
        self._pending = pending
        self._hooks = hooks
        self._lock = threading.Lock()
        self._play_key = f"play-{next(_keys)}"
        self._play_media: GstRtspServer.RTSPMedia | None = None  # the shared one, once prepared
        self.set_shared(True)
        self.set_latency(RECORD_LATENCY_MS)
        self.set_stop_on_disconnect(True)
        self.set_suspend_mode(GstRtspServer.RTSPSuspendMode.NONE)
        mode = GstRtspServer.RTSPTransportMode.PLAY
        if publish:
            mode |= GstRtspServer.RTSPTransportMode.RECORD
        self.set_transport_mode(mode)
        self.connect("media-configure", self._on_media_configure)

    # -- GstRTSPMediaFactory vfuncs ---------------------------------------------------------

    def do_gen_key(self, _url: GstRtsp.RTSPUrl) -> str:
        # One shared PLAY media whatever the URL's tail (/gate, /gate/stream=0); every
        # publisher gets a media of its own, never found by a viewer.
        if self._pending.peek():
            return f"record-{next(_keys)}"
        with self._lock:
            media = self._play_media
            # A viewer arriving as the last one leaves would find the media being unprepared
            # (and be answered 503): it gets a fresh media instead. (Asked only once prepared:
            # get_status() waits while a media prepares.)
            if media is not None and media.get_status() in _GOING:
                self._play_key, self._play_media = f"play-{next(_keys)}", None
            return self._play_key

    def do_create_element(self, _url: GstRtsp.RTSPUrl) -> Gst.Element | None:
        encoding = self._pending.take() if self.publish else None
        try:
            if encoding is not None:
                return self._record_element(encoding)
            return self._play_element()
        except Exception:  # a None return is GstRtspServer's "cannot create media"
            logger.exception("%s: cannot build the RTSP media", self.stream)
            return None

    def _play_element(self) -> Gst.Element | None:
        payloader = payloader_for(self._relays.video(self.stream).caps)
        if payloader is None:  # the server refuses such a DESCRIBE first; a race lands here
            logger.warning("%s: not streaming H.264/H.265 now; no RTSP media", self.stream)
            return None
        bin_ = Gst.Bin.new(f"play-{self.stream}")
        src = gst.make("proxysrc", "src")
        pay = gst.make(payloader, "pay0", pt=96, config_interval=-1)
        for element in (src, pay):
            bin_.add(element)
        src.link(pay)
        return bin_

    def _record_element(self, encoding: str) -> Gst.Element:
        depay_name, parse_name = DEPAYLOADERS[encoding]
        bin_ = Gst.Bin.new(f"record-{self.stream}")
        depay = gst.make(depay_name, "depay0")
        parse = gst.make(parse_name, "parse", config_interval=-1)
        tee = gst.make("tee", "tee", allow_not_linked=True)
        for element in (depay, parse, tee):
            bin_.add(element)
        depay.link(parse)
        parse.link(tee)
        return bin_

    # -- media life -------------------------------------------------------------------------

    def _on_media_configure(
        self, _factory: GstRtspServer.RTSPMediaFactory, media: GstRtspServer.RTSPMedia
    ) -> None:
        element = media.get_element()
        pipeline = element.get_parent()
        if element.get_by_name("tee") is not None:
            self._configure_record(media, element, pipeline)
        else:
            self._configure_play(media, element, pipeline)

    def _configure_play(
        self, media: GstRtspServer.RTSPMedia, element: Gst.Bin, pipeline: Gst.Pipeline
    ) -> None:
        media.set_transport_mode(GstRtspServer.RTSPTransportMode.PLAY)
        relay = self._relays.video(self.stream)
        proxysrc = element.get_by_name("src")
        pipeline.connect("deep-element-added", _unsync_rtp_sink)
        align(pipeline, relay.producer)
        relay.add(proxysrc)
        stream = self.stream

        def unprepared(_media: GstRtspServer.RTSPMedia) -> None:
            relay.remove(proxysrc)
            logger.info("%s: RTSP media released (no viewer left)", stream)

        def prepared(_media: GstRtspServer.RTSPMedia) -> None:
            with self._lock:
                self._play_media = media

        media.connect("prepared", prepared)
        media.connect("unprepared", unprepared)
        logger.info("%s: RTSP media built for viewers", stream)

    def _configure_record(
        self, media: GstRtspServer.RTSPMedia, element: Gst.Bin, pipeline: Gst.Pipeline
    ) -> None:
        media.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
        media.set_shared(False)  # never found by anyone but its publisher
        align(pipeline, None)  # the system clock, as every pipeline that shares video
        # Branches go into the media's bin, beside the tee (pads link within one bin only); a
        # bin has the base time of its pipeline, which is all an outlet asks of its producer.
        outlet = Outlet(cast(Gst.Pipeline, element), element.get_by_name("tee"))
        relay = self._relays.publish(self.stream)
        stream, hooks = self.stream, self._hooks
        bound = False

        def new_state(_media: GstRtspServer.RTSPMedia, state: int) -> None:
            nonlocal bound
            if state == Gst.State.PLAYING and not bound:
                bound = True
                relay.bind(outlet)
                logger.info("%s: RTSP publisher's video offered to the stream", stream)
                hooks.recording(stream, media)

        def unprepared(_media: GstRtspServer.RTSPMedia) -> None:
            relay.unbind(outlet)
            outlet.close()
            hooks.ended(stream, media)

        media.connect("new-state", new_state)
        media.connect("unprepared", unprepared)


def _unsync_rtp_sink(_bin: Gst.Bin, _sub_bin: Gst.Bin, element: Gst.Element) -> None:
    factory = element.get_factory()
    if factory is not None and factory.get_name() in _RTP_SINKS:
        element.set_property("sync", False)
        # GstRTSPStream sets `sync` on its RTP appsink itself after adding it (seen: TRUE by
        # the time a TCP viewer plays, holding every frame for the pipeline's latency, ~65 ms
        # here): keep it off whenever anyone turns it on.
        element.connect("notify::sync", _keep_unsynced)


def _keep_unsynced(element: Gst.Element, _pspec: object) -> None:
    if element.get_property("sync"):
        element.set_property("sync", False)
