"""The ``log`` section: how much Vigil logs and in which format."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from vigil.config.base import BaseConfig


class LogLevel(StrEnum):
    """Lowest severity that is logged."""

    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class LogFormat(StrEnum):
    """``text`` for people reading a terminal or journal, ``json`` for log collectors."""

    TEXT = "text"
    JSON = "json"


class LogConfig(BaseConfig):
    """Logging of the whole service."""

    level: LogLevel = Field(default=LogLevel.INFO, description="Lowest severity that is logged.")
    format: LogFormat = Field(
        default=LogFormat.TEXT,
        description="text: one readable line per record; json: one JSON object per line.",
    )
