"""The ``rtsp`` section: the RTSP server that re-serves every stream and takes RTSP publishers."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from vigil.config.api import Listening
from vigil.config.base import BaseConfig
from vigil.config.streams import STREAM_NAME_PATTERN

ALL_STREAMS = "*"
_STREAM_OR_ALL = re.compile(STREAM_NAME_PATTERN.replace("^", "^(\\*|").replace("$", ")$"))
_USER_NAME = re.compile(r"[A-Za-z0-9._@-]{1,64}")


RtspAuthMethod = Literal["basic", "digest"]


def _both_methods() -> list[RtspAuthMethod]:
    return ["basic", "digest"]


def _check_streams(names: list[str]) -> list[str]:
    for name in names:
        if not _STREAM_OR_ALL.fullmatch(name):
            raise ValueError(f"{name!r} is neither a stream name nor '*' (every stream)")
    return names


class RtspUserConfig(BaseConfig):
    """An RTSP-only account (Basic or Digest), for NVRs and publishers that take a user name."""

    name: str = Field(description="User name (letters, digits, . _ @ -).")
    password: SecretStr = Field(
        description="Password; never logged, and shown masked by the configuration API."
    )
    read: list[str] = Field(
        default_factory=list,
        description="Streams this user may play (names, or `*` for every stream).",
        json_schema_extra={"examples": [["*"], ["gate", "yard"]]},
    )
    publish: list[str] = Field(
        default_factory=list,
        description="Streams (whose source is `publish`) this user may publish into "
        "(names, or `*`).",
    )

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _USER_NAME.fullmatch(value):
            raise ValueError("a user name is 1-64 letters, digits, '.', '_', '@' or '-'")
        return value

    @field_validator("password")
    @classmethod
    def _valid_password(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("a password must not be empty")
        return value

    @field_validator("read", "publish")
    @classmethod
    def _valid_streams(cls, value: list[str]) -> list[str]:
        return _check_streams(value)


class RtspServerConfig(Listening):
    """Where and how streams are served at ``rtsp://host:port/<stream>``."""

    enabled: bool = Field(default=True, description="Serve every stream over RTSP.")
    listen: str = Field(
        default="0.0.0.0:8554",
        description="HOST:PORT the RTSP server listens on (port 0: any free port). Without "
        "any credential (no API token, no RTSP user) it listens on loopback only.",
    )
    users: list[RtspUserConfig] = Field(
        default_factory=list,
        description="RTSP accounts with per-stream read/publish rights. API tokens also work "
        "as the Basic password (any user name): viewer may read, operator and admin may also "
        "publish.",
    )
    anonymous_read: list[str] = Field(
        default_factory=list,
        description="Streams anyone may play without credentials (names, or `*`).",
    )
    auth_methods: list[RtspAuthMethod] = Field(
        default_factory=_both_methods,
        min_length=1,
        description="Challenges offered to clients. Digest is offered only while `users` "
        "exist; clients that see a Digest challenge (ffmpeg, GStreamer) answer with Digest, "
        "which API tokens cannot use: list only `basic` to log in with tokens from such "
        "clients while users exist.",
    )
    tls_certificate: Path | None = Field(
        default=None,
        description="PEM certificate (chain): the server then speaks RTSPS (RTSP over TLS) only.",
    )
    tls_key: Path | None = Field(default=None, description="PEM private key of the certificate.")
    session_timeout_s: int = Field(
        default=60, ge=5, le=3600,
        description="A session with no sign of its client (RTSP keep-alive or RTCP) this long "
        "ends.",
    )  # fmt: skip
    multicast: bool = Field(
        default=False,
        description="Let clients ask for RTP multicast (one copy on the network for all of "
        "them), from the address and port ranges below.",
    )
    multicast_address_min: str = Field(
        default="239.255.42.1", description="Lowest multicast address handed out."
    )
    multicast_address_max: str = Field(
        default="239.255.42.254", description="Highest multicast address handed out."
    )
    multicast_port_min: int = Field(
        default=40000, ge=1024, le=65534, description="Lowest multicast UDP port."
    )
    multicast_port_max: int = Field(
        default=40999, ge=1025, le=65535, description="Highest multicast UDP port."
    )
    multicast_ttl: int = Field(
        default=16, ge=1, le=255, description="Multicast time-to-live (router hops)."
    )

    @field_validator("anonymous_read")
    @classmethod
    def _valid_anonymous(cls, value: list[str]) -> list[str]:
        return _check_streams(value)

    @field_validator("multicast_address_min", "multicast_address_max")
    @classmethod
    def _multicast(cls, value: str) -> str:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an IP address") from None
        if not address.is_multicast:
            raise ValueError(f"{value} is not a multicast address (224.0.0.0/4, ff00::/8)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        low = ipaddress.ip_address(self.multicast_address_min)
        high = ipaddress.ip_address(self.multicast_address_max)
        if low.version != high.version or int(low) > int(high):
            raise ValueError("multicast_address_min must not be above multicast_address_max")
        if self.multicast_port_min >= self.multicast_port_max:
            raise ValueError("multicast_port_min must be below multicast_port_max")
        if (self.tls_certificate is None) != (self.tls_key is None):
            raise ValueError("set both tls_certificate and tls_key (or neither)")
        names = [user.name for user in self.users]
        if len(names) != len(set(names)):
            raise ValueError("RTSP user names must be unique")
        return self
