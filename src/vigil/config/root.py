"""The whole configuration file: ``VigilConfig`` and the checks that span its sections."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self

from pydantic import Field, field_validator, model_validator

from vigil.config.api import ApiConfig
from vigil.config.backup import BackupConfig
from vigil.config.base import BaseConfig, located_error
from vigil.config.database import DatabaseConfig
from vigil.config.detection import DEFAULT_MODEL, DetectionConfig
from vigil.config.events import EventsConfig
from vigil.config.ingest import IngestConfig
from vigil.config.log import LogConfig
from vigil.config.recording import RecordingConfig
from vigil.config.rtsp import RtspServerConfig
from vigil.config.simulator import SimulatorConfig
from vigil.config.storage import StorageConfig
from vigil.config.streams import StreamConfig
from vigil.config.tracing import TracingConfig
from vigil.config.webrtc import WebRtcConfig


class VigilConfig(BaseConfig):
    """Everything one Vigil instance is told by its configuration file.

    Paths are kept as written; ``vigil.config.resolve`` makes them absolute and fills the
    defaults that flow from the global sections into each stream.
    """

    data_dir: Path = Field(
        default=Path("./data"),
        description=(
            "Directory for Vigil's data: recordings and database unless those are set. "
            "Relative paths are relative to the config file."
        ),
    )
    recording: RecordingConfig = Field(
        default_factory=RecordingConfig, description="Recording defaults for every stream."
    )
    storage: StorageConfig = Field(
        default_factory=StorageConfig,
        description="Recording volumes (several disks), placement and space retention.",
    )
    backup: BackupConfig = Field(
        default_factory=BackupConfig, description="Backups of the database and configuration."
    )
    database: DatabaseConfig = Field(
        default_factory=DatabaseConfig, description="Where the SQLite database lives."
    )
    ingest: IngestConfig = Field(default_factory=IngestConfig, description="How sources are read.")
    log: LogConfig = Field(default_factory=LogConfig, description="Logging.")
    tracing: TracingConfig = Field(
        default_factory=TracingConfig,
        description="OpenTelemetry traces of API requests and control operations (off by default).",
    )
    api: ApiConfig = Field(default_factory=ApiConfig, description="The HTTP API.")
    rtsp: RtspServerConfig = Field(
        default_factory=RtspServerConfig,
        description="The RTSP server: every stream re-served, and RTSP publishers taken in.",
    )
    webrtc: WebRtcConfig = Field(
        default_factory=WebRtcConfig,
        description="WebRTC: WHEP playback and WHIP ingest on the API's HTTP server.",
    )
    events: EventsConfig = Field(
        default_factory=EventsConfig, description="Event history and live event clients."
    )
    detection: DetectionConfig = Field(
        default_factory=DetectionConfig,
        description="Object detection: models, execution providers, batching, tracking, events.",
    )
    simulator: SimulatorConfig | None = Field(
        default=None,
        description="Built-in camera simulator started beside Vigil. Absent: no simulator.",
    )
    streams: list[StreamConfig] = Field(
        default_factory=list, description="The streams to ingest and record."
    )

    @field_validator("streams")
    @classmethod
    def _unique_stream_names(cls, streams: list[StreamConfig]) -> list[StreamConfig]:
        # Ignoring case: names become directories, and recording volumes may be exFAT disks;
        # environment variables also address streams by name without regard to case.
        first_index: dict[str, int] = {}
        for index, stream in enumerate(streams):
            key = stream.name.casefold()
            if key in first_index:
                raise located_error(
                    (index, "name"),
                    "duplicate_stream_name",
                    "duplicate stream name '{name}': already used by streams[{first}] "
                    "(names must be unique, ignoring case)",
                    name=stream.name,
                    first=first_index[key],
                )
            first_index[key] = index
        return streams

    @model_validator(mode="after")
    def _detect_models_exist(self) -> Self:
        for index, stream in enumerate(self.streams):
            model = stream.detect.model
            if model != DEFAULT_MODEL and model not in self.detection.models:
                known = ", ".join([DEFAULT_MODEL, *sorted(self.detection.models)])
                raise located_error(
                    ("streams", index, "detect", "model"),
                    "unknown_model",
                    "unknown model '{model}'; known: {known} (add yours under detection.models)",
                    model=model,
                    known=known,
                )
            if model == DEFAULT_MODEL:
                from vigil.config.labels import check_labels

                problem = check_labels(stream.detect.labels)
                if problem is not None:
                    raise located_error(
                        ("streams", index, "detect", "labels"),
                        "unknown_label",
                        problem.replace("{", "{{").replace("}", "}}"),
                    )
        return self

    @model_validator(mode="after")
    def _stream_segments_hold_a_fragment(self) -> Self:
        for index, stream in enumerate(self.streams):
            seconds = stream.segment_seconds
            if seconds is not None and seconds < self.recording.fragment_seconds:
                raise located_error(
                    ("streams", index, "segment_seconds"),
                    "segment_shorter_than_fragment",
                    "segment_seconds ({segment}) must be at least "
                    "recording.fragment_seconds ({fragment})",
                    segment=seconds,
                    fragment=self.recording.fragment_seconds,
                )
        return self

    @model_validator(mode="after")
    def _one_way_to_name_volumes(self) -> Self:
        if self.recording.root is not None and self.storage.volumes:
            raise located_error(
                ("recording", "root"),
                "root_and_volumes",
                "set either recording.root (one volume) or storage.volumes, not both",
            )
        return self

    def redacted_dict(self) -> dict[str, Any]:
        """The configuration as plain JSON-able data, every source password replaced by ``***``."""
        data = self.model_dump(mode="json")
        for stream, dumped in zip(self.streams, data["streams"], strict=True):
            dumped["source"] = stream.redacted_source()
        return data
