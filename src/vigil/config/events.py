"""The ``events`` section: how long the event history is kept and how live clients are served."""

from __future__ import annotations

from pydantic import Field

from vigil.config.base import BaseConfig


class EventsConfig(BaseConfig):
    """The event history (`GET /api/v1/events`) and the live stream (`WS /api/v1/events`)."""

    retention_days: float = Field(
        default=30.0,
        gt=0,
        le=3650,
        description="Stored events older than this are deleted (checked every minute).",
    )
    max_rows: int = Field(
        default=100_000,
        ge=100,
        le=100_000_000,
        description="At most this many events are stored; the oldest go first (checked every "
        "minute, so a burst may briefly exceed it); 100000 rows take about 35 MB.",
    )
    websocket_queue: int = Field(
        default=1000,
        ge=10,
        le=100_000,
        description="Events queued for one WebSocket client; a client that lets more pile up "
        "unread is disconnected (close code 4008) so it never slows Vigil or other clients.",
    )
    heartbeat_s: float = Field(
        default=15.0,
        ge=1,
        le=300,
        description='A WebSocket client that received nothing for this long is sent {"type": '
        '"heartbeat"}, so it can tell a quiet Vigil from a dead connection.',
    )
