"""The errors the RTSP client raises: one base type, a subclass per thing a caller acts on.

Every message names the step (an RTSP method, or ``connect``) and the camera URL with its
password replaced, so an error can go straight into a log line or an API answer.
"""

from __future__ import annotations

from vigil.observability.redact import redact_text, redact_url


class RtspError(Exception):
    """An RTSP exchange failed.

    ``status`` is the server's status code (None when no reply came: timeouts, closed
    connections, malformed replies), ``reason`` the server's phrase or what went wrong,
    ``method`` the RTSP method or step (``connect``), ``url`` the camera URL, redacted.
    """

    def __init__(self, status: int | None, reason: str, method: str, url: str = "") -> None:
        self.status = status
        self.reason = reason
        self.method = method
        self.url = redact_url(url) if url else ""
        detail = f"{status} {reason}" if status is not None else reason
        where = f"{method} {self.url}" if self.url else method
        # Defence in depth: the reason may quote a URL the server sent back.
        super().__init__(redact_text(f"{where}: {detail}"))


class RtspAuthError(RtspError):
    """The camera wants credentials the URL does not have, or rejected the ones it has."""


class RtspTransportError(RtspError):
    """The camera cannot stream RTP interleaved over the RTSP connection (e.g. 461).

    The caller falls back to another transport (rtspsrc over UDP).
    """


class RtspTimeoutError(RtspError):
    """No (complete) reply within the timeout; ``method`` names the step that waited."""


class RtspConnectionError(RtspError):
    """The TCP connection could not be made or was lost (refused, reset, closed, DNS)."""


class RtspProtocolError(RtspError):
    """The camera answered something this client cannot use (malformed reply, no video)."""
