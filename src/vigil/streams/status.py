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
    # Live numbers, sampled about once a second (`vigil.streams.meter`); defaults for a stream
    # that has not run yet.
    fps: float = 0.0
    bitrate_bps: float = 0.0
    last_frame_age_s: float | None = None  # None until the first frame
    frames_received: int = 0
    bytes_received: int = 0
    not_streaming_s: float = 0.0  # supervised but not streaming (starting, stalled, ...)
    recording_blocked: str | None = None  # why no segment can be written now (no space)
