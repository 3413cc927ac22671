"""RTSP clients for the RTSP server tests: one raw request over a socket (to see the status,
reason and challenges a server answers), and GStreamer rtspsrc readers counting frames."""

from __future__ import annotations

import base64
import socket
import threading
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402


@dataclass(frozen=True)
class Reply:
    """An RTSP response's status line and headers (names lower-cased, repeats kept)."""

    status: int
    reason: str
    headers: list[tuple[str, str]]

    def all(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name.lower()]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def request(url: str, method: str = "DESCRIBE", *, authorization: str | None = None,
            body: str = "", headers: dict[str, str] | None = None) -> Reply:  # fmt: skip
    """Send one RTSP request on a fresh connection and read the response's head."""
    parts = urlsplit(url)
    lines = [f"{method} {url} RTSP/1.0", "CSeq: 1", "User-Agent: vigil-tests"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body:
        lines += ["Content-Type: application/sdp", f"Content-Length: {len(body.encode())}"]
    data = ("\r\n".join(lines) + "\r\n\r\n" + body).encode()
    with socket.create_connection((parts.hostname or "", parts.port or 554), timeout=10) as sock:
        sock.sendall(data)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    head = received.split(b"\r\n\r\n", 1)[0].decode()
    status_line, *header_lines = head.split("\r\n")
    _version, status, reason = status_line.split(" ", 2)
    pairs = [tuple(part.strip() for part in line.split(":", 1)) for line in header_lines]
    return Reply(int(status), reason, [(k.lower(), v) for k, v in pairs])  # type: ignore[misc]


SDP_H264 = (
    "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=test\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:streamid=0\r\n"
)


@dataclass(eq=False)
class Reader:
    """An rtspsrc pipeline that counts the frames it receives (depayloaded, in C but for the
    count), and remembers errors and EOS (a reader that was disconnected)."""

    url: str
    protocols: str = "tcp"
    frames: int = 0
    ended: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        Gst.init(None)
        self.pipeline = Gst.parse_launch(
            f'rtspsrc location="{self.url}" protocols={self.protocols} latency=0 '
            "! rtph264depay ! fakesink name=sink sync=false"
        )
        sink = self.pipeline.get_by_name("sink")
        sink.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self._count)

    def _count(self, _pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        with self._lock:
            self.frames += 1
        return Gst.PadProbeReturn.OK

    def start(self) -> None:
        self.pipeline.set_state(Gst.State.PLAYING)

    def poll(self) -> None:
        """Note an error or EOS the pipeline posted (read without a main loop)."""
        bus = self.pipeline.get_bus()
        while message := bus.pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.EOS):
            if message.type == Gst.MessageType.ERROR:
                self.ended = f"error: {message.parse_error()[0].message}"
            else:
                self.ended = "eos"

    def stop(self) -> None:
        self.pipeline.set_state(Gst.State.NULL)
