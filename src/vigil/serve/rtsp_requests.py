"""What an RTSP request asks for, read from its text (pure, no GStreamer): the stream a path
names, whether it reads or publishes, and the codec a publisher announces in its SDP."""

from __future__ import annotations

import re
from enum import StrEnum
from urllib.parse import unquote

from vigil.config.streams import STREAM_NAME_PATTERN

_STREAM_NAME = re.compile(STREAM_NAME_PATTERN)
_MODE_RECORD = re.compile(r'(^|;)\s*mode\s*=\s*"?record"?\s*(;|,|$)', re.IGNORECASE)
# Encodings a publisher may send, by their SDP name (RFC 6184, RFC 7798).
PUBLISHABLE = ("H264", "H265")


class Access(StrEnum):
    """What a request wants to do with a stream."""

    READ = "read"
    PUBLISH = "publish"


def stream_of(path: str) -> str | None:
    """The stream a request path names (``/gate`` or ``/gate/stream=0`` → ``gate``), or None."""
    first = unquote(path.lstrip("/").split("/", 1)[0])
    return first if _STREAM_NAME.fullmatch(first) else None


def access_of(method: str, transport: str | None = None) -> Access | None:
    """The access an RTSP method needs, or None when it needs no check (OPTIONS, and requests
    bound to a session that an authorised SETUP opened: PLAY, RECORD, TEARDOWN, ...).
    A SETUP is a publisher's when its Transport header says ``mode=record``."""
    method = method.upper()
    if method == "DESCRIBE":
        return Access.READ
    if method == "ANNOUNCE":
        return Access.PUBLISH
    if method == "SETUP":
        return Access.PUBLISH if transport and _MODE_RECORD.search(transport) else Access.READ
    return None


def announced_encoding(sdp: str) -> str | None:
    """The encoding (upper case, e.g. ``H264``) of the first video stream of an ANNOUNCE's SDP,
    or None when it has no video stream."""
    in_video = False
    payloads: list[str] = []
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            if in_video:
                break
            fields = line[2:].split()
            in_video = bool(fields) and fields[0] == "video"
            payloads = fields[3:] if in_video else []
        elif in_video and line.lower().startswith("a=rtpmap:"):
            number, _, rest = line[len("a=rtpmap:") :].partition(" ")
            if number in payloads or not payloads:
                return rest.split("/", 1)[0].strip().upper()
    return None
