"""One WHIP publisher: webrtcbin receiving H.264, depayloaded and parsed onto a tee that is
offered to the stream's ingest pipeline through the publish relay::

    webrtcbin ─► rtph264depay ─► h264parse ─► tee  (Outlet → relays.publish(stream))

The ingest pipeline (source ``publish``) then records and re-serves it like any camera. The
publisher is asked for a keyframe as soon as its video arrives, and again shortly after, so the
recording starts promptly (webrtcbin's RTP session also asks on loss: PLI/FIR). Call on the
GLib thread, except `_on_pad_added`, which runs on a webrtcbin streaming thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstVideo", "1.0")
from gi.repository import GLib, Gst, GstVideo  # noqa: E402

from vigil.media import gst  # noqa: E402
from vigil.media.relay import Outlet, Relay  # noqa: E402
from vigil.serve.webrtc.fanout import gst_link  # noqa: E402
from vigil.serve.webrtc.peer import Peer  # noqa: E402

logger = logging.getLogger(__name__)

# Keyframe requests after the video starts (ms): the first may cross the publisher's own
# start-up keyframe, the later ones cover a request lost with the first packets.
KEYFRAME_REQUESTS_MS = (0, 1000, 3000)
# The receive jitter buffer: enough to reorder a LAN's packets, small for latency.
JITTER_MS = 100


class Publisher:
    """The pipeline of one WHIP session. `on_error(message)` is called on the GLib thread."""

    def __init__(self, stream: str, peer: Peer, relay: Relay, on_error: Callable[[str], None]):
        self.stream = stream
        self.peer = peer
        self._relay = relay
        self._on_error = on_error
        self.pipeline = Gst.Pipeline.new(f"whip-{stream}")
        self.pipeline.add(peer.element)
        self._outlet: Outlet | None = None
        self._chain: tuple[Gst.Element, ...] = ()
        self._closed = False
        peer.element.connect("pad-added", self._on_pad_added)
        self.pipeline.get_bus().add_watch(GLib.PRIORITY_DEFAULT, self._on_message)
        self.pipeline.set_state(Gst.State.PLAYING)

    @property
    def receiving(self) -> bool:
        """True once the publisher's video reaches the relay."""
        return self._outlet is not None

    def stop(self) -> None:
        """Unbind from the relay (the ingest pipeline sees the publisher go) and tear down."""
        self._closed = True
        outlet, self._outlet = self._outlet, None
        if outlet is not None:
            self._relay.unbind(outlet)
        self.pipeline.get_bus().remove_watch()
        self.pipeline.set_state(Gst.State.NULL)

    def _on_pad_added(self, _element: Gst.Element, pad: Gst.Pad) -> None:
        # A streaming thread: link at once, or the first packets hit an unlinked pad and
        # webrtcbin fails the stream.
        if pad.get_direction() != Gst.PadDirection.SRC or self._chain:
            return
        depay = gst.make("rtph264depay", "depay", wait_for_keyframe=True, request_keyframe=True)
        parse = gst.make("h264parse", "parse", config_interval=-1)
        tee = gst.make("tee", "tee", allow_not_linked=True)
        chain = (depay, parse, tee)
        for element in chain:
            self.pipeline.add(element)
        gst_link(chain)
        for element in reversed(chain):
            element.sync_state_with_parent()
        if pad.link(depay.get_static_pad("sink")) != Gst.PadLinkReturn.OK:
            GLib.idle_add(self._fail, "cannot link the publisher's video to the depayloader")
            return
        self._chain = chain
        GLib.idle_add(self._bind, tee)

    def _bind(self, tee: Gst.Element) -> bool:
        if self._closed:
            return False
        self._outlet = Outlet(self.pipeline, tee)
        self._relay.bind(self._outlet)
        logger.info("%s: WHIP publisher's video arrives", self.stream)
        for delay in KEYFRAME_REQUESTS_MS:
            GLib.timeout_add(delay, self._request_keyframe)
        return False

    def _request_keyframe(self) -> bool:
        if not self._closed and self._chain:
            event = GstVideo.video_event_new_upstream_force_key_unit(Gst.CLOCK_TIME_NONE, True, 0)
            self._chain[0].get_static_pad("sink").send_event(event)
        return False

    def _fail(self, message: str) -> bool:
        if not self._closed:
            self._on_error(message)
        return False

    def _on_message(self, _bus: Gst.Bus, message: Gst.Message) -> bool:
        if message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            logger.warning("%s: WHIP publisher: %s (%s)", self.stream, error.message, debug)
            self._fail(error.message)
        return True
