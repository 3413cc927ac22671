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
