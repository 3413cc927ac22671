"""Who is watching or publishing what: one registry for RTSP and WebRTC sessions.

The servers add a session when a client starts playing or publishing and remove it when it
ends; the API lists them and kicks one (its `close` is called, on whatever thread the API runs:
the server hands the work to its own thread). Pure Python, no GStreamer: the API reads it.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from vigil.events import utc_now

logger = logging.getLogger(__name__)


class SessionKind(StrEnum):
    """What a session does."""

    RTSP_PLAY = "rtsp-play"
    RTSP_PUBLISH = "rtsp-publish"
    WHEP = "whep"
    WHIP = "whip"

    @property
    def publishes(self) -> bool:
        """True for sessions that send video into Vigil."""
        return self in (SessionKind.RTSP_PUBLISH, SessionKind.WHIP)


@dataclass(eq=False)
class Session:
    """One client's session. `close` ends it from the server's side (a kick)."""

    kind: SessionKind
    stream: str
    remote: str  # "address:port" of the client
    transport: str  # tcp, udp, udp-multicast, webrtc
    user: str | None = None
    close: Callable[[], None] = lambda: None
    # Bytes sent to (or received from, for publishers) the client, where the server knows it.
    bytes: Callable[[], int | None] = lambda: None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started_at: datetime = field(default_factory=utc_now)


class SessionNotFound(KeyError):
    """No session has that id (it ended, or never was)."""


class SessionRegistry:
    """Every open session; thread-safe (servers run on the GLib thread, the API on asyncio)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}
        self._opened: Counter[tuple[str, str]] = Counter()  # (kind, stream) → total opened

    def add(self, session: Session) -> Session:
        """Register an open session; returns it."""
        with self._lock:
            self._sessions[session.id] = session
            self._opened[(session.kind.value, session.stream)] += 1
        logger.info(
            "%s session %s on %s from %s%s", session.kind.value, session.id[:8], session.stream,
            session.remote, f" as {session.user}" if session.user else "",
        )  # fmt: skip
        return session

    def remove(self, session_id: str) -> Session | None:
        """Forget a session that ended (idempotent)."""
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is not None:
            logger.info("%s session %s on %s ended", session.kind.value, session.id[:8],
                        session.stream)  # fmt: skip
        return session

    def get(self, session_id: str) -> Session:
        """The session with that id; `SessionNotFound` if none."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise SessionNotFound(session_id)
        return session

    def list(self, *, stream: str | None = None, kind: SessionKind | None = None) -> list[Session]:
        """Open sessions, oldest first, optionally of one stream or kind."""
        with self._lock:
            sessions = list(self._sessions.values())
        return sorted(
            (s for s in sessions
             if (stream is None or s.stream == stream) and (kind is None or s.kind is kind)),
            key=lambda s: s.started_at,
        )  # fmt: skip

    def kick(self, session_id: str) -> Session:
        """End a session from the server side; `SessionNotFound` if it is not open."""
        session = self.get(session_id)
        session.close()
        self.remove(session_id)
        return session

    def publisher(self, stream: str) -> Session | None:
        """The session publishing into `stream`, if any."""
        with self._lock:
            return next(
                (s for s in self._sessions.values() if s.stream == stream and s.kind.publishes),
                None,
            )

    def counts(self) -> dict[tuple[str, str], int]:
        """Open sessions by (kind, stream), for metrics."""
        with self._lock:
            return dict(Counter((s.kind.value, s.stream) for s in self._sessions.values()))

    def opened(self) -> dict[tuple[str, str], int]:
        """Sessions opened since start by (kind, stream), for metrics."""
        with self._lock:
            return dict(self._opened)
