"""Parsing a stream's ``source`` URL into a typed, frozen source spec (pure, no I/O).

Schemes:

- ``rtsp://`` / ``rtsps://``: pull from a camera. The URL is kept verbatim (credentials and the
  camera's own query string included); ``RtspSource.redacted_url`` is the form to show.
- ``file:///abs/path.mp4`` or ``file:relative/path.mp4`` (relative to the config file's
  directory, made absolute by ``resolve()``), looped; ``?loop=false`` plays it once.
- ``test://[pattern]?codec=h264&size=1280x720&fps=25&bitrate=2000&gop=25``: synthetic video.
- ``v4l2:///dev/video0?size=1280x720&fps=30``: a local capture device.
- ``publish`` (or ``publish:?takeover=true``): no camera to pull; a publisher sends the video in
  (RTSP ANNOUNCE/RECORD or WHIP at the stream's path). A second publisher is refused unless
  ``takeover`` is set, in which case it replaces the first.

Errors are ``ValueError`` whose message never contains a password: messages are built from the
parts that failed, never by echoing an RTSP URL.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from urllib.parse import SplitResult, parse_qsl, unquote, urlsplit

from vigil.config.video import (
    DEFAULT_BITRATE_KBIT,
    DEFAULT_FPS,
    DEFAULT_HEIGHT,
    DEFAULT_WIDTH,
    MAX_BITRATE_KBIT,
    MAX_FPS,
    MAX_GOP_FRAMES,
    MIN_BITRATE_KBIT,
    MIN_FPS,
    MIN_GOP_FRAMES,
    Codec,
    parse_size,
)
from vigil.observability.redact import redact_text, redact_url


class Transport(StrEnum):
    """RTP transport for RTSP pulls; ``auto`` lets the client try UDP and fall back to TCP."""

    TCP = "tcp"
    UDP = "udp"
    AUTO = "auto"


SCHEMES = ("rtsp", "rtsps", "file", "test", "v4l2", "publish")
RTSP_SCHEMES = frozenset({"rtsp", "rtsps"})

# The nicks of GStreamer 1.22's videotestsrc `pattern` property, so a test URL maps 1:1 onto it.
TEST_PATTERNS = (
    "smpte", "snow", "black", "white", "red", "green", "blue", "checkers-1", "checkers-2",
    "checkers-4", "checkers-8", "circular", "blink", "smpte75", "zone-plate", "gamut",
    "chroma-zone-plate", "solid-color", "ball", "smpte100", "bar", "pinwheel", "spokes",
    "gradient", "colors", "smpte-rp-219",
)  # fmt: skip
DEFAULT_TEST_PATTERN = "smpte"

# Query parameters each non-RTSP scheme accepts, with what they mean (the reference docs use it).
TEST_PARAMETERS: Mapping[str, str] = {
    "codec": "h264 or h265 (default h264)",
    "size": f"WIDTHxHEIGHT, even numbers (default {DEFAULT_WIDTH}x{DEFAULT_HEIGHT})",
    "fps": f"frames per second {MIN_FPS}..{MAX_FPS} (default {DEFAULT_FPS})",
    "bitrate": f"kbit/s {MIN_BITRATE_KBIT}..{MAX_BITRATE_KBIT} (default {DEFAULT_BITRATE_KBIT})",
    "gop": f"frames between keyframes {MIN_GOP_FRAMES}..{MAX_GOP_FRAMES} (default = fps)",
}
FILE_PARAMETERS: Mapping[str, str] = {"loop": "true (default) or false: play once"}
PUBLISH_PARAMETERS: Mapping[str, str] = {
    "takeover": "false (default): a second publisher is refused; true: it replaces the first",
}
V4L2_PARAMETERS: Mapping[str, str] = {
    "size": "WIDTHxHEIGHT to request from the device (default: the device's choice)",
    "fps": f"frames per second {MIN_FPS}..{MAX_FPS} (default: the device's choice)",
}

_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]{0,15}")
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True, slots=True)
class RtspSource:
    """Pull a camera over RTSP (``rtsp``) or RTSP over TLS (``rtsps``)."""

    url: str
    transport: Transport = Transport.AUTO

    @property
    def redacted_url(self) -> str:
        """The URL with its password replaced by ``***``: the form for logs and the API."""
        return safe_redact_url(self.url)

    def __repr__(self) -> str:
        # The generated repr would print the password.
        return f"RtspSource(url={self.redacted_url!r}, transport={self.transport.value!r})"


@dataclass(frozen=True, slots=True)
class FileSource:
    """Play a video file, looped by default. A relative `path` is relative to the config file."""

    path: Path
    loop: bool = True


@dataclass(frozen=True, slots=True)
class TestSource:
    """Synthetic video from GStreamer's videotestsrc, encoded with `codec`."""

    __test__ = False  # not a pytest test class, despite the name

    pattern: str = DEFAULT_TEST_PATTERN
    codec: Codec = Codec.H264
    width: int = DEFAULT_WIDTH
    height: int = DEFAULT_HEIGHT
    fps: int = DEFAULT_FPS
    bitrate_kbit: int = DEFAULT_BITRATE_KBIT
    gop_frames: int | None = None

    @property
    def keyframe_interval_frames(self) -> int:
        """Frames between keyframes: `gop_frames`, or one keyframe per second when unset."""
        return self.gop_frames if self.gop_frames is not None else self.fps


