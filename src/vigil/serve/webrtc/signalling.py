"""What the HTTP side and the WebRTC gateway exchange: answers and refusals. Pure (no gi)."""

from __future__ import annotations

from dataclasses import dataclass


class SignallingError(Exception):
    """A WHEP/WHIP request refused: `status` is the HTTP status, `message` names the problem."""

    def __init__(
        self, status: int, message: str, *, code: str | None = None,
        retry_after: int | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.retry_after = retry_after


@dataclass(frozen=True)
class Answer:
    """A session that was set up: its id (the resource URL's last part), the SDP answer and
    the entity tag of its ICE session (for If-Match on PATCH)."""

    session_id: str
    sdp: str
    etag: str
