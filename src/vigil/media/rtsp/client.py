"""Open an RTSP session for TCP-interleaved playback and hand its socket to the data reader.

OPTIONS → DESCRIBE (redirects, authentication) → SETUP of the first video track, interleaved
on the RTSP connection → PLAY; blocking calls with a deadline per step, meant for a worker
thread. After PLAY the socket carries `$` frames and the replies to `keepalive()`: the GStreamer
pipeline reads it (``fdsrc``), this module only ever writes to it again.
"""

from __future__ import annotations

import logging
import socket
import threading
from types import TracebackType
from urllib.parse import urljoin

from vigil import __version__
from vigil.media.rtsp.auth import Authenticator, Credentials, credentials_from_url
from vigil.media.rtsp.connection import RtspConnection
from vigil.media.rtsp.errors import (
    RtspConnectionError,
    RtspError,
    RtspProtocolError,
    RtspTimeoutError,
    RtspTransportError,
)
from vigil.media.rtsp.exchange import Exchange
from vigil.media.rtsp.message import Interleave, Response, parse_interleave, parse_public
from vigil.media.rtsp.sdp import SessionDescription, VideoTrack, parse_sdp, rtp_caps_string
from vigil.media.rtsp.sdp import video_track as find_video_track
from vigil.media.rtsp.urls import (
    RtspTarget,
    is_absolute_rtsp,
    parse_rtsp_url,
    resolve_control,
    resolve_reference,
    same_origin,
)
from vigil.observability.redact import redact_url

logger = logging.getLogger(__name__)

DEFAULT_USER_AGENT = f"Vigil/{__version__}"
MAX_REDIRECTS = 3
TRANSPORT = "RTP/AVP/TCP;unicast;interleaved=0-1"
_REDIRECTS = frozenset({301, 302, 303, 307})
_TEARDOWN_TIMEOUT = 2.0  # TEARDOWN is a courtesy: never hold a stopping stream up for long


class RtspSession:
    """A playing RTSP session whose RTP arrives interleaved on `socket`.

    The socket belongs to the data reader: nothing here reads it after PLAY, and nothing was
    read past the PLAY reply. `keepalive` and `teardown` only write (under a lock), so they are
    safe from any thread while another thread — or GStreamer — reads. Their replies arrive in
    the byte stream between ``$`` frames, where the reader skips them.

    Keep this object alive while a pipeline uses `fileno()`: when the socket object is
    collected, Python closes the descriptor under the reader.
    """

    def __init__(
        self,
        exchange: Exchange,
        *,
        sdp: SessionDescription,
        track: VideoTrack,
        base_url: str,
        control_url: str,
        track_url: str,
        interleave: Interleave,
        session_timeout: float,
        public: frozenset[str],
        server: str | None,
    ) -> None:
        self._exchange = exchange
        self._lock = threading.Lock()
        self._torn_down = False
        self.url = redact_url(exchange.url)  # the caller's URL, password replaced
        self.sdp = sdp
        self.track = track
        self.caps = rtp_caps_string(track)
        self.base_url = base_url
        self.control_url = control_url  # aggregate control: PLAY, keep-alives, TEARDOWN
        self.track_url = track_url  # what SETUP was sent to
        self.rtp_channel = interleave.rtp_channel
        self.rtcp_channel = interleave.rtcp_channel
        self.session_id = exchange.session_id or ""
        self.session_timeout = session_timeout
        self.server = server
        # GET_PARAMETER is the keep-alive RFC 2326 suggests; OPTIONS works on any server.
        self.keepalive_method = "GET_PARAMETER" if "GET_PARAMETER" in public else "OPTIONS"

    @property
    def socket(self) -> socket.socket:
        """The connected TCP socket (blocking mode) carrying the interleaved data."""
        return self._exchange.connection.socket

    def fileno(self) -> int:
        """The socket's descriptor, for ``fdsrc fd=…``; -1 once closed."""
        return self._exchange.connection.fileno()

    def keepalive(self) -> None:
        """Send a keep-alive request without reading its reply; no-op after `teardown`.

        Raises RtspTimeoutError / RtspConnectionError when the request cannot be written.
        """
        with self._lock:
            if self._torn_down:
                return
            self._exchange.send_only(self.keepalive_method, self.control_url)

    def teardown(self) -> None:
        """Send TEARDOWN (best effort, reply not read), then shut our sending side down.

        Idempotent. The reader goes on to see the TEARDOWN reply and the frames in flight,
        then end of stream when the server closes its side. The descriptor stays open until
        `close`, so a reader still polling it never meets a reused descriptor number.
        """
        with self._lock:
            if self._torn_down:
                return
            self._torn_down = True
            try:
                self._exchange.send_only(
                    "TEARDOWN",
                    self.control_url,
                    timeout=min(self._exchange.timeout, _TEARDOWN_TIMEOUT),
                )
            except RtspError as error:
                logger.debug("%s: TEARDOWN not sent: %s", self.url, error)
            self._exchange.connection.shutdown_write()

    def close(self) -> None:
        """Tear down, then close the socket. Call it once the reader has stopped."""
        self.teardown()
        self._exchange.connection.close()

    def __enter__(self) -> RtspSession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RtspSession {self.url} {self.track.encoding} session={self.session_id!r}>"


