"""One stream's WebRTC fan-out: its video payloaded once per payload type, then sent to every
WHEP session, all in one pipeline, in C::

    proxysrc ! tee ─┬─ queue ! rtph264pay pt=A ! capssetter ! tee ─┬─ queue(leaky) ! webrtcbin
                    │                                              └─ queue(leaky) ! webrtcbin
                    └─ queue ! rtph264pay pt=B ! capssetter ! tee ── queue(leaky) ! webrtcbin

Built for the first viewer, torn down after the last. Clients choose different payload types for
H.264 (aiortc 99/101, Chromium 102/106/...): one payloader per (payload type, profile-level-id)
in use. The capssetter stamps the payloader's output with exactly the caps the sessions'
transceivers prefer, so webrtcbin answers with the offer's format whatever profile the camera
sends. Each session's queue is leaky: a slow link loses its own packets, never another's.
The relay keeps the proxysrc across camera reconnects: sessions stay, and frames resume.
Call everything on the GLib thread.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass

import gi

gi.require_version("Gst", "1.0")
from gi.repository import GLib, Gst  # noqa: E402

from vigil.media import gst  # noqa: E402
from vigil.media.relay import Relay, align, unlink_when_idle  # noqa: E402

logger = logging.getLogger(__name__)

# RTP packets a session may fall behind before its queue drops the oldest: about a second of
# a 4 Mbit/s stream, far more than a healthy link ever holds.
SESSION_QUEUE_BUFFERS = 400

_names = itertools.count(1)


@dataclass(eq=False)
class _Payloader:
    """One payload type's branch: queue ! rtph264pay ! capssetter ! tee."""

    caps: str
    elements: tuple[Gst.Element, ...]
    tee: Gst.Element
    tee_pad: Gst.Pad  # on the stream's raw tee
    sessions: int = 0


@dataclass(eq=False)
class _Leg:
    """One session's branch off its payloader's tee."""

    payloader: _Payloader
    queue: Gst.Element
    webrtcbin: Gst.Element
    tee_pad: Gst.Pad


