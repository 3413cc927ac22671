"""Vigil's configuration: pydantic models, YAML loading with env overrides, located errors,
resolution into per-stream plans, and the generated schema and reference.

Typical use::

    config = load_config(path)                       # raises ConfigError
    plan = resolve(config, base_dir=config_base_dir(path))
"""

from vigil.config.api import ApiConfig
from vigil.config.base import BaseConfig
from vigil.config.database import DatabaseConfig
from vigil.config.defaults import DEFAULT_CONFIG_YAML, default_config
from vigil.config.errors import ConfigError, ConfigIssue
from vigil.config.ingest import IngestConfig
from vigil.config.loader import config_base_dir, load_config, load_config_text
from vigil.config.log import LogConfig, LogFormat, LogLevel
from vigil.config.recording import RecordingConfig
from vigil.config.resolve import ResolvedConfig, StreamPlan, plan_stream, resolve
from vigil.config.root import VigilConfig
from vigil.config.schema import json_schema, reference_markdown
from vigil.config.simulator import SimulatorConfig
from vigil.config.sources import (
    FileSource,
    PublishSource,
    RtspSource,
    SourceSpec,
    TestSource,
    Transport,
    V4l2Source,
    parse_source,
)
from vigil.config.streams import StreamConfig
from vigil.config.video import Codec

__all__ = [
    "DEFAULT_CONFIG_YAML",
    "ApiConfig",
    "BaseConfig",
    "Codec",
    "ConfigError",
    "ConfigIssue",
    "DatabaseConfig",
    "FileSource",
    "IngestConfig",
    "LogConfig",
    "LogFormat",
    "LogLevel",
    "PublishSource",
    "RecordingConfig",
    "ResolvedConfig",
    "RtspSource",
    "SimulatorConfig",
    "SourceSpec",
    "StreamConfig",
    "StreamPlan",
    "TestSource",
    "Transport",
    "V4l2Source",
    "VigilConfig",
    "config_base_dir",
    "default_config",
    "json_schema",
    "load_config",
    "load_config_text",
    "parse_source",
    "plan_stream",
    "reference_markdown",
    "resolve",
]
