"""One entry of the ``streams`` list: a camera (or other source) Vigil ingests and records."""

from __future__ import annotations

import re
from typing import Self

from pydantic import Field, field_validator, model_validator

from vigil.config.base import BaseConfig, located_error
from vigil.config.detection import StreamDetectConfig
from vigil.config.recording import (
    MAX_SEGMENT_SECONDS,
    MIN_SEGMENT_SECONDS,
    RETAIN_DAYS_DESCRIPTION,
    SEGMENT_SECONDS_DESCRIPTION,
)
from vigil.config.sources import RTSP_SCHEMES, SCHEMES, Transport, parse_source, safe_redact_url

# Names become directory names, URL paths (rtsp://host:8554/<name>) and parts of environment
# variable names, hence this conservative alphabet.
STREAM_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
_STREAM_NAME = re.compile(STREAM_NAME_PATTERN)
# What a source URL looks like (its scheme); the full check is parse_source's.
SOURCE_PATTERN = r"^(" + "|".join(SCHEMES) + r")://\S+$"
STREAM_NAME_RULE = (
    "1 to 64 characters: letters, digits, '_' and '-', starting with a letter or digit"
)


class StreamConfig(BaseConfig):
    """A stream: where its video comes from and whether it is recorded.

    The source URL may carry a password: it is left out of ``repr()``; show
    ``redacted_source()`` instead.
    """

    name: str = Field(
        description=(
            f"Unique name of the stream (compared ignoring case), {STREAM_NAME_RULE}. "
            "Used in recording paths, RTSP/WebRTC URLs and the API."
        ),
        json_schema_extra={"pattern": STREAM_NAME_PATTERN, "examples": ["gate", "cam-1"]},
    )
    source: str = Field(
        repr=False,
        description=(
            f"Where the video comes from, as a URL; schemes: {', '.join(SCHEMES)}. "
            "See 'Sources' below."
        ),
        json_schema_extra={
            "pattern": SOURCE_PATTERN,
            "examples": [
                "rtsp://user:password@192.0.2.10:554/stream1",
                "file:///srv/videos/gate.mp4",
                "test://ball?size=640x480&fps=15",
                "v4l2:///dev/video0",
            ],
        },
    )
    transport: Transport = Field(
        default=Transport.AUTO,
        description=(
            "RTP transport for rtsp/rtsps sources: tcp, udp, or auto (UDP, falling back to "
            "TCP). Must stay auto for other schemes."
        ),
    )
    record: bool = Field(default=True, description="Record this stream to disk.")
    enabled: bool = Field(
        default=True, description="Ingest this stream; false keeps it configured but stopped."
    )
    segment_seconds: int | None = Field(
        default=None,
        ge=MIN_SEGMENT_SECONDS,
        le=MAX_SEGMENT_SECONDS,
        description=f"{SEGMENT_SECONDS_DESCRIPTION} Unset: recording.segment_seconds.",
    )
    retain_days: float | None = Field(
        default=None,
        gt=0,
        le=36500,
        description=f"{RETAIN_DAYS_DESCRIPTION} Unset: recording.retain_days.",
    )

    detect: StreamDetectConfig = Field(
        default_factory=StreamDetectConfig,
        description="Object detection on this stream (off by default).",
    )

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _STREAM_NAME.fullmatch(value):
            raise ValueError(f"invalid stream name; a name is {STREAM_NAME_RULE}")
        return value

    @field_validator("source")
    @classmethod
    def _check_source(cls, value: str) -> str:
        parse_source(value)
        return value

    @model_validator(mode="after")
    def _transport_only_for_rtsp(self) -> Self:
        scheme = self.source.partition(":")[0].lower()
        if self.transport is not Transport.AUTO and scheme not in RTSP_SCHEMES:
            raise located_error(
                ("transport",),
                "transport_without_rtsp",
                "transport applies to rtsp:// and rtsps:// sources only; "
                "remove it or set it to auto for a {scheme}:// source",
                scheme=scheme,
            )
        return self

    def redacted_source(self) -> str:
        """The source URL with its password replaced by ``***``: the form for logs and the API."""
        return safe_redact_url(self.source)