@dataclass(frozen=True, slots=True)
class V4l2Source:
    """Capture from a Video4Linux2 device; unset size and rate are left to the device."""

    device: Path
    width: int | None = None
    height: int | None = None
    fps: int | None = None


@dataclass(frozen=True, slots=True)
class PublishSource:
    """Video pushed in by a publisher (RTSP RECORD or WHIP); `takeover` lets a new publisher
    replace the one connected instead of being refused."""

    takeover: bool = False


SourceSpec = RtspSource | FileSource | TestSource | V4l2Source | PublishSource


def safe_redact_url(url: str) -> str:
    """``redact_url`` that never raises: a URL it cannot split is redacted as free text."""
    try:
        return redact_url(url)
    except ValueError:  # e.g. a non-numeric port: urlsplit's .port raises
        return redact_text(url)


def parse_source(url: str, transport: Transport = Transport.AUTO) -> SourceSpec:
    """Parse a stream's ``source`` URL; raise ``ValueError`` (without the password) if invalid.

    `transport` is carried into an ``RtspSource``; other schemes ignore it (the stream model
    rejects an explicit transport on them).
    """
    allowed = ", ".join(f"{scheme}://" for scheme in SCHEMES if scheme != "publish") + ", publish"
    if url.strip().lower() == "publish":
        return PublishSource()
    scheme, colon, _ = url.partition(":")
    if not colon or not _SCHEME.fullmatch(scheme):
        raise ValueError(f"source must be a URL such as rtsp://host/path; allowed: {allowed}")
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"unsupported source scheme '{scheme}'; allowed: {allowed}")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # e.g. an unbalanced IPv6 bracket; the message has no URL in it
        raise ValueError(f"source is not a valid URL: {exc}") from None
    if scheme in RTSP_SCHEMES:
        return _parse_rtsp(url, parts, transport)
    if parts.fragment:
        raise ValueError("unexpected '#' in the source URL; write '#' as %23")
    if scheme == "file":
        return _parse_file(parts)
    if scheme == "test":
        return _parse_test(parts)
    if scheme == "publish":
        return _parse_publish(parts)
    return _parse_v4l2(parts)


def _parse_rtsp(url: str, parts: SplitResult, transport: Transport) -> RtspSource:
    # The camera's own query string (e.g. ?channel=1&subtype=0) is passed through untouched.
    example = f"e.g. {parts.scheme}://user:password@192.0.2.10:554/stream1"
    try:
        port = parts.port
    except ValueError:
        raise ValueError(
            "invalid port in the RTSP URL; it must be a number 1..65535"
            " (percent-encode '/', '?' and '#' in a password)"
        ) from None
    if not parts.hostname:
        raise ValueError(f"an RTSP source needs a host, {example}")
    if not _valid_host(parts.hostname):
        raise ValueError(f"'{parts.hostname}' is not a host name or IP address, {example}")
    if port == 0:
        raise ValueError("invalid port 0 in the RTSP URL; it must be 1..65535")
    if "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
        # A password with an unencoded '/', '?' or '#' splits the URL before its '@': the tail
        # of the password would otherwise pass as a path and be shown unredacted.
        raise ValueError(
            "'@' after the host in the RTSP URL: percent-encode '/', '?' and '#' in the "
            "user name or password (%2F, %3F, %23)"
        )
    return RtspSource(url=url, transport=transport)


_HOST_NAME = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)(\.(?!-)[a-z0-9-]{1,63}(?<!-))*\.?")


