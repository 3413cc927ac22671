"""One webrtcbin: its ICE agent configured, an offer answered once gathering completes, trickled
candidates added, and its connection state reported on the GLib thread.

webrtcbin calls back on its own threads (promises, property notifications): every callback here
only hands over to the GLib main thread (`GLib.idle_add`), where the gateway owns all state.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Callable

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402

from vigil.media import gst  # noqa: E402
from vigil.serve.webrtc.ice import IceSettings  # noqa: E402
from vigil.serve.webrtc.liveness import PeerState  # noqa: E402
from vigil.serve.webrtc.signalling import SignallingError  # noqa: E402

logger = logging.getLogger(__name__)

_STATES = {
    GstWebRTC.WebRTCPeerConnectionState.NEW: PeerState.NEW,
    GstWebRTC.WebRTCPeerConnectionState.CONNECTING: PeerState.CONNECTING,
    GstWebRTC.WebRTCPeerConnectionState.CONNECTED: PeerState.CONNECTED,
    GstWebRTC.WebRTCPeerConnectionState.DISCONNECTED: PeerState.DISCONNECTED,
    GstWebRTC.WebRTCPeerConnectionState.FAILED: PeerState.FAILED,
    GstWebRTC.WebRTCPeerConnectionState.CLOSED: PeerState.CLOSED,
}


class Peer:
    """A webrtcbin for one session. Create, add to a pipeline, then `answer` the offer."""

    def __init__(
        self, name: str, ice: IceSettings, on_state: Callable[[PeerState], None],
        *, latency_ms: int = 0,
    ) -> None:  # fmt: skip
        self.name = name
        self._on_state = on_state
        self.element = gst.make("webrtcbin", name, latency=latency_ms)
        # One transport for everything: browsers bundle, and each session then needs one port.
        self.element.set_property("bundle-policy", GstWebRTC.WebRTCBundlePolicy.MAX_BUNDLE)
        _configure_ice(self.element, ice)
        self._answer: concurrent.futures.Future[str] = concurrent.futures.Future()
        self._handlers = [
            self.element.connect("notify::ice-gathering-state", self._on_gathering),
            self.element.connect("notify::connection-state", self._on_connection),
        ]

    def add_sending(self, caps: str) -> Gst.Pad:
        """A send-only video transceiver that prefers `caps` (the offer's format); returns the
        sink pad to feed RTP in those caps into."""
        pad = self.element.request_pad_simple("sink_%u")
        if pad is None:
            raise RuntimeError("webrtcbin gave no sink pad")
        transceiver = pad.get_property("transceiver")
        transceiver.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        transceiver.set_property("codec-preferences", Gst.Caps.from_string(caps))
        return pad

    def add_receiving(self, caps: str) -> None:
        """A receive-only video transceiver for the offer's format; media arrives on a src pad
        (``pad-added``)."""
        self.element.emit(
            "add-transceiver", GstWebRTC.WebRTCRTPTransceiverDirection.RECVONLY,
            Gst.Caps.from_string(caps),
        )  # fmt: skip

    def answer(self, offer: str, timeout_s: float) -> concurrent.futures.Future[str]:
        """Apply `offer` and answer it. The future holds the answer's SDP once ICE gathering
        has completed (clients that do not trickle need every candidate in it), or after
        `timeout_s` with the candidates found so far. Call on the GLib thread, the element
        being in its pipeline and PLAYING."""
        result, message = GstSdp.SDPMessage.new_from_text(offer)
        if result != GstSdp.SDPResult.OK:
            raise SignallingError(400, "the SDP offer cannot be parsed")
        description = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.OFFER, message)
        self.element.emit(
            "set-remote-description", description,
            Gst.Promise.new_with_change_func(self._on_remote_set),
        )  # fmt: skip
        GLib.timeout_add(int(timeout_s * 1000), self._answer_now)
        return self._answer

    def add_candidate(self, mline: int, candidate: str) -> None:
        """A remote candidate trickled by the client (``candidate:...``)."""
        self.element.emit("add-ice-candidate", mline, candidate)

    def close(self) -> None:
        """Stop reporting (the owner takes the element out of its pipeline)."""
        for handler in self._handlers:
            self.element.disconnect(handler)
        self._handlers = []
        if not self._answer.done():
            self._answer.set_exception(SignallingError(503, "the session ended before answering"))

    # webrtcbin's threads from here on: hand over, never block.

    def _on_remote_set(self, promise: Gst.Promise) -> None:
        error = _promise_error(promise)
        if error:
            self._fail(SignallingError(400, f"the offer was not accepted: {error}"))
            return
        self.element.emit(
            "create-answer", None, Gst.Promise.new_with_change_func(self._on_answer_created)
        )

    def _on_answer_created(self, promise: Gst.Promise) -> None:
        reply = promise.get_reply() if promise.wait() == Gst.PromiseResult.REPLIED else None
        answer = reply.get_value("answer") if reply is not None else None
        if answer is None:
            error = _promise_error(promise) or "no compatible format"
            self._fail(SignallingError(406, f"no answer could be made to this offer: {error}"))
            return
        self.element.emit("set-local-description", answer, None)

    def _on_gathering(self, _element: Gst.Element, _pspec: object) -> None:
        state = self.element.get_property("ice-gathering-state")
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self._answer_now)

    def _on_connection(self, _element: Gst.Element, _pspec: object) -> None:
        state = _STATES.get(self.element.get_property("connection-state"), PeerState.NEW)
        GLib.idle_add(self._report, state)

    # GLib main thread.

    def _report(self, state: PeerState) -> bool:
        if self._handlers:
            self._on_state(state)
        return False

    def _answer_now(self) -> bool:
        if self._answer.done():
            return False
        description = self.element.get_property("local-description")
        if description is None:
            if self.element.get_property("ice-gathering-state") == (
                GstWebRTC.WebRTCICEGatheringState.COMPLETE
            ):
                return False  # the local description is being set: completion comes again
            self._fail(SignallingError(503, "no answer was made in time"))
            return False
        self._answer.set_result(description.sdp.as_text())
        return False

    def _fail(self, error: SignallingError) -> None:
        def fail() -> bool:
            if not self._answer.done():
                self._answer.set_exception(error)
            return False

        GLib.idle_add(fail)


def _promise_error(promise: Gst.Promise) -> str | None:
    if promise.wait() != Gst.PromiseResult.REPLIED:
        return "interrupted"
    reply = promise.get_reply()
    if reply is None or not reply.has_field("error"):
        return None
    error = reply.get_value("error")
    return str(getattr(error, "message", error))


def _configure_ice(element: Gst.Element, ice: IceSettings) -> None:
    agent = element.get_property("ice-agent")
    # webrtcbin 1.22 never sinks its agent's floating reference; PyGObject sinks it when
    # wrapping, so the wrapper would own webrtcbin's only reference and free the agent under it
    # (seen here: "gst_webrtc_ice_add_stream: assertion 'GST_IS_WEBRTC_ICE (ice)' failed", then
    # a crash). Give webrtcbin its reference back; a GStreamer that sinks it leaves two.
    if agent.__grefcount__ == 1:
        agent._ref()
    if ice.port_max:
        agent.set_property("max-rtp-port", ice.port_max)
        agent.set_property("min-rtp-port", ice.port_min)
    agent.set_property("ice-tcp", ice.ice_tcp)
    for address in ice.local_addresses:
        agent.emit("add-local-ip-address", address)
    if ice.stun_url:
        element.set_property("stun-server", ice.stun_url)
    for url in ice.turn_urls:
        element.emit("add-turn-server", url)
