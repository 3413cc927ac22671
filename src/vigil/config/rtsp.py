"""The ``rtsp`` section: the RTSP server that re-serves every stream and takes RTSP publishers."""

from __future__ import annotations

from pydantic import Field, field_validator

from vigil.config.api import split_listen_address
from vigil.config.base import BaseConfig


class RtspServerConfig(BaseConfig):
    """Where and how streams are served at ``rtsp://host:port/<stream>``."""

    enabled: bool = Field(default=True, description="Serve every stream over RTSP.")
    listen: str = Field(
        default="0.0.0.0:8554",
        description="HOST:PORT the RTSP server listens on (port 0: any free port).",
    )

    @field_validator("listen")
    @classmethod
    def _valid_listen(cls, value: str) -> str:
        split_listen_address(value)
        return value

    @property
    def host(self) -> str:
        """The address to bind (without IPv6 brackets)."""
        return split_listen_address(self.listen)[0]

    @property
    def port(self) -> int:
        """The port to bind (0: any free port)."""
        return split_listen_address(self.listen)[1]