class StreamFanout:
    """The WebRTC viewers of one stream. `on_error(session_id or None, message)` is called on
    the GLib thread for a bus error: from one session's elements (that session), or from the
    shared part (None: every session of the stream)."""

    def __init__(self, stream: str, relay: Relay, on_error: Callable[[str | None, str], None]):
        self.stream = stream
        self._relay = relay
        self._on_error = on_error
        self.pipeline = Gst.Pipeline.new(f"webrtc-{stream}")
        self._proxysrc = gst.make("proxysrc", "relay")
        self._raw = gst.make("tee", "raw", allow_not_linked=True)
        self.pipeline.add(self._proxysrc)
        self.pipeline.add(self._raw)
        self._proxysrc.link(self._raw)
        self._payloaders: dict[str, _Payloader] = {}
        self._legs: dict[str, _Leg] = {}
        bus = self.pipeline.get_bus()
        self._watch = bus.add_watch(GLib.PRIORITY_DEFAULT, self._on_message)
        align(self.pipeline, relay.producer)
        self.pipeline.set_state(Gst.State.PLAYING)
        relay.add(self._proxysrc)

    @property
    def sessions(self) -> int:
        return len(self._legs)

    def attach(self, session_id: str, caps: str, webrtcbin: Gst.Element, pad: Gst.Pad) -> None:
        """Feed `webrtcbin`'s sink `pad` with RTP in `caps`, payloading anew only for caps no
        other session uses yet. The element is added to this pipeline and started."""
        payloader = self._payloaders.get(caps) or self._add_payloader(caps)
        queue = gst.make("queue", f"session-queue{next(_names)}", leaky=2,
                         max_size_buffers=SESSION_QUEUE_BUFFERS, max_size_bytes=0,
                         max_size_time=0)  # fmt: skip
        self.pipeline.add(queue)
        self.pipeline.add(webrtcbin)
        queue.get_static_pad("src").link(pad)
        webrtcbin.sync_state_with_parent()
        queue.sync_state_with_parent()
        tee_pad = payloader.tee.request_pad_simple("src_%u")
        tee_pad.link(queue.get_static_pad("sink"))
        payloader.sessions += 1
        self._legs[session_id] = _Leg(payloader, queue, webrtcbin, tee_pad)
        logger.debug("%s: webrtc session %s attached", self.stream, session_id[:8])

    def detach(self, session_id: str) -> None:
        """Take the session's branch out (and its payloader, if it was the last user)."""
        leg = self._legs.pop(session_id, None)
        if leg is None:
            return
        unlink_when_idle(leg.payloader.tee, leg.tee_pad, leg.queue.get_static_pad("sink"))
        leg.payloader.tee.release_request_pad(leg.tee_pad)
        # webrtcbin first: until the session connects, its sink pad holds the queue's thread in
        # a blocking probe, and stopping the queue first waits for that thread forever (the
        # GLib thread, and with it all signalling, hung). A webrtcbin going down flushes its
        # pads, which releases the thread; the queue then stops at once.
        for element in (leg.webrtcbin, leg.queue):
            element.set_state(Gst.State.NULL)
            self.pipeline.remove(element)
        leg.payloader.sessions -= 1
        if leg.payloader.sessions == 0:
            self._remove_payloader(leg.payloader)

    def stop(self) -> None:
        """Tear the pipeline down (after the last session)."""
        for session_id in list(self._legs):
            self.detach(session_id)
        self._relay.remove(self._proxysrc)
        self.pipeline.get_bus().remove_watch()
        self.pipeline.set_state(Gst.State.NULL)

    def session_of(self, element: Gst.Object | None) -> str | None:
        """The session whose branch holds `element`, if any."""
        while element is not None:
            for session_id, leg in self._legs.items():
                if element is leg.webrtcbin or element is leg.queue:
                    return session_id
            element = element.get_parent()
        return None

    def _add_payloader(self, caps: str) -> _Payloader:
        payload_type = Gst.Caps.from_string(caps).get_structure(0).get_value("payload")
        n = next(_names)
        queue = gst.make("queue", f"pay-queue{n}", leaky=2, max_size_buffers=60,
                         max_size_bytes=0, max_size_time=0)  # fmt: skip
        # config-interval=-1: SPS/PPS with every IDR, so a viewer joining mid-stream can decode
        # from the next keyframe on.
        pay = gst.make("rtph264pay", f"pay{n}", pt=payload_type, config_interval=-1,
                       aggregate_mode=1)  # fmt: skip
        stamp = gst.make("capssetter", f"stamp{n}", caps=Gst.Caps.from_string(caps),
                         replace=True, join=False)  # fmt: skip
        tee = gst.make("tee", f"pay-tee{n}", allow_not_linked=True)
        elements = (queue, pay, stamp, tee)
        for element in elements:
            self.pipeline.add(element)
        gst_link(elements)
        for element in reversed(elements):
            element.sync_state_with_parent()
        tee_pad = self._raw.request_pad_simple("src_%u")
        tee_pad.link(queue.get_static_pad("sink"))
        payloader = _Payloader(caps, elements, tee, tee_pad)
        self._payloaders[caps] = payloader
        logger.info("%s: webrtc payloading as %s", self.stream, caps.split(",", 4)[-1])
        return payloader

    def _remove_payloader(self, payloader: _Payloader) -> None:
        self._payloaders.pop(payloader.caps, None)
        unlink_when_idle(self._raw, payloader.tee_pad, payloader.elements[0].get_static_pad("sink"))
        self._raw.release_request_pad(payloader.tee_pad)
        for element in payloader.elements:
            element.set_state(Gst.State.NULL)
            self.pipeline.remove(element)

    def _on_message(self, _bus: Gst.Bus, message: Gst.Message) -> bool:
        if message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            session_id = self.session_of(message.src)
            logger.warning("%s: webrtc %s: %s (%s)", self.stream,
                           f"session {session_id[:8]}" if session_id else "fan-out",
                           error.message, debug)  # fmt: skip
            self._on_error(session_id, error.message)
        return True


def gst_link(elements: tuple[Gst.Element, ...]) -> None:
    """Link a chain of elements (PyGObject has no link_many); raise if a link fails."""
    for upstream, downstream in itertools.pairwise(elements):
        if not upstream.link(downstream):
            raise RuntimeError(f"cannot link {upstream.get_name()} to {downstream.get_name()}")