def open_session(
    url: str, *, timeout: float = 10.0, user_agent: str = DEFAULT_USER_AGENT
) -> RtspSession:
    """Connect to `url` and bring its first video track to PLAY over interleaved TCP.

    `timeout` bounds each step (connect, and each request's reply) separately. Raises
    ValueError for a URL this client does not take (``rtsps://``, not RTSP, bad port), and
    RtspError subclasses for everything the network or the camera does: RtspAuthError,
    RtspTransportError (fall back to UDP), RtspTimeoutError, RtspConnectionError,
    RtspProtocolError, or RtspError with the server's status.
    """
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    exchange, public, response, request_url = _describe(url, timeout, user_agent)
    try:
        session = _setup_and_play(exchange, public, response, request_url)
    except BaseException:
        exchange.connection.close()
        raise
    logger.info(
        "%s: playing %s pt %d over interleaved TCP (channels %d-%d, session timeout %g s)",
        session.url,
        session.track.encoding,
        session.track.payload_type,
        session.rtp_channel,
        session.rtcp_channel,
        session.session_timeout,
    )
    return session


def _describe(
    url: str, timeout: float, user_agent: str
) -> tuple[Exchange, frozenset[str], Response, str]:
    """OPTIONS and DESCRIBE, following redirects; returns the connection that described."""
    target = parse_rtsp_url(url)
    credentials = credentials_from_url(url)
    for _ in range(MAX_REDIRECTS + 1):
        exchange = _connect(url, target, credentials, timeout, user_agent)
        try:
            public = _options(exchange, target.request_url)
            response = exchange.request(
                "DESCRIBE", target.request_url, [("Accept", "application/sdp")]
            )
        except BaseException:
            exchange.connection.close()
            raise
        if response.status not in _REDIRECTS:
            return exchange, public, response, target.request_url
        exchange.connection.close()
        target, credentials = _redirect(url, target, credentials, response)
    raise RtspProtocolError(None, f"more than {MAX_REDIRECTS} redirects", "DESCRIBE", url)


def _redirect(
    url: str, target: RtspTarget, credentials: Credentials | None, response: Response
) -> tuple[RtspTarget, Credentials | None]:
    """Where a 3xx sends us, and with which credentials (kept only for the same host)."""
    location = response.headers.get("Location")
    if not location:
        raise RtspProtocolError(
            response.status, f"{response.reason} without a Location", "DESCRIBE", url
        )
    new_url = urljoin(target.request_url, location.strip())
    try:
        new_target = parse_rtsp_url(new_url)
    except ValueError as error:
        raise RtspProtocolError(
            response.status, f"redirect to {redact_url(new_url)}: {error}", "DESCRIBE", url
        ) from error
    new_credentials = credentials_from_url(new_url)
    if new_credentials is None and same_origin(target.request_url, new_url):
        new_credentials = credentials  # like curl: credentials never follow to another host
    logger.info("%s: redirected to %s", redact_url(url), new_target.request_url)
    return new_target, new_credentials


