"""The RTSP control connection: one TCP socket, written and read with deadlines, byte-exactly.

The socket stays in blocking mode all its life, because after PLAY it is handed to a GStreamer
``fdsrc`` that expects a blocking descriptor. Every call here therefore waits with poll() and
then reads or writes with MSG_DONTWAIT: a deadline never depends on the descriptor's mode, and
a writer on another thread (keep-alives) cannot hang on a peer that stopped reading.

Responses are read without taking one byte past their end: the head is located with MSG_PEEK
and taken exactly, the body is exactly Content-Length bytes. Whatever the server sends after
the PLAY reply (interleaved ``$`` frames, even in the same TCP segment) stays in the kernel
for the data reader: there is never a leftover buffer to hand over.
"""

from __future__ import annotations

import contextlib
import logging
import math
import select
import socket
import time

from vigil.media.rtsp.message import Response, find_head_end, parse_head

logger = logging.getLogger(__name__)

MAX_HEAD = 64 * 1024  # a reply head longer than this is garbage, not RTSP
MAX_BODY = 1024 * 1024  # SDPs are a few kB
_PEEK = 8192
_SEND_FLAGS = socket.MSG_DONTWAIT | socket.MSG_NOSIGNAL


class ConnectionClosed(ConnectionError):
    """The server closed the connection (end of stream) before the reply was complete."""


class RtspConnection:
    """A connected RTSP control socket. Reads are single-threaded (the handshake); `send` may be
    called from any thread provided the caller serialises whole messages."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(None)
        self.socket = sock
        self.skipped_frames = 0  # interleaved frames that arrived while waiting for a reply

    @classmethod
    def open(cls, host: str, port: int, timeout: float) -> RtspConnection:
        """Connect (IPv4 or IPv6, names resolved). Raises OSError (TimeoutError, refused...)."""
        return cls(socket.create_connection((host, port), timeout=timeout))

    def fileno(self) -> int:
        """The socket's descriptor (-1 once closed)."""
        return self.socket.fileno()

    def send(self, data: bytes, deadline: float) -> None:
        """Write all of `data` before `deadline` (time.monotonic). TimeoutError, OSError."""
        view = memoryview(data)
        while view:
            try:
                sent = self.socket.send(view, _SEND_FLAGS)
            except (BlockingIOError, InterruptedError):
                self._wait(select.POLLOUT, deadline)
                continue
            view = view[sent:]

    def read_response(self, deadline: float) -> Response:
        """The next response, skipping interleaved frames, blank lines and server requests.

        Raises TimeoutError, ConnectionClosed, other OSError, or ValueError for bytes that
        are not RTSP.
        """
        while True:
            first = self._recv(1, deadline, peek=True)
            if first == b"$":
                self._skip_frame(deadline)
                continue
            if first in (b"\r", b"\n"):
                self._recv_exact(1, deadline)
                continue
            if not first.isalpha():
                raise ValueError(f"expected an RTSP message, got byte 0x{first[0]:02x}")
            head = parse_head(self._read_head(deadline))
            length = head.content_length
            if length > MAX_BODY:
                raise ValueError(f"Content-Length {length} is larger than {MAX_BODY}")
            body = self._recv_exact(length, deadline)
            if head.is_response:
                return head.response(body)
            # A request from the server (ANNOUNCE, OPTIONS...): nothing Vigil must answer.
            logger.debug("ignored a request from the server: %s", head.start_line[:80])

    def shutdown_write(self) -> None:
        """Half-close: the server reads end of stream, closes its side, the reader sees EOF.

        Not SHUT_RD: Linux answers data that arrives after it (the TEARDOWN reply, frames in
        flight) with a reset, and the reader would get ECONNRESET instead of end of stream.
        """
        # Already shut down, or reset by the peer: the goal is reached either way.
        with contextlib.suppress(OSError):
            self.socket.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self.socket.close()

    def _read_head(self, deadline: float) -> bytes:
        """Take the head up to and including its blank line, and not one byte more."""
        head = bytearray()
        while True:
            peeked = self._recv(_PEEK, deadline, peek=True)
            # The end mark may straddle what was already taken and what is peeked now.
            tail = bytes(head[-3:])
            end = find_head_end(tail + peeked)
            if end >= 0:
                head += self._recv_exact(end - len(tail), deadline)
                return bytes(head)
            # No end mark in the peeked bytes: all of them belong to this head.
            head += self._recv_exact(len(peeked), deadline)
            if len(head) > MAX_HEAD:
                raise ValueError(f"reply head longer than {MAX_HEAD} bytes")

    def _skip_frame(self, deadline: float) -> None:
        header = self._recv_exact(4, deadline)
        remaining = int.from_bytes(header[2:4], "big")
        while remaining:
            remaining -= len(self._recv_exact(min(remaining, 65536), deadline))
        self.skipped_frames += 1

    def _recv(self, size: int, deadline: float, *, peek: bool = False) -> bytes:
        flags = socket.MSG_DONTWAIT | (socket.MSG_PEEK if peek else 0)
        while True:
            try:
                data = self.socket.recv(size, flags)
            except (BlockingIOError, InterruptedError):
                self._wait(select.POLLIN, deadline)
                continue
            if not data:
                raise ConnectionClosed("the server closed the connection")
            return data

    def _recv_exact(self, size: int, deadline: float) -> bytes:
        buffer = bytearray(size)
        view = memoryview(buffer)
        got = 0
        while got < size:
            try:
                count = self.socket.recv_into(view[got:], size - got, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                self._wait(select.POLLIN, deadline)
                continue
            if count == 0:
                raise ConnectionClosed("the server closed the connection")
            got += count
        return bytes(buffer)

    def _wait(self, events: int, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("timed out")
        poller = select.poll()
        poller.register(self.socket, events)
        if not poller.poll(math.ceil(remaining * 1000)):
            raise TimeoutError("timed out")
