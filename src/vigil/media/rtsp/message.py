"""RTSP 1.0 messages on the wire (RFC 2326): requests out, responses in, and the headers read.

Pure functions over bytes and strings; the socket side lives in `connection`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_SESSION_TIMEOUT = 60.0
VERSION = "RTSP/1.0"


@dataclass(frozen=True)
class Headers:
    """Header fields in the order received; names compare case-insensitively."""

    fields: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str | None:
        """The first value of `name`, or None."""
        lowered = name.lower()
        return next((value for key, value in self.fields if key.lower() == lowered), None)

    def get_all(self, name: str) -> list[str]:
        """Every value of `name` (WWW-Authenticate may come several times)."""
        lowered = name.lower()
        return [value for key, value in self.fields if key.lower() == lowered]


@dataclass(frozen=True)
class Response:
    """An RTSP response: status line, headers and the body (exactly Content-Length bytes)."""

    status: int
    reason: str
    headers: Headers
    body: bytes = b""

    @property
    def ok(self) -> bool:
        """True for 2xx."""
        return 200 <= self.status < 300

    @property
    def cseq(self) -> int | None:
        """The CSeq the server echoed, None when absent or not a number."""
        value = self.headers.get("CSeq")
        return int(value) if value is not None and value.strip().isdigit() else None


@dataclass(frozen=True)
class Head:
    """A message's start line and headers, before the body is read."""

    start_line: str
    headers: Headers

    @property
    def is_response(self) -> bool:
        """True for a response (``RTSP/1.0 200 OK``), False for a request from the server."""
        return self.start_line.startswith("RTSP/")

    @property
    def content_length(self) -> int:
        """Content-Length, 0 when absent. ValueError when it is not a number."""
        value = self.headers.get("Content-Length")
        if value is None or not value.strip():
            return 0
        length = int(value.strip())
        if length < 0:
            raise ValueError(f"negative Content-Length {length}")
        return length

    def response(self, body: bytes) -> Response:
        """This head as a Response; ValueError when the status line is malformed."""
        parts = self.start_line.split(None, 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"malformed status line {self.start_line[:80]!r}")
        reason = parts[2].strip() if len(parts) > 2 else ""
        return Response(int(parts[1]), reason, self.headers, body)


@dataclass(frozen=True)
class Interleave:
    """The interleaved channels the server chose in its SETUP reply (RFC 2326 §10.12)."""

    rtp_channel: int
    rtcp_channel: int


def build_request(method: str, uri: str, headers: Iterable[tuple[str, str]]) -> bytes:
    """The request bytes. ValueError if any part holds CR or LF (header injection)."""
    lines = [f"{method} {uri} {VERSION}"]
    lines += [f"{name}: {value}" for name, value in headers]
    for line in lines:
        if "\r" in line or "\n" in line:
            raise ValueError("CR or LF inside an RTSP request line or header")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")


def parse_head(data: bytes) -> Head:
    """Split a message head (up to and including the blank line) into start line and headers.

    Accepts bare LF line ends and folded (continuation) lines, as lenient servers need.
    """
    text = data.decode("utf-8", errors="replace")
    lines = text.replace("\r\n", "\n").split("\n")
    start_line = lines[0].strip()
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line.strip():
            continue
        if line[0] in " \t" and fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}")
            continue
        name, sep, value = line.partition(":")
        if sep:
            fields.append((name.strip(), value.strip()))
    return Head(start_line, Headers(tuple(fields)))


def find_head_end(data: bytes) -> int:
    """Index just past the blank line ending a head (CRLFCRLF, or LFLF), or -1."""
    ends = [i + len(mark) for mark in (b"\r\n\r\n", b"\n\n") if (i := data.find(mark)) >= 0]
    return min(ends) if ends else -1


def parse_session(value: str) -> tuple[str, float]:
    """``Session: <id>[;timeout=<seconds>]`` → (id, timeout), timeout 60 s unless given."""
    session_id, *params = value.split(";")
    timeout = DEFAULT_SESSION_TIMEOUT
    for param in params:
        key, _, text = param.partition("=")
        if key.strip().lower() == "timeout":
            try:
                seconds = float(text.strip().strip('"'))
            except ValueError:
                continue
            if seconds > 0:
                timeout = seconds
    return session_id.strip(), timeout


def parse_interleave(value: str) -> Interleave | None:
    """The channels of a TCP ``Transport:`` reply; None when it is not interleaved TCP."""
    for spec in value.split(","):
        protocol, *params = spec.strip().split(";")
        if not protocol.strip().upper().endswith("/TCP"):
            continue
        for param in params:
            key, _, text = param.partition("=")
            if key.strip().lower() != "interleaved":
                continue
            first, _, second = text.strip().partition("-")
            if not first.isdigit() or (second and not second.isdigit()):
                return None
            rtp = int(first)
            rtcp = int(second) if second else rtp + 1
            return Interleave(rtp, rtcp) if max(rtp, rtcp) <= 255 else None
    return None


def parse_public(value: str | None) -> frozenset[str]:
    """``Public: OPTIONS, DESCRIBE, ...`` → the method names in upper case."""
    if not value:
        return frozenset()
    return frozenset(part.strip().upper() for part in value.split(",") if part.strip())
