"""From configuration as written to what the services run: absolute paths, per-stream plans.

The one place where defaults flow from global sections into streams (``segment_seconds``,
``fragment_seconds``, the recording root) and where relative paths meet a base directory.
Pure: nothing is created or checked on disk.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from vigil.config.api import ApiConfig
from vigil.config.detection import DetectionConfig, StreamDetectConfig
from vigil.config.ingest import IngestConfig
from vigil.config.labels import BUILTIN_LABEL_SETS
from vigil.config.log import LogConfig
from vigil.config.recording import RecordingConfig
from vigil.config.root import VigilConfig
from vigil.config.simulator import SimulatorConfig
from vigil.config.sources import FileSource, SourceSpec, parse_source
from vigil.config.streams import StreamConfig
from vigil.config.tracing import TracingConfig


@dataclass(frozen=True, slots=True)
class VolumePlan:
    """A recording volume with its path absolute. `implicit` marks the one volume made from
    ``recording.root`` (or the data directory): Vigil may create its directory, whereas a
    configured volume's path must exist (an unmounted disk must not fill the root file system).
    """

    path: Path
    priority: int = 1
    max_usage_percent: float = 95.0
    min_free_bytes: int = 256 * 1024 * 1024
    implicit: bool = False
    require_mount: bool = False


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """Everything a stream's pipeline needs, with every default filled in and paths absolute.

    `recording_root` is the root the recording package lays ``<stream>/<date>/...`` out under;
    `redacted_source` is the source URL safe to log.
    """

    name: str
    source: SourceSpec
    redacted_source: str
    record: bool
    enabled: bool
    segment_seconds: int
    fragment_seconds: float
    recording_root: Path
    read_batch_ms: int = 0
    no_data_timeout_s: float = 5.0
    reconnect_max_delay_s: float = 30.0
    stable_after_s: float = 30.0
    retain_days: float | None = None
    detect: StreamDetectConfig | None = None  # None: detection is off for this stream


@dataclass(frozen=True, slots=True)
class ResolvedConfig:
    """A validated configuration made ready to run.

    `simulator` is None when the section is absent or disabled. `config` is the configuration
    as written (relative paths kept), for reload diffs and display.
    """

    config: VigilConfig
    base_dir: Path
    data_dir: Path
    recording_root: Path
    database_path: Path
    log: LogConfig
    api: ApiConfig
    simulator: SimulatorConfig | None
    streams: tuple[StreamPlan, ...]
    tracing: TracingConfig = dataclasses.field(default_factory=TracingConfig)
    volumes: tuple[VolumePlan, ...] = ()
    backup_dir: Path | None = None
    # Model paths made absolute; `models_dir` is where `vigil models install` puts models.
    detection: DetectionConfig = dataclasses.field(default_factory=DetectionConfig)
    models_dir: Path = Path("models")

    def stream(self, name: str) -> StreamPlan | None:
        """The plan of the stream called `name` (compared ignoring case), if any."""
        wanted = name.casefold()
        return next((plan for plan in self.streams if plan.name.casefold() == wanted), None)


def resolve(config: VigilConfig, *, base_dir: Path) -> ResolvedConfig:
    """Resolve `config` against `base_dir`, the directory of the config file.

    Relative paths are joined to `base_dir` (itself made absolute from the current directory if
    relative), ``~`` is expanded, ``..`` collapsed; unset ``recording.root`` becomes
    ``<data_dir>/recordings`` and unset ``database.path`` becomes ``<data_dir>/vigil.db``.
    """
    base = Path(os.path.abspath(base_dir))
    data_dir = absolute_path(config.data_dir, base)
    recording_root = (
        absolute_path(config.recording.root, base)
        if config.recording.root is not None
        else data_dir / "recordings"
    )
    database_path = (
        absolute_path(config.database.path, base)
        if config.database.path is not None
        else data_dir / "vigil.db"
    )
    if config.storage.volumes:
        volumes = tuple(
            VolumePlan(
                path=absolute_path(volume.path, base),
                priority=volume.priority,
                max_usage_percent=volume.max_usage_percent,
                min_free_bytes=int(volume.min_free_bytes),
                require_mount=volume.require_mount,
            )
            for volume in config.storage.volumes
        )
        recording_root = min(volumes, key=lambda v: v.priority).path
    else:
        volumes = (VolumePlan(path=recording_root, implicit=True),)
    backup_dir = (
        absolute_path(config.backup.dir, base) if config.backup.dir is not None
        else data_dir / "backups"
    )  # fmt: skip
    simulator = config.simulator
    if simulator is not None and not simulator.enabled:
        simulator = None
    elif simulator is not None and simulator.file is not None:
        simulator = simulator.model_copy(update={"file": absolute_path(simulator.file, base)})
    streams = tuple(
        plan_stream(
            stream,
            recording=config.recording,
            recording_root=recording_root,
            base_dir=base,
            ingest=config.ingest,
        )
        for stream in config.streams
    )
    detection = config.detection.model_copy(update={
        "models": {
            name: model.model_copy(update={
                "path": absolute_path(model.path, base),
                "labels": model.labels if model.labels in BUILTIN_LABEL_SETS
                else str(absolute_path(Path(model.labels), base)),
            })
            for name, model in config.detection.models.items()
        },
    })  # fmt: skip
    models_dir = (
        absolute_path(config.detection.models_dir, base)
        if config.detection.models_dir is not None else data_dir / "models"
    )  # fmt: skip
    return ResolvedConfig(
        config=config,
        base_dir=base,
        data_dir=data_dir,
        recording_root=recording_root,
        database_path=database_path,
        log=config.log,
        api=config.api,
        simulator=simulator,
        streams=streams,
        tracing=config.tracing,
        volumes=volumes,
        backup_dir=backup_dir,
        detection=detection,
        models_dir=models_dir,
    )


def plan_stream(
    stream: StreamConfig,
    *,
    recording: RecordingConfig,
    recording_root: Path,
    base_dir: Path,
    ingest: IngestConfig | None = None,
) -> StreamPlan:
    """Plan one stream against the global recording settings (also for streams added at run
    time); `recording_root` and `base_dir` must already be absolute."""
    ingest = ingest or IngestConfig()
    source = parse_source(stream.source, stream.transport)
    if isinstance(source, FileSource):
        source = dataclasses.replace(source, path=absolute_path(source.path, base_dir))
    return StreamPlan(
        name=stream.name,
        source=source,
        redacted_source=stream.redacted_source(),
        record=stream.record,
        enabled=stream.enabled,
        segment_seconds=(
            stream.segment_seconds
            if stream.segment_seconds is not None
            else recording.segment_seconds
        ),
        fragment_seconds=recording.fragment_seconds,
        recording_root=recording_root,
        read_batch_ms=ingest.rtsp_read_batch_ms,
        no_data_timeout_s=ingest.no_data_timeout_s,
        reconnect_max_delay_s=ingest.reconnect_max_delay_s,
        stable_after_s=ingest.stable_after_s,
        retain_days=(
            stream.retain_days if stream.retain_days is not None else recording.retain_days
        ),
        detect=stream.detect if stream.detect.enabled else None,
    )


def absolute_path(path: Path, base_dir: Path) -> Path:
    """`path` made absolute against `base_dir`, with ``~`` expanded and ``..`` collapsed."""
    return Path(os.path.normpath(base_dir / path.expanduser()))
