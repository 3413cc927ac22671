"""The choices and limits the command line offers, copied from the configuration and the store.

Typer reads every command's signature each time `vigil` runs, even for `vigil version`, so the
types named there must not come from `vigil.config` (its package import builds every pydantic
model: about half a second) nor `vigil.store` (SQLAlchemy and Alembic: a second more). The
originals stay the truth; tests/commands/test_choices.py fails when a copy drifts from them.
"""

from __future__ import annotations

from enum import StrEnum

# `vigil.config.streams.STREAM_NAME_PATTERN`
STREAM_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
# `vigil.config.recording.MIN_SEGMENT_SECONDS, MAX_SEGMENT_SECONDS`
MIN_SEGMENT_SECONDS, MAX_SEGMENT_SECONDS = 2, 3600


class LogFormatChoice(StrEnum):
    """`vigil.config.log.LogFormat`."""

    TEXT = "text"
    JSON = "json"


class TransportChoice(StrEnum):
    """`vigil.config.sources.Transport`."""

    TCP = "tcp"
    UDP = "udp"
    AUTO = "auto"


class RoleChoice(StrEnum):
    """`vigil.store.tokens.Role`."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"
