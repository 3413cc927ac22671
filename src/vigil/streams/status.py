"""A stream's status as reported to the outside (API, systemd, metrics); no GStreamer here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from vigil.streams.state import StreamState


@dataclass(frozen=True)
class StreamStatus:
    """What a stream is doing now."""

    name: str
    state: StreamState
    reason: str
    since: datetime
    source: str
    restarts: int
    transitions: int
