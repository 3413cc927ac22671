"""The RTSP server: every stream at ``rtsp://host:port/<stream>``, and RTSP publishers taken in.

GstRtspServer listens on the GLib main-loop thread (`start` and `stop` must be called there)
and handles each client in a thread of its own (see `start`): the hooks below run on those
threads, so the server's own tables are behind a lock, and kicks go through the GLib thread.
Streams come and go with configuration reloads: each DESCRIBE/SETUP/ANNOUNCE looks its stream
up live (`streams()`), mounts a `StreamFactory` for it on first use and unmounts one whose
stream is gone.

Every request passes one gate before GstRtspServer handles it (GstRTSPAuth's URL check, which
runs first for every request): who may do what is decided by `RtspAuthPolicy`, and a refusal is
answered there with a status whose reason says why (401 with Basic/Digest challenges, 403,
404 no such stream, 503 not streaming now, 405 not a publish stream, 415 codec). The factory
checks that follow are then let through: the gate already decided.

Sessions: a client that plays or records is listed in the `SessionRegistry` until its RTSP
session ends (TEARDOWN, a TCP disconnect, or the session timing out); kicking one removes its
RTSP session and closes its connection.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import gi

from vigil.config.resolve import StreamPlan
from vigil.config.rtsp import RtspServerConfig
from vigil.config.sources import PublishSource
from vigil.media.relay import RelayHub
from vigil.serve.rtsp_auth import RtspAuthPolicy
from vigil.serve.rtsp_media import PendingRecords, PublishHooks, StreamFactory, payloader_for
from vigil.serve.rtsp_requests import PUBLISHABLE, access_of, announced_encoding, stream_of
from vigil.serve.sessions import Session, SessionKind, SessionRegistry

gi.require_version("GstRtspServer", "1.0")
gi.require_version("GstRtsp", "1.0")
from gi.repository import Gio, GLib, GstRtsp, GstRtspServer  # noqa: E402

logger = logging.getLogger(__name__)

Status = GstRtsp.RTSPStatusCode
_FACTORY_CHECK = "auth.check.media.factory."


class RtspBindError(OSError):
    """The server cannot listen where it was told to."""


@dataclass
class _Open:
    """An RTSP session Vigil lists, with what it takes to end it."""

    session: Session
    rtsp_session: GstRtspServer.RTSPSession
    client: GstRtspServer.RTSPClient


class _Gate(GstRtspServer.RTSPAuth):  # type: ignore[misc]
    """GstRTSPAuth whose checks ask the server (see the module docstring)."""

    def __init__(self, check_url: Callable[[GstRtspServer.RTSPContext], bool]) -> None:
        super().__init__()
        self._check_url = check_url

    def do_check(self, ctx: GstRtspServer.RTSPContext, check: str) -> bool:
        if check == GstRtspServer.RTSP_AUTH_CHECK_URL:
            return self._check_url(ctx)
        if check == GstRtspServer.RTSP_AUTH_CHECK_CONNECT:  # TLS set-up, when configured
            return bool(GstRtspServer.RTSPAuth.do_check(self, ctx, check))
        # Factory access/construct: decided by the URL check of this same request. Clients
        # never choose their own transport settings (multicast address, TTL).
        return check.startswith(_FACTORY_CHECK)


class RtspServer:
    """Serves every stream over RTSP (and RTSPS), and takes RTSP publishers."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        policy: RtspAuthPolicy,
        relays: RelayHub,
        sessions: SessionRegistry,
        streams: Callable[[], Iterable[StreamPlan]],
        tls: tuple[Path, Path] | None = None,
        multicast_config: RtspServerConfig | None = None,
        session_timeout_s: int = 60,
    ) -> None:
        self.host = host
        self.port = port
        self.policy = policy
        self._relays = relays
        self._sessions = sessions
        self._streams = streams
        self._tls = tls
        self._multicast = multicast_config  # its multicast_* settings, when multicast is on
        self._timeout = session_timeout_s
        self._server: GstRtspServer.RTSPServer | None = None
        self._source: GLib.Source | None = None
        self._pool_source: GLib.Source | None = None
        self._address_pool: GstRtspServer.RTSPAddressPool | None = None
        self._lock = threading.Lock()
        self._pending = PendingRecords()
        self._factories: dict[str, StreamFactory] = {}
        self._users: dict[GstRtspServer.RTSPClient, str | None] = {}  # who each client is
        self._open: dict[str, _Open] = {}  # by RTSP session id
        self._announcing: dict[str, GstRtspServer.RTSPClient] = {}  # stream → publisher
        self._hooks = PublishHooks(recording=lambda _s, _m: None, ended=self._publisher_ended)

    @property
    def url_pattern(self) -> str:
        """``rtsp://host:port/<stream>`` (rtsps with TLS), for the start-up summary."""
        scheme = "rtsps" if self._tls else "rtsp"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{host}:{self.port}/<stream>"

    # -- life -----------------------------------------------------------------------------

    def start(self) -> int:
        """Listen and serve (GLib thread); returns the bound port. `RtspBindError` naming the
        address if it cannot listen, `GLib.Error` for an unusable TLS certificate."""
        server = GstRtspServer.RTSPServer.new()
        server.set_address(self.host)
        server.set_service(str(self.port))
        # A thread per client (GstRtspServer's default is one for all): a DESCRIBE waits in
        # its thread for the media's first frame, which for a published stream arrives through
        # the publisher's connection; sharing a thread, they would wait on each other forever.
        server.get_thread_pool().set_max_threads(-1)
        gate = _Gate(self._check)
        if self._tls is not None:
            certificate, key = self._tls
            gate.set_tls_certificate(Gio.TlsCertificate.new_from_files(str(certificate), str(key)))
        server.set_auth(gate)
        if self._multicast is not None and self._multicast.multicast:
            m = self._multicast
            self._address_pool = GstRtspServer.RTSPAddressPool.new()
            self._address_pool.add_range(m.multicast_address_min, m.multicast_address_max,
                                         m.multicast_port_min, m.multicast_port_max,
                                         m.multicast_ttl)  # fmt: skip
        server.connect("client-connected", self._on_client)
        pool = server.get_session_pool()
        pool.connect("session-removed", self._on_session_removed)
        try:
            source = server.create_source(None)
        except GLib.Error as exc:
            raise RtspBindError(
                f"cannot listen for RTSP on {self.host}:{self.port}: {exc.message} "
                "(set rtsp.listen to a free HOST:PORT)"
            ) from None
        source.attach(None)
        self._pool_source = pool.create_watch()
        self._pool_source.attach(None)
        self._server, self._source = server, source
        self.port = server.get_bound_port()
        logger.info("RTSP server listening on %s", self.url_pattern)
        return self.port

    def stop(self) -> None:
        """Close every client and stop listening (GLib thread; idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        for source in (self._source, self._pool_source):
            if source is not None:
                source.destroy()
        self._source = self._pool_source = None
        server.client_filter(lambda _server, _client: GstRtspServer.RTSPFilterResult.REMOVE)
        pool = server.get_session_pool()
        pool.filter(lambda _pool, _session: GstRtspServer.RTSPFilterResult.REMOVE)
        mounts = server.get_mount_points()
        for name in list(self._factories):
            mounts.remove_factory(f"/{name}")
        with self._lock:
            self._factories.clear()
            ended = list(self._open.values())
            self._open.clear()
            self._users.clear()
            self._announcing.clear()
        for entry in ended:
            self._sessions.remove(entry.session.id)
        logger.info("RTSP server stopped")

    # -- the gate -------------------------------------------------------------------------

    def _check(self, ctx: GstRtspServer.RTSPContext) -> bool:
        """Decide one request before GstRtspServer handles it; False once refused (answered)."""
        self._pending.expect(None)
        method = GstRtsp.rtsp_method_as_text(ctx.method) or ""
        transport = _header(ctx.request, GstRtsp.RTSPHeaderField.TRANSPORT)
        access = access_of(method, transport)
        if access is None or ctx.uri is None:
            return True
        path = ctx.uri.abspath or "/"
        name = stream_of(path)
        verdict = self.policy.decide(
            _header(ctx.request, GstRtsp.RTSPHeaderField.AUTHORIZATION),
            method=method, uri=_request_uri(ctx), stream=name or path, access=access,
        )  # fmt: skip
        remote = _remote(ctx.client)
        if not verdict.allowed:
            logger.info("RTSP %s %s from %s refused: %s", method, path, remote, verdict.reason)
            if verdict.challenge:
                challenges = self.policy.challenges()
                headers = [(GstRtsp.RTSPHeaderField.WWW_AUTHENTICATE, c) for c in challenges]
                return _refuse(ctx, Status.UNAUTHORIZED, "Unauthorized", headers)
            return _refuse(ctx, Status.FORBIDDEN, f"Forbidden: may not {access.value} {name}")
        plan = self._plan(name)
        if plan is None:
            if name is not None:
                self._unmount(name)
            return _refuse(ctx, Status.NOT_FOUND, "Not Found: no such stream")
        publish_stream = isinstance(plan.source, PublishSource)
        if method == "DESCRIBE" and not self._streaming(plan):
            return _refuse(ctx, Status.SERVICE_UNAVAILABLE,
                           "Service Unavailable: stream not streaming now")  # fmt: skip
        encoding = None
        if method == "ANNOUNCE":
            if not publish_stream:
                return _refuse(ctx, Status.METHOD_NOT_ALLOWED,
                               "Method Not Allowed: not a publish stream")  # fmt: skip
            encoding = self._admit_publisher(ctx, plan)
            if encoding is None:
                return False
        self._mount(plan)
        self._pending.expect(encoding)
        with self._lock:
            if encoding is not None:
                self._announcing[plan.name] = ctx.client
            self._users[ctx.client] = verdict.user
        return True

    def _plan(self, name: str | None) -> StreamPlan | None:
        if name is None:
            return None
        return next((plan for plan in self._streams() if plan.name == name), None)

    def _streaming(self, plan: StreamPlan) -> bool:
        return plan.enabled and payloader_for(self._relays.video(plan.name).caps) is not None

    def _admit_publisher(self, ctx: GstRtspServer.RTSPContext, plan: StreamPlan) -> str | None:
        """Check an ANNOUNCE's codec and the stream's current publisher (taken over when the
        stream allows it): the encoding announced, or None once refused."""
        ok, body = ctx.request.get_body()
        sdp = bytes(body or b"").decode("utf-8", "replace") if ok == GstRtsp.RTSPResult.OK else ""
        encoding = announced_encoding(sdp)
        if encoding is None or encoding not in PUBLISHABLE:
            _refuse(ctx, Status.UNSUPPORTED_MEDIA_TYPE,
                    f"Unsupported Media Type: publish {' or '.join(PUBLISHABLE)} video, "
                    f"not {encoding or 'no video'}")  # fmt: skip
            return None
        current = self._sessions.publisher(plan.name)
        with self._lock:
            announcing = self._announcing.get(plan.name)
        if current is not None or (announcing is not None and announcing is not ctx.client):
            assert isinstance(plan.source, PublishSource)
            if not plan.source.takeover:
                _refuse(ctx, Status.FORBIDDEN, "Forbidden: the stream already has a publisher")
                return None
            logger.info("%s: a new RTSP publisher takes over", plan.name)
            if current is not None:
                self._sessions.kick(current.id)
            if announcing is not None and announcing is not ctx.client:
                GLib.idle_add(_close, announcing)
        return encoding

    # -- mounts ---------------------------------------------------------------------------

    def _mount(self, plan: StreamPlan) -> None:
        """Mount the stream's factory if it is not (or was, for a different kind of source)."""
        publish = isinstance(plan.source, PublishSource)
        server = self._server
        with self._lock:
            factory = self._factories.get(plan.name)
            if server is None or (factory is not None and factory.publish == publish):
                return
            factory = StreamFactory(plan.name, publish=publish, relays=self._relays,
                                    pending=self._pending, hooks=self._hooks)  # fmt: skip
            protocols = GstRtsp.RTSPLowerTrans.TCP | GstRtsp.RTSPLowerTrans.UDP
            if self._address_pool is not None:
                factory.set_address_pool(self._address_pool)
                protocols |= GstRtsp.RTSPLowerTrans.UDP_MCAST
            factory.set_protocols(protocols)
            server.get_mount_points().add_factory(f"/{plan.name}", factory)
            self._factories[plan.name] = factory

    def _unmount(self, name: str) -> None:
        server = self._server
        with self._lock:
            if self._factories.pop(name, None) is not None and server is not None:
                server.get_mount_points().remove_factory(f"/{name}")

    # -- clients and sessions -------------------------------------------------------------

    def _on_client(
        self, _server: GstRtspServer.RTSPServer, client: GstRtspServer.RTSPClient
    ) -> None:
        client.connect("new-session", self._on_new_session)
        client.connect("play-request", self._on_started, SessionKind.RTSP_PLAY)
        client.connect("record-request", self._on_started, SessionKind.RTSP_PUBLISH)
        client.connect("closed", self._on_closed)

    def _on_new_session(
        self, _client: GstRtspServer.RTSPClient, session: GstRtspServer.RTSPSession
    ) -> None:
        session.set_timeout(self._timeout)

    def _on_started(
        self, client: GstRtspServer.RTSPClient, ctx: GstRtspServer.RTSPContext, kind: SessionKind
    ) -> None:
        rtsp_session = ctx.session
        if rtsp_session is None or ctx.uri is None:
            return
        session_id = rtsp_session.get_sessionid()
        stream = stream_of(ctx.uri.abspath or "/") or "?"
        with self._lock:
            if session_id in self._open:  # PLAY again after a PAUSE
                return
            session = Session(kind=kind, stream=stream, remote=_remote(client),
                              transport=_transport(ctx), user=self._users.get(client))  # fmt: skip
            session.close = lambda: GLib.idle_add(self._end, session_id)
            self._open[session_id] = _Open(session, rtsp_session, client)
            if kind is SessionKind.RTSP_PUBLISH and self._announcing.get(stream) is client:
                del self._announcing[stream]
        self._sessions.add(session)

    def _end(self, session_id: str) -> bool:
        """Kick: end the RTSP session and drop its connection (GLib thread)."""
        with self._lock:
            entry = self._open.pop(session_id, None)
        server = self._server
        if entry is not None and server is not None:
            server.get_session_pool().remove(entry.rtsp_session)
            entry.client.close()
        return False  # GLib.SOURCE_REMOVE

    def _on_session_removed(
        self, _pool: GstRtspServer.RTSPSessionPool, rtsp_session: GstRtspServer.RTSPSession
    ) -> None:
        with self._lock:
            entry = self._open.pop(rtsp_session.get_sessionid(), None)
        if entry is not None:
            self._sessions.remove(entry.session.id)

    def _on_closed(self, client: GstRtspServer.RTSPClient) -> None:
        with self._lock:
            self._users.pop(client, None)
            for stream, announcing in list(self._announcing.items()):
                if announcing is client:
                    del self._announcing[stream]

    def _publisher_ended(self, stream: str, _media: GstRtspServer.RTSPMedia) -> None:
        logger.info("%s: RTSP publisher gone", stream)


