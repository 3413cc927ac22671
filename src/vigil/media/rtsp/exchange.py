"""Request/response exchanges on one RTSP connection: CSeq, headers, 401 retries, errors.

Turns socket failures into the `errors` types, each naming its step, and answers
authentication challenges with `auth.Authenticator`: one retry with credentials after a 401,
one more only when the server says the nonce was stale.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from vigil.media.rtsp.auth import Authenticator, parse_challenges
from vigil.media.rtsp.connection import ConnectionClosed, RtspConnection
from vigil.media.rtsp.errors import (
    RtspAuthError,
    RtspConnectionError,
    RtspError,
    RtspProtocolError,
    RtspTimeoutError,
    RtspTransportError,
)
from vigil.media.rtsp.message import Response, build_request, parse_session
from vigil.observability.redact import redact_url

logger = logging.getLogger(__name__)

UNSUPPORTED_TRANSPORT = 461


class Exchange:
    """Sends requests and reads their replies on one connection. Not thread-safe by itself:
    the session serialises the writes it makes after PLAY."""

    def __init__(
        self,
        connection: RtspConnection,
        authenticator: Authenticator,
        *,
        url: str,
        timeout: float,
        user_agent: str,
    ) -> None:
        self.connection = connection
        self.authenticator = authenticator
        self.url = url  # the caller's URL: errors redact it
        self.timeout = timeout
        self.user_agent = user_agent
        self.session_id: str | None = None
        self._cseq = 0

    def request(self, method: str, uri: str, extra: Iterable[tuple[str, str]] = ()) -> Response:
        """Send a request and return its reply, answering up to two 401s (see module doc).

        Raises RtspAuthError when credentials are missing, unusable or rejected, and the
        errors of `round_trip`. Any other status is returned for the caller to judge.
        """
        extra = tuple(extra)
        response = self.round_trip(method, uri, extra)
        if response.status != 401:
            return response
        self._accept_challenge(response, method)
        response = self.round_trip(method, uri, extra)
        if response.status == 401 and self._accept_challenge(response, method):
            response = self.round_trip(method, uri, extra)  # stale nonce: once more
        if response.status == 401:
            credentials = self.authenticator.credentials
            user = credentials.username if credentials else ""
            reason = f"{response.reason} (the camera rejected the credentials of user {user!r})"
            raise RtspAuthError(401, reason, method, self.url)
        return response

    def round_trip(self, method: str, uri: str, extra: Iterable[tuple[str, str]]) -> Response:
        """One request and the reply with its CSeq, within `timeout`; no 401 handling."""
        cseq = self._next_cseq()
        data = build_request(method, uri, self._headers(method, uri, cseq, extra))
        deadline = time.monotonic() + self.timeout
        try:
            self.connection.send(data, deadline)
            while True:
                response = self.connection.read_response(deadline)
                if response.cseq in (None, cseq):
                    break
                logger.debug("%s: ignored a reply to CSeq %s", self._display, response.cseq)
        except (OSError, ValueError) as error:
            raise self._error(error, method, waited="reply", timeout=self.timeout) from error
        logger.debug(
            "%s: %s %s -> %d %s", self._display, method, uri, response.status, response.reason
        )
        return response

    def send_only(
        self,
        method: str,
        uri: str,
        extra: Iterable[tuple[str, str]] = (),
        *,
        timeout: float | None = None,
    ) -> None:
        """Write a request and do not wait for its reply (it will arrive among data frames)."""
        cseq = self._next_cseq()
        data = build_request(method, uri, self._headers(method, uri, cseq, extra))
        timeout = self.timeout if timeout is None else timeout
        try:
            self.connection.send(data, time.monotonic() + timeout)
        except OSError as error:
            raise self._error(error, method, waited="write", timeout=timeout) from error

    def check(self, response: Response, method: str) -> None:
        """Raise the error a non-2xx reply means (461 → RtspTransportError)."""
        if response.ok:
            return
        if response.status == UNSUPPORTED_TRANSPORT:
            raise RtspTransportError(response.status, response.reason, method, self.url)
        raise RtspError(response.status, response.reason, method, self.url)

    def adopt_session(self, response: Response, method: str) -> float:
        """Take the Session id for the following requests; returns the session timeout."""
        header = response.headers.get("Session")
        session_id, timeout = parse_session(header) if header else ("", 0.0)
        if not session_id:
            raise RtspProtocolError(None, f"{method} reply has no Session id", method, self.url)
        self.session_id = session_id
        return timeout

    @property
    def _display(self) -> str:
        return redact_url(self.url)

    def _next_cseq(self) -> int:
        self._cseq += 1
        return self._cseq

    def _headers(
        self, method: str, uri: str, cseq: int, extra: Iterable[tuple[str, str]]
    ) -> list[tuple[str, str]]:
        headers = [("CSeq", str(cseq)), ("User-Agent", self.user_agent)]
        authorization = self.authenticator.authorization(method, uri)
        if authorization is not None:
            headers.append(("Authorization", authorization))
        if self.session_id:
            headers.append(("Session", self.session_id))
        headers.extend(extra)
        return headers

    def _accept_challenge(self, response: Response, method: str) -> bool:
        """Take the 401's challenge; True when the server said the nonce was stale."""
        if self.authenticator.credentials is None:
            reason = f"{response.reason} (the camera asks for credentials and the URL has none)"
            raise RtspAuthError(401, reason, method, self.url)
        challenges = parse_challenges(response.headers.get_all("WWW-Authenticate"))
        chosen = self.authenticator.accept(challenges)
        if chosen is None:
            offered = ", ".join(sorted({c.scheme for c in challenges})) or "none"
            reason = f"{response.reason} (no supported authentication scheme; offered: {offered})"
            raise RtspAuthError(401, reason, method, self.url)
        return chosen.stale

    def _error(self, error: Exception, method: str, *, waited: str, timeout: float) -> RtspError:
        if isinstance(error, TimeoutError):
            what = "no reply" if waited == "reply" else "could not write the request"
            return RtspTimeoutError(None, f"{what} within {timeout:g} s", method, self.url)
        if isinstance(error, ConnectionClosed):
            return RtspConnectionError(None, "the server closed the connection", method, self.url)
        if isinstance(error, ConnectionResetError):
            return RtspConnectionError(None, "the server reset the connection", method, self.url)
        if isinstance(error, OSError):
            reason = f"connection error: {error.strerror or error}"
            return RtspConnectionError(None, reason, method, self.url)
        return RtspProtocolError(None, f"malformed reply: {error}", method, self.url)
