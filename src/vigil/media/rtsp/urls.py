"""RTSP URLs: where to connect, what goes on the wire, and how SDP controls resolve.

Nothing with a password ever leaves this module: request URLs are stripped of userinfo.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

DEFAULT_PORT = 554


@dataclass(frozen=True)
class RtspTarget:
    """Where to connect for an ``rtsp://`` URL and the URL to put in request lines."""

    host: str  # without IPv6 brackets
    port: int
    request_url: str  # the URL without user:password@

    @property
    def address(self) -> str:
        """``host:port`` for messages (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def parse_rtsp_url(url: str) -> RtspTarget:
    """Check `url` is an ``rtsp://`` URL this client can open; ValueError saying why not.

    ``rtsps://`` is refused on purpose: TLS stays with rtspsrc.
    """
    if any(ord(char) < 0x21 or ord(char) == 0x7F for char in url):
        raise ValueError("RTSP URL contains spaces or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "rtsps":
        raise ValueError("rtsps:// is not supported by this client (use rtspsrc)")
    if scheme != "rtsp":
        raise ValueError(f"not an rtsp:// URL (scheme {parts.scheme!r})")
    if not parts.hostname:
        raise ValueError("RTSP URL has no host")
    port = parts.port  # raises ValueError for a port that is not a number in range
    return RtspTarget(parts.hostname, port or DEFAULT_PORT, strip_userinfo(url))


def strip_userinfo(url: str) -> str:
    """`url` without ``user:password@`` and fragment; the rest (port included) as written."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def resolve_reference(base: str, reference: str) -> str:
    """A Location or Content-Base/Location header value made absolute (RFC 3986), no userinfo."""
    return strip_userinfo(urljoin(base, reference.strip()))


def resolve_control(base: str, control: str | None) -> str:
    """The URL for an SDP ``a=control`` value, resolved the way rtspsrc and ffmpeg do it.

    An absolute ``rtsp://`` control is used as it is; ``*`` or no control means the base;
    anything else is appended to the base with one '/' between them. That is not RFC 3986
    resolution on purpose: cameras answer ``rtsp://cam/live`` (no trailing slash) with
    ``trackID=1`` and mean ``rtsp://cam/live/trackID=1``, and some put the slash after a query
    (``...?channel=1/``) in Content-Base.
    """
    if control is None or control.strip() in ("", "*"):
        return strip_userinfo(base)
    control = control.strip()
    if is_absolute_rtsp(control):
        return strip_userinfo(control)
    separator = "" if base.endswith("/") or control.startswith("/") else "/"
    return strip_userinfo(f"{base}{separator}{control}")


def is_absolute_rtsp(url: str) -> bool:
    """True for an ``rtsp://`` URL (any case)."""
    return url[:7].lower() == "rtsp://"


def same_origin(first: str, second: str) -> bool:
    """True when both URLs name the same scheme, host and port (credentials may follow)."""
    a, b = urlsplit(first), urlsplit(second)
    return (a.scheme.lower(), a.hostname, a.port or DEFAULT_PORT) == (
        b.scheme.lower(),
        b.hostname,
        b.port or DEFAULT_PORT,
    )
