"""The ``ingest`` section: how Vigil reads its sources."""

from __future__ import annotations

from pydantic import Field

from vigil.config.base import BaseConfig


class IngestConfig(BaseConfig):
    """Settings for reading sources, common to every stream."""

    rtsp_read_batch_ms: int = Field(
        default=40,
        ge=0,
        le=500,
        description=(
            "RTSP over TCP: let about this many milliseconds of a camera's video gather in the "
            "kernel before Vigil reads it (the socket's low-water mark, sized from the measured "
            "bitrate). Fewer wake-ups per camera, at most this much added latency. "
            "0 reads every packet as it arrives."
        ),
    )
    no_data_timeout_s: float = Field(
        default=5.0,
        ge=1.0,
        le=300.0,
        description=(
            "A stream with no video for this long is stalled: its source is rebuilt (the "
            "recording side stays) and the missing time is stored as a gap."
        ),
    )
    reconnect_max_delay_s: float = Field(
        default=30.0,
        ge=1.0,
        le=3600.0,
        description=(
            "Longest wait between reconnection attempts (exponential back-off with full "
            "jitter, first retry within 1 s). A camera that went away is also checked every "
            "half second with a TCP connection and reconnected as soon as it answers."
        ),
    )
    stable_after_s: float = Field(
        default=30.0,
        ge=1.0,
        le=3600.0,
        description="Streaming this long without trouble resets the back-off.",
    )