def _connect(
    url: str,
    target: RtspTarget,
    credentials: Credentials | None,
    timeout: float,
    user_agent: str,
) -> Exchange:
    try:
        connection = RtspConnection.open(target.host, target.port, timeout)
    except socket.gaierror as error:
        reason = f"cannot resolve host {target.host!r} ({error.strerror})"
        raise RtspConnectionError(None, reason, "connect", url) from error
    except TimeoutError as error:
        reason = f"no TCP connection to {target.address} within {timeout:g} s"
        raise RtspTimeoutError(None, reason, "connect", url) from error
    except ConnectionRefusedError as error:
        reason = f"connection refused by {target.address}"
        raise RtspConnectionError(None, reason, "connect", url) from error
    except OSError as error:
        reason = f"cannot connect to {target.address}: {error.strerror or error}"
        raise RtspConnectionError(None, reason, "connect", url) from error
    return Exchange(
        connection, Authenticator(credentials), url=url, timeout=timeout, user_agent=user_agent
    )


def _options(exchange: Exchange, request_url: str) -> frozenset[str]:
    """The methods the server lists. A refused OPTIONS is not fatal: DESCRIBE will tell."""
    response = exchange.request("OPTIONS", request_url)
    if not response.ok:
        logger.debug("%s: OPTIONS answered %d", redact_url(exchange.url), response.status)
        return frozenset()
    return parse_public(response.headers.get("Public"))


def _setup_and_play(
    exchange: Exchange, public: frozenset[str], described: Response, request_url: str
) -> RtspSession:
    url = exchange.url
    exchange.check(described, "DESCRIBE")
    base_url = _base_url(described, request_url)
    sdp = parse_sdp(described.body.decode("utf-8", errors="replace"))
    try:
        track = find_video_track(sdp)
    except ValueError as error:
        raise RtspProtocolError(None, str(error), "DESCRIBE", url) from error
    # As rtspsrc: an absolute session-level control is the aggregate URL and the base of
    # relative track controls; otherwise the base URL is both.
    control_url = (
        resolve_control(base_url, sdp.control)
        if sdp.control and is_absolute_rtsp(sdp.control)
        else base_url
    )
    track_url = resolve_control(control_url, track.control)

    response = exchange.request("SETUP", track_url, [("Transport", TRANSPORT)])
    exchange.check(response, "SETUP")
    interleave = _interleave(response, url)
    session_timeout = exchange.adopt_session(response, "SETUP")

    response = exchange.request("PLAY", control_url, [("Range", "npt=0.000-")])
    exchange.check(response, "PLAY")
    if exchange.connection.skipped_frames:
        logger.debug(
            "%s: skipped %d early data frames during set-up",
            redact_url(url),
            exchange.connection.skipped_frames,
        )
    return RtspSession(
        exchange,
        sdp=sdp,
        track=track,
        base_url=base_url,
        control_url=control_url,
        track_url=track_url,
        interleave=interleave,
        session_timeout=session_timeout,
        public=public,
        server=described.headers.get("Server"),
    )


def _base_url(response: Response, request_url: str) -> str:
    """Content-Base, else Content-Location, else the request URL (RFC 2326 C.1.1)."""
    for header in ("Content-Base", "Content-Location"):
        value = response.headers.get(header)
        if value and value.strip():
            return resolve_reference(request_url, value)
    return request_url


def _interleave(response: Response, url: str) -> Interleave:
    transport = response.headers.get("Transport")
    if transport is None:
        logger.debug("%s: SETUP reply without Transport: assuming 0-1", redact_url(url))
        return Interleave(0, 1)
    interleave = parse_interleave(transport)
    if interleave is None:
        reason = f"the camera answered Transport {transport!r}, not interleaved TCP"
        raise RtspTransportError(None, reason, "SETUP", url)
    return interleave