def _close(client: GstRtspServer.RTSPClient) -> bool:
    client.close()
    return False  # GLib.SOURCE_REMOVE


def _header(message: GstRtsp.RTSPMessage, field: GstRtsp.RTSPHeaderField) -> str | None:
    result, value = message.get_header(field, 0)
    return value if result == GstRtsp.RTSPResult.OK else None


def _request_uri(ctx: GstRtspServer.RTSPContext) -> str:
    return str(ctx.uri.get_request_uri()) if ctx.uri is not None else ""


def _refuse(
    ctx: GstRtspServer.RTSPContext,
    code: GstRtsp.RTSPStatusCode,
    reason: str,
    headers: Iterable[tuple[GstRtsp.RTSPHeaderField, str]] = (),
) -> bool:
    """Answer the request with `code` and a reason phrase that says why; always False."""
    _result, response = GstRtsp.rtsp_message_new_response(code, reason, ctx.request)
    for field, value in headers:
        response.add_header(field, value)
    ctx.client.send_message(ctx.session, response)
    return False


def _remote(client: GstRtspServer.RTSPClient) -> str:
    """``address:port`` of the client (IPv6 in brackets)."""
    connection = client.get_connection()
    if connection is None:
        return "?"
    address = connection.get_ip() or "?"
    port = "?"
    socket = connection.get_read_socket()
    if socket is not None:
        with contextlib.suppress(GLib.Error):
            port = str(socket.get_remote_address().get_port())
    try:
        if ipaddress.ip_address(address).version == 6:
            address = f"[{address}]"
    except ValueError:
        pass
    return f"{address}:{port}"


def _transport(ctx: GstRtspServer.RTSPContext) -> str:
    sessmedia = ctx.sessmedia
    stream_transport = sessmedia.get_transport(0) if sessmedia is not None else None
    if stream_transport is None:
        return "tcp"
    lower = stream_transport.get_transport().lower_transport
    if lower & GstRtsp.RTSPLowerTrans.UDP_MCAST:
        return "udp-multicast"
    if lower & GstRtsp.RTSPLowerTrans.UDP:
        return "udp"
    return "tcp"