def _valid_host(host: str) -> bool:
    """An IP address or an RFC 1123 host name (what a socket can connect to)."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    if host.replace(".", "").isdigit():  # 999.1.1.1 is a bad address, not a name
        return False
    return len(host) <= 253 and _HOST_NAME.fullmatch(host) is not None


def _parse_file(parts: SplitResult) -> FileSource:
    if parts.netloc not in ("", "localhost"):
        raise ValueError(
            f"file URL with host '{parts.netloc}': use file:///absolute/path or "
            "file:relative/path (relative to the config file's directory)"
        )
    path_text = unquote(parts.path)
    if not path_text or path_text == "/":
        raise ValueError("file source needs a path, e.g. file:///srv/videos/gate.mp4")
    params = _query(parts, "file", FILE_PARAMETERS)
    loop = _parse_bool("loop", params["loop"]) if "loop" in params else True
    return FileSource(path=Path(path_text), loop=loop)


def _parse_test(parts: SplitResult) -> TestSource:
    pattern = unquote(parts.netloc).lower() or DEFAULT_TEST_PATTERN
    if pattern not in TEST_PATTERNS:
        raise ValueError(f"unknown test pattern '{pattern}'; allowed: {', '.join(TEST_PATTERNS)}")
    if parts.path not in ("", "/"):
        raise ValueError("a test source has no path: write test://PATTERN?param=value")
    params = _query(parts, "test", TEST_PARAMETERS)
    size = parse_size(params["size"]) if "size" in params else (DEFAULT_WIDTH, DEFAULT_HEIGHT)
    fps = _parse_int("fps", params.get("fps"), MIN_FPS, MAX_FPS)
    bitrate = _parse_int("bitrate", params.get("bitrate"), MIN_BITRATE_KBIT, MAX_BITRATE_KBIT)
    gop = _parse_int("gop", params.get("gop"), MIN_GOP_FRAMES, MAX_GOP_FRAMES)
    return TestSource(
        pattern=pattern,
        codec=_parse_codec(params.get("codec")),
        width=size[0],
        height=size[1],
        fps=fps if fps is not None else DEFAULT_FPS,
        bitrate_kbit=bitrate if bitrate is not None else DEFAULT_BITRATE_KBIT,
        gop_frames=gop,
    )


def _parse_publish(parts: SplitResult) -> PublishSource:
    if parts.netloc or parts.path not in ("", "/"):
        raise ValueError(
            "a publish source has no host or path: write publish or "
            "publish:?takeover=true (publishers use the stream's own path)"
        )
    params = _query(parts, "publish", PUBLISH_PARAMETERS)
    takeover = _parse_bool("takeover", params["takeover"]) if "takeover" in params else False
    return PublishSource(takeover=takeover)


def _parse_v4l2(parts: SplitResult) -> V4l2Source:
    device = unquote(parts.path)
    if parts.netloc or not device.startswith("/") or device == "/":
        raise ValueError("a v4l2 source needs an absolute device path: v4l2:///dev/video0")
    params = _query(parts, "v4l2", V4L2_PARAMETERS)
    width, height = parse_size(params["size"]) if "size" in params else (None, None)
    return V4l2Source(
        device=Path(device),
        width=width,
        height=height,
        fps=_parse_int("fps", params.get("fps"), MIN_FPS, MAX_FPS),
    )


def _query(parts: SplitResult, scheme: str, allowed: Mapping[str, str]) -> dict[str, str]:
    """Return the query parameters, rejecting unknown, repeated and empty ones."""
    params: dict[str, str] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in allowed:
            raise ValueError(
                f"unknown query parameter '{name}' for {scheme}:// sources; "
                f"allowed: {', '.join(allowed)}"
            )
        if name in params:
            raise ValueError(f"query parameter '{name}' is given more than once")
        if not value:
            raise ValueError(f"query parameter '{name}' needs a value")
        params[name] = value
    return params


def _parse_int(name: str, text: str | None, low: int, high: int) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
        raise ValueError(f"query parameter '{name}' must be an integer {low}..{high}, got {text!r}")
    return int(text)


def _parse_bool(name: str, text: str) -> bool:
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    raise ValueError(f"query parameter '{name}' must be true or false, got {text!r}")


def _parse_codec(text: str | None) -> Codec:
    if text is None:
        return Codec.H264
    try:
        return Codec(text.lower())
    except ValueError:
        allowed = ", ".join(codec.value for codec in Codec)
        message = f"query parameter 'codec' must be one of {allowed}, got {text!r}"
        raise ValueError(message) from None
