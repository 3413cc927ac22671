"""WHEP and WHIP sessions: the policy (which stream, which codec, who may publish), the
session registry, and the hand-over between the API's asyncio loop and the GLib thread.

Every GStreamer object here (peers, fan-outs, publishers) is created, changed and destroyed on
the GLib thread; the asyncio side only checks the request, then waits for the GLib side's
answer. Sessions end on DELETE, on a kick from the sessions API, on an error of their elements,
or when their peer fails or vanishes (`liveness`), checked every second.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeVar

from gi.repository import GLib

from vigil.config.resolve import StreamPlan
from vigil.config.sources import PublishSource
from vigil.config.webrtc import WebRtcConfig
from vigil.media.relay import RelayHub
from vigil.serve.sessions import Session, SessionKind, SessionRegistry
from vigil.serve.webrtc import sdp
from vigil.serve.webrtc.fanout import StreamFanout
from vigil.serve.webrtc.ice import IceSettings, ice_settings, link_headers
from vigil.serve.webrtc.liveness import PeerState, verdict
from vigil.serve.webrtc.peer import Peer
from vigil.serve.webrtc.signalling import Answer, SignallingError
from vigil.serve.webrtc.whip import JITTER_MS, Publisher

logger = logging.getLogger(__name__)

T = TypeVar("T")
GLibCall = Callable[[Callable[[], T]], "concurrent.futures.Future[T]"]

# Retry-After (s) for a stream that is not streaming yet: cameras reconnect within seconds.
RETRY_NOT_STREAMING_S = 3


@dataclass(eq=False)
class _Entry:
    """One session as the gateway knows it (the registry's `Session` is what the API lists)."""

    session: Session
    offer: sdp.Offer
    etag: str
    peer: Peer | None = None
    publisher: Publisher | None = None
    state: PeerState = PeerState.NEW
    since: float = field(default_factory=time.monotonic)


class WebRtcGateway:
    """WHEP playback and WHIP ingest for every stream (the API's `WebRtcGateway`)."""

    def __init__(
        self, config: WebRtcConfig, *, relays: RelayHub, sessions: SessionRegistry,
        plans: Callable[[], Iterable[StreamPlan]], glib: GLibCall[object],
    ) -> None:  # fmt: skip
        self._config = config
        self._ice: IceSettings = ice_settings(config)
        self._links = link_headers(config)
        self._relays = relays
        self._registry = sessions
        self._plans = plans
        self._glib_call = glib
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}  # by session id; mutated under _lock
        self._fanouts: dict[str, StreamFanout] = {}  # GLib thread only
        self._publish_lock = asyncio.Lock()
        self._reaper: int | None = None

    def ice_links(self) -> list[str]:
        """Link header values for the configured STUN/TURN servers (credentials included)."""
        return list(self._links)

    async def start(self) -> None:
        """Start reaping dead sessions (idempotent)."""
        await self._on_glib(self._start_reaper)

    async def stop(self) -> None:
        """End every session and tear every pipeline down."""
        await self._on_glib(self._stop_all)

    # The API's side (asyncio).

    async def play(self, stream: str, offer_text: str, *, remote: str, user: str | None) -> Answer:
        """Answer a WHEP offer for `stream`'s video."""
        offer = sdp.parse_offer(offer_text)
        section = offer.video()
        plan = self._plan(stream)
        relay = self._relays.video(plan.name)
        if not relay.live:
            raise SignallingError(
                503, f"stream '{plan.name}' is not streaming now", retry_after=RETRY_NOT_STREAMING_S
            )
        caps = relay.caps
        structure = caps.get_structure(0) if caps is not None and caps.get_size() else None
        if structure is None:
            raise SignallingError(503, f"stream '{plan.name}' has no video yet", retry_after=1)
        media_type = structure.get_name()
        if media_type != "video/x-h264":
            codec = {"video/x-h265": "H.265"}.get(media_type, media_type)
            raise SignallingError(
                406, f"stream '{plan.name}' is {codec}: WebRTC playback sends the camera's video "
                "as is and supports H.264 only; transcoding is not implemented "
                "(play it over RTSP instead)", code="codec_not_supported",
            )  # fmt: skip
        fmt = sdp.choose_playback_format(section, structure.get_string("profile"))
        limit = self._config.max_viewers
        if limit and len(self._registry.list(stream=plan.name, kind=SessionKind.WHEP)) >= limit:
            raise SignallingError(
                503, f"stream '{plan.name}' already has its {limit} WebRTC viewers "
                "(webrtc.max_viewers)", retry_after=10,
            )  # fmt: skip
        entry = self._entry(SessionKind.WHEP, plan.name, offer, remote, user)
        return await self._answer(entry, offer_text, lambda: self._start_play(entry, fmt))

    async def publish(
        self, stream: str, offer_text: str, *, remote: str, user: str | None
    ) -> Answer:
        """Answer a WHIP offer publishing into `stream` (whose source must be ``publish``)."""
        offer = sdp.parse_offer(offer_text)
        section = offer.video()
        plan = self._plan(stream)
        if not isinstance(plan.source, PublishSource):
            raise SignallingError(
                409, f"stream '{plan.name}' reads its video from {plan.redacted_source}; only "
                "a stream whose source is 'publish' takes publishers", code="not_publishable",
            )  # fmt: skip
        if not plan.enabled:
            raise SignallingError(409, f"stream '{plan.name}' is disabled", code="disabled")
        fmt = sdp.choose_ingest_format(section)
        async with self._publish_lock:  # two publishers racing: one wins, the other gets 409
            current = self._registry.publisher(plan.name)
            if current is not None:
                if not plan.source.takeover:
                    raise SignallingError(
                        409, f"stream '{plan.name}' already has a publisher ({current.kind.value} "
                        f"from {current.remote}); set its source to publish:?takeover=true to "
                        "let a new one replace it", code="publisher_exists",
                    )  # fmt: skip
                logger.info("%s: a new publisher takes over from %s session %s", plan.name,
                            current.kind.value, current.id[:8])  # fmt: skip
                await asyncio.to_thread(self._kick, current.id)
            entry = self._entry(SessionKind.WHIP, plan.name, offer, remote, user)
            self._registry.add(entry.session)
        return await self._answer(entry, offer_text, lambda: self._start_publish(entry, fmt))

    async def trickle(
        self, kind: SessionKind, stream: str, session_id: str, fragment_text: str,
        if_match: str | None,
    ) -> None:  # fmt: skip
        """Add candidates a client trickles (PATCH); ICE restarts are refused (422)."""
        entry = self._find(kind, stream, session_id)
        if if_match is not None and if_match.strip() not in (entry.etag, "*"):
            raise SignallingError(412, "If-Match does not match this session's ETag")
        fragment = sdp.parse_fragment(fragment_text)
        if sdp.is_ice_restart(entry.offer, fragment):
            raise SignallingError(
                422, "ICE restarts are not supported: end this session (DELETE) and start a new "
                "one (POST)", code="ice_restart_not_supported",
            )  # fmt: skip

        def add() -> None:
            if entry.peer is None:
                return
            for mid, candidate in fragment.candidates:
                entry.peer.add_candidate(sdp.mid_index(entry.offer, mid), candidate)

        await self._on_glib(add)

    async def end(self, kind: SessionKind, stream: str, session_id: str) -> None:
        """End a session at its client's request (DELETE)."""
        self._find(kind, stream, session_id)
        await self._on_glib(lambda: self._end(session_id, "ended by the client"))

    # Helpers for both sides.

    def _plan(self, stream: str) -> StreamPlan:
        plans = list(self._plans())
        plan = next((p for p in plans if p.name == stream), None) or next(
            (p for p in plans if p.name.casefold() == stream.casefold()), None
        )
        if plan is None:
            raise SignallingError(404, f"no stream named '{stream}'")
        return plan

    def _entry(
        self, kind: SessionKind, stream: str, offer: sdp.Offer, remote: str, user: str | None
    ) -> _Entry:
        session = Session(kind=kind, stream=stream, remote=remote, transport="webrtc", user=user)
        session.close = lambda: self._kick_soon(session.id)
        entry = _Entry(session=session, offer=offer, etag=f'"{secrets.token_hex(8)}"')
        with self._lock:
            self._entries[session.id] = entry
        return entry

    def _find(self, kind: SessionKind, stream: str, session_id: str) -> _Entry:
        with self._lock:
            entry = self._entries.get(session_id)
        if (
            entry is None
            or entry.session.kind is not kind
            or (entry.session.stream.casefold() != stream.casefold())
        ):
            raise SignallingError(404, f"no {kind.value.upper()} session {session_id} on {stream}")
        return entry

    async def _answer(self, entry: _Entry, offer_text: str, start: Callable[[], Peer]) -> Answer:
        session = entry.session
        timeout = self._config.answer_timeout_s + 5

        def begin() -> concurrent.futures.Future[str]:
            peer = start()
            return peer.answer(offer_text, self._config.answer_timeout_s)

        try:
            answered = await self._on_glib(begin)
            answer = await asyncio.wait_for(asyncio.wrap_future(answered), timeout)
        except BaseException as error:
            await asyncio.shield(self._on_glib(lambda: self._end(session.id, "not answered")))
            if isinstance(error, SignallingError):
                raise
            if isinstance(error, TimeoutError):
                raise SignallingError(503, "no answer was made in time", retry_after=1) from None
            if isinstance(error, Exception):
                logger.exception("%s: webrtc session could not start", session.stream)
                raise SignallingError(500, f"the session could not start: {error}") from None
            raise
        if session.kind is SessionKind.WHEP:
            self._registry.add(session)
        logger.debug(
            "%s: %s answer for %s uses payload types %s", session.stream, session.kind.value,
            session.id[:8], sdp.answer_payload_types(answer),
        )  # fmt: skip
        return Answer(session_id=session.id, sdp=answer, etag=entry.etag)

    async def _on_glib(self, fn: Callable[[], T]) -> T:
        future: concurrent.futures.Future[T] = self._glib_call(fn)  # type: ignore[assignment]
        return await asyncio.wrap_future(future)

    def _kick(self, session_id: str) -> None:
        """End a session and wait for it (from a worker thread, never the GLib thread)."""
        try:
            self._registry.kick(session_id)
        except KeyError:
            return

    def _kick_soon(self, session_id: str) -> None:
        """The registry's `close`: end the session on the GLib thread."""
        self._glib_call(lambda: self._end(session_id, "ended from the API"))

    # The GLib thread.

    def _start_play(self, entry: _Entry, fmt: sdp.RtpFormat) -> Peer:
        session = entry.session
        peer = Peer(f"whep-{session.id[:8]}", self._ice, lambda s: self._on_state(session.id, s))
        entry.peer = peer
        caps = sdp.rtp_caps(fmt)
        pad = peer.add_sending(caps)
        fanout = self._fanouts.get(session.stream)
        if fanout is None:
            fanout = StreamFanout(
                session.stream, self._relays.video(session.stream),
                lambda sid, message: self._on_fanout_error(session.stream, sid, message),
            )  # fmt: skip
            self._fanouts[session.stream] = fanout
        fanout.attach(session.id, caps, peer.element, pad)
        return peer

    def _start_publish(self, entry: _Entry, fmt: sdp.RtpFormat) -> Peer:
        session = entry.session
        peer = Peer(f"whip-{session.id[:8]}", self._ice, lambda s: self._on_state(session.id, s),
                    latency_ms=JITTER_MS)  # fmt: skip
        entry.peer = peer
        peer.add_receiving(sdp.rtp_caps(fmt))
        entry.publisher = Publisher(
            session.stream, peer, self._relays.publish(session.stream),
            lambda message: self._end(session.id, f"error: {message}"),
        )  # fmt: skip
        return peer

    def _on_state(self, session_id: str, state: PeerState) -> None:
        with self._lock:
            entry = self._entries.get(session_id)
        if entry is None or entry.state is state:
            return
        logger.info(
            "%s: %s session %s: %s -> %s", entry.session.stream, entry.session.kind.value,
            session_id[:8], entry.state.value, state.value,
        )  # fmt: skip
        entry.state, entry.since = state, time.monotonic()
        if state in (PeerState.FAILED, PeerState.CLOSED):
            self._end(session_id, f"connection {state.value}")

    def _on_fanout_error(self, stream: str, session_id: str | None, message: str) -> None:
        if session_id is not None:
            self._end(session_id, f"error: {message}")
            return
        with self._lock:
            doomed = [
                sid for sid, e in self._entries.items()
                if e.session.stream == stream and e.session.kind is SessionKind.WHEP
            ]  # fmt: skip
        for sid in doomed:
            self._end(sid, f"stream error: {message}")

    def _end(self, session_id: str, reason: str) -> None:
        with self._lock:
            entry = self._entries.pop(session_id, None)
        if entry is None:
            return
        session = entry.session
        if entry.peer is not None:
            entry.peer.close()
        if entry.publisher is not None:
            entry.publisher.stop()
        fanout = self._fanouts.get(session.stream)
        if session.kind is SessionKind.WHEP and fanout is not None:
            fanout.detach(session_id)
            if fanout.sessions == 0:
                fanout.stop()
                del self._fanouts[session.stream]
        self._registry.remove(session_id)
        logger.info("%s: %s session %s ended: %s", session.stream, session.kind.value,
                    session_id[:8], reason)  # fmt: skip

    def _start_reaper(self) -> None:
        if self._reaper is None:
            self._reaper = GLib.timeout_add_seconds(1, self._reap)

    def _reap(self) -> bool:
        now = time.monotonic()
        with self._lock:
            entries = list(self._entries.values())
        for entry in entries:
            reason = verdict(
                entry.state, entry.since, now, connect_timeout_s=self._config.connect_timeout_s,
                disconnect_timeout_s=self._config.disconnect_timeout_s,
            )  # fmt: skip
            if reason is not None:
                self._end(entry.session.id, reason)
        return True

    def _stop_all(self) -> None:
        if self._reaper is not None:
            GLib.source_remove(self._reaper)
            self._reaper = None
        with self._lock:
            ids = list(self._entries)
        for session_id in ids:
            self._end(session_id, "Vigil stops")
        for fanout in self._fanouts.values():
            fanout.stop()
        self._fanouts.clear()
