"""The ``webrtc`` section: WHEP playback and WHIP ingest on the API's HTTP server."""

from __future__ import annotations

import ipaddress
import re
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator

from vigil.config.base import BaseConfig

# RFC 7064/7065 URIs as WHEP/WHIP clients expect them in Link headers (and browsers in
# RTCIceServer.urls): stun:host[:port], turn(s):host[:port][?transport=udp|tcp].
_STUN_URL = re.compile(r"^stuns?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")
_TURN_URL = re.compile(
    r"^turns?:(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?(\?transport=(udp|tcp))?$"
)
_INTERFACE = re.compile(r"^[A-Za-z0-9_.:-]{1,15}$")


class TurnServerConfig(BaseConfig):
    """A TURN relay: used by Vigil's ICE agent, and offered to clients in ``Link`` headers."""

    url: str = Field(
        description="turn:host[:port][?transport=udp|tcp] or turns:host[:port] (TLS).",
        json_schema_extra={"examples": ["turn:turn.example.net:3478?transport=udp"]},
    )
    username: str = Field(default="", max_length=256, description="TURN user name.")
    credential: SecretStr = Field(
        default=SecretStr(""),
        description="TURN password; never logged, and shown masked by the configuration API.",
    )

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        if not _TURN_URL.fullmatch(value):
            raise ValueError(
                "a TURN server URL looks like turn:host:3478?transport=udp or turns:host:5349"
            )
        return value


class WebRtcConfig(BaseConfig):
    """WebRTC sessions: ICE servers, interfaces and ports."""

    enabled: bool = Field(default=True, description="Serve WHEP playback and WHIP ingest.")
    stun_servers: list[str] = Field(
        default_factory=list,
        description="STUN servers (stun:host[:port]) Vigil gathers server-reflexive candidates "
        "from (only the first is used by GStreamer 1.22); also offered to clients.",
        json_schema_extra={"examples": [["stun:stun.example.net:3478"]]},
    )
    turn_servers: list[TurnServerConfig] = Field(
        default_factory=list,
        description="TURN relays for peers that cannot reach Vigil directly; offered to "
        "authenticated WHEP/WHIP clients in Link headers (with their credentials).",
    )
    host_addresses: list[str] = Field(
        default_factory=list,
        description="Where host candidates come from: IP addresses or interface names "
        "(e.g. eth0). Empty: every interface except loopback.",
        json_schema_extra={"examples": [["eth0"], ["192.0.2.10"]]},
    )
    port_min: int = Field(
        default=0, ge=0, le=65535,
        description="Lowest local UDP port for ICE (0: any). Each session uses one port.",
    )  # fmt: skip
    port_max: int = Field(
        default=0, ge=0, le=65535, description="Highest local UDP port for ICE (0: any)."
    )
    ice_tcp: bool = Field(
        default=False,
        description="Also offer ICE-TCP candidates (for clients behind UDP-blocking firewalls).",
    )
    max_viewers: int = Field(
        default=0, ge=0, le=10000,
        description="WHEP viewers allowed per stream (0: no limit); more are refused with 503.",
    )  # fmt: skip
    answer_timeout_s: float = Field(
        default=5.0, gt=0, le=60,
        description="Longest wait for ICE gathering before answering with the candidates "
        "found so far (an unreachable STUN/TURN server must not hang the request).",
    )  # fmt: skip
    connect_timeout_s: float = Field(
        default=30.0, gt=0, le=600,
        description="A session that does not connect (ICE and DTLS) within this time ends.",
    )  # fmt: skip
    disconnect_timeout_s: float = Field(
        default=10.0, gt=0, le=600,
        description="A session whose peer stays unreachable (ICE disconnected) this long ends; "
        "one whose ICE or DTLS fails ends at once.",
    )  # fmt: skip

    @field_validator("stun_servers")
    @classmethod
    def _valid_stun(cls, urls: list[str]) -> list[str]:
        for url in urls:
            if not _STUN_URL.fullmatch(url):
                raise ValueError(f"a STUN server URL looks like stun:host:3478, got {url!r}")
        return urls

    @field_validator("host_addresses")
    @classmethod
    def _valid_hosts(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                if not _INTERFACE.fullmatch(host):
                    raise ValueError(
                        f"{host!r} is neither an IP address nor an interface name"
                    ) from None
        return hosts

    @model_validator(mode="after")
    def _valid_ports(self) -> Self:
        if (self.port_min == 0) != (self.port_max == 0):
            raise ValueError("set both port_min and port_max (or neither)")
        if self.port_min > self.port_max:
            raise ValueError("port_min must not be above port_max")
        return self
