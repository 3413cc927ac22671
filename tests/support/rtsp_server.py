"""A real GstRtspServer on loopback for tests: own GLib context and loop thread, optional
Basic/Digest auth, and a log of what it saw (requests, teardowns, medias unprepared)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

USER = "operator"
PASSWORD = "Pa55:w@rd/é"  # needs percent-encoding in a URL: the decoding is tested too
ROLE = "viewer"


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerLog:
    """What the server saw, recorded from its own signals (GLib thread)."""

    teardowns: list[str] = field(default_factory=list)
    unprepared: int = 0
    requests: list[str] = field(default_factory=list)


class GstServer:
    """GstRtspServer on loopback with its own GLib main context and loop thread."""

    def __init__(self, *, address: str = "127.0.0.1", auth: str | None = None) -> None:
        Gst.init(None)
        self.address = address
        self.port = free_port(address)
        self.log = ServerLog()
        self._context = GLib.MainContext.new()
        self._loop = GLib.MainLoop.new(self._context, False)
        self._server = GstRtspServer.RTSPServer.new()
        self._server.set_address(address)
        self._server.set_service(str(self.port))
        self._server.connect("client-connected", self._on_client)
        self._auth = auth
        if auth is not None:
            self._server.set_auth(_make_auth(auth))
        self._thread = threading.Thread(target=self._loop.run, name="rtsp-server", daemon=True)
        self._source_id = 0

    def mount(self, path: str, launch: str, *, shared: bool = True) -> None:
        factory = GstRtspServer.RTSPMediaFactory.new()
        factory.set_launch(launch)
        factory.set_shared(shared)
        factory.connect("media-configure", self._on_media)
        if self._auth is not None:
            permissions = GstRtspServer.RTSPPermissions.new()
            permissions.add_permission_for_role(ROLE, "media.factory.access", True)
            permissions.add_permission_for_role(ROLE, "media.factory.construct", True)
            factory.set_permissions(permissions)
        self._server.get_mount_points().add_factory(path, factory)

    def url(self, path: str, userinfo: str = "") -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        prefix = f"{userinfo}@" if userinfo else ""
        return f"rtsp://{prefix}{host}:{self.port}{path}"

    def start(self) -> None:
        self._source_id = self._server.attach(self._context)
        self._thread.start()

    def stop(self) -> None:
        self._loop.quit()
        self._thread.join(timeout=5)
        source = self._context.find_source_by_id(self._source_id)
        if source is not None:
            source.destroy()

    def _on_client(
        self, _server: GstRtspServer.RTSPServer, client: GstRtspServer.RTSPClient
    ) -> None:
        client.connect("teardown-request", self._on_teardown)
        for signal in ("options-request", "describe-request", "setup-request", "play-request"):
            client.connect(signal, self._on_request, signal.split("-")[0].upper())
        client.connect("get-parameter-request", self._on_request, "GET_PARAMETER")

    def _on_request(self, _client: object, context: GstRtspServer.RTSPContext, name: str) -> None:
        self.log.requests.append(name)

    def _on_teardown(self, _client: object, context: GstRtspServer.RTSPContext) -> None:
        self.log.teardowns.append(context.uri.abspath if context.uri else "")

    def _on_media(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        media.connect("unprepared", self._on_unprepared)

    def _on_unprepared(self, _media: object) -> None:
        self.log.unprepared += 1


def _make_auth(method: str) -> GstRtspServer.RTSPAuth:
    auth = GstRtspServer.RTSPAuth.new()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", ROLE)
    if method == "basic":
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(USER, PASSWORD), token)
    else:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(USER, PASSWORD, token)
    return auth


@contextmanager
def gst_server(
    mounts: dict[str, str], *, address: str = "127.0.0.1", auth: str | None = None
) -> Iterator[GstServer]:
    server = GstServer(address=address, auth=auth)
    for path, launch in mounts.items():
        server.mount(path, launch)
    server.start()
    try:
        yield server
    finally:
        server.stop()
