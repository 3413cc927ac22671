"""Test peers for the RTSP client: a real GstRtspServer in this process, a scripted fake for
error paths, and a reader that walks the interleaved byte stream the way the data side will."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")

# The server lives in tests/support (other tests use it too); re-exported for these tests.
from tests.support.rtsp_server import PASSWORD as PASSWORD  # noqa: E402
from tests.support.rtsp_server import ROLE as ROLE  # noqa: E402
from tests.support.rtsp_server import USER as USER  # noqa: E402
from tests.support.rtsp_server import GstServer as GstServer  # noqa: E402
from tests.support.rtsp_server import ServerLog as ServerLog  # noqa: E402
from tests.support.rtsp_server import free_port as free_port  # noqa: E402
from tests.support.rtsp_server import gst_server as gst_server  # noqa: E402

SOURCE = "videotestsrc is-live=true ! video/x-raw,width=320,height=240,framerate=25/1"
H264_LAUNCH = (
    f"( {SOURCE} ! x264enc tune=zerolatency key-int-max=25 "
    "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
)
H265_LAUNCH = (
    f"( {SOURCE} ! x265enc tune=zerolatency key-int-max=25 "
    "! rtph265pay name=pay0 pt=96 config-interval=-1 )"
)


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# --- the interleaved byte stream, as the data side reads it --------------------------------


@dataclass
class StreamCapture:
    """What arrived on the socket: interleaved frames per channel, and any RTSP messages."""

    frames: dict[int, list[bytes]] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    eof: bool = False
    first_byte: bytes = b""


class StreamReader:
    """Reads an interleaved RTSP/TCP byte stream: ``$`` frames and RTSP messages between them."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()
        self.capture = StreamCapture()

    def read_for(
        self, seconds: float, until: Callable[[StreamCapture], bool] | None = None
    ) -> StreamCapture:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.capture.eof:
            if until is not None and until(self.capture):
                break
            self._sock.settimeout(max(0.01, min(0.2, deadline - time.monotonic())))
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                self.capture.eof = True
                break
            if not self.capture.first_byte:
                self.capture.first_byte = chunk[:1]
            self._buffer += chunk
            self._parse()
        return self.capture

    def _parse(self) -> None:
        buffer = self._buffer
        while buffer:
            if buffer[0] == 0x24:  # '$'
                if len(buffer) < 4:
                    return
                length = int.from_bytes(buffer[2:4], "big")
                if len(buffer) < 4 + length:
                    return
                self.capture.frames.setdefault(buffer[1], []).append(bytes(buffer[4 : 4 + length]))
                del buffer[: 4 + length]
                continue
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[: end + 4]).decode("latin-1")
            length = 0
            for line in head.split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if len(buffer) < end + 4 + length:
                return
            self.capture.messages.append(head)
            del buffer[: end + 4 + length]
            assert head.startswith("RTSP/1.0 "), f"not frame-aligned: {head[:40]!r}"


# --- a scripted fake, for error paths only ------------------------------------------------


@dataclass
class Request:
    method: str
    uri: str
    headers: dict[str, str]

    @property
    def cseq(self) -> str:
        return self.headers.get("cseq", "0")


# A handler answers one request: bytes to send, None to stay silent, or CLOSE.
CLOSE = b"<close>"
Handler = Callable[[Request], bytes | None]


def reply(
    request: Request, status: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    lines = [f"RTSP/1.0 {status}", f"CSeq: {request.cseq}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class ScriptedServer:
    """Accepts connections on loopback and answers each request with `handler`."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(8)
        self._listener.settimeout(0.1)
        self.port = int(self._listener.getsockname()[1])
        self.requests: list[Request] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-rtsp", daemon=True)
        self._connections: list[socket.socket] = []

    def url(self, path: str = "/cam", userinfo: str = "") -> str:
        prefix = f"{userinfo}@" if userinfo else ""
        return f"rtsp://{prefix}127.0.0.1:{self.port}{path}"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for connection in self._connections:
            connection.close()
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._connections.append(connection)
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _talk(self, connection: socket.socket) -> None:
        buffer = b""
        connection.settimeout(0.1)
        while not self._stop.is_set():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                try:
                    chunk = connection.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                continue
            head, buffer = buffer[:end].decode(), buffer[end + 4 :]
            start, *lines = head.split("\r\n")
            method, uri, _version = start.split(" ")
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            request = Request(method, uri, headers)
            self.requests.append(request)
            answer = self._handler(request)
            try:
                if answer == CLOSE:
                    connection.shutdown(socket.SHUT_RDWR)
                    return
                if answer is not None:
                    connection.sendall(answer)
            except OSError:  # the client went away first (e.g. closed after TEARDOWN)
                return
