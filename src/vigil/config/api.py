"""The ``api`` section: the address the HTTP API (REST, WebSocket, metrics) listens on."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal

from pydantic import Field, field_validator

from vigil.config.base import BaseConfig

# RFC 1123 host names; all-numeric names are checked as IPv4 instead, so 999.1.1.1 is refused.
_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")

LISTEN_HELP = "use HOST:PORT, e.g. 127.0.0.1:8080, 0.0.0.0:8080 or [::1]:8080"


def split_listen_address(text: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (IPv6 hosts in brackets) into host and port; ``ValueError`` if bad.

    The host comes back without brackets, ready for a socket bind.
    """
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise ValueError(f"IPv6 address needs a closing ']' then ':PORT'; {LISTEN_HELP}")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"'{host}' is not an IPv6 address; {LISTEN_HELP}") from None
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            raise ValueError(f"missing ':PORT'; {LISTEN_HELP}")
        if ":" in host:
            raise ValueError(f"IPv6 addresses must be in brackets; {LISTEN_HELP}")
        _check_host(host)
    if not (port_text.isascii() and port_text.isdigit()) or not 0 <= int(port_text) <= 65535:
        raise ValueError(f"port must be a number 0..65535, got '{port_text}'; {LISTEN_HELP}")
    return host, int(port_text)


def _check_host(host: str) -> None:
    if not host:
        raise ValueError(f"missing host (0.0.0.0 listens on every interface); {LISTEN_HELP}")
    if host.replace(".", "").isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"'{host}' is not an IPv4 address; {LISTEN_HELP}") from None
    elif not _HOST_NAME.fullmatch(host):
        raise ValueError(f"'{host}' is not a host name or address; {LISTEN_HELP}")


_SHA256 = re.compile(r"[0-9a-f]{64}")


class ApiTokenConfig(BaseConfig):
    """A bearer token given in the file, by its SHA-256 (never the token itself)."""

    name: str = Field(min_length=1, max_length=64, description="Shown in logs and audit.")
    role: Literal["viewer", "operator", "admin"] = Field(
        description="viewer: read, snapshots, exports; operator: + start/stop, recording "
        "on/off; admin: + configuration and streams."
    )
    sha256: str = Field(
        description='Hex SHA-256 of the token, e.g. `printf %s "$TOKEN" | sha256sum`.',
    )

    @field_validator("sha256")
    @classmethod
    def _check_hash(cls, value: str) -> str:
        if not _SHA256.fullmatch(value):
            raise ValueError("must be 64 lower-case hex digits (the token's SHA-256)")
        return value


class Listening(BaseConfig):
    """A server section's `listen: HOST:PORT`, checked, and its parts for the bind."""

    listen: str

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        split_listen_address(value)
        return value

    @property
    def host(self) -> str:
        """Host or address to bind (IPv6 without brackets)."""
        return split_listen_address(self.listen)[0]

    @property
    def port(self) -> int:
        """Port to bind (0: any free port)."""
        return split_listen_address(self.listen)[1]


class ApiConfig(Listening):
    """The HTTP API: REST under /api/v1, WebSocket events and Prometheus metrics."""

    listen: str = Field(
        default="127.0.0.1:8080",
        description=(
            "HOST:PORT the API listens on; IPv6 in brackets ([::1]:8080). "
            "0.0.0.0 listens on every interface; port 0 picks a free port. Without any token "
            "(here or from `vigil tokens create`) the API listens on loopback only."
        ),
        json_schema_extra={"examples": ["127.0.0.1:8080", "0.0.0.0:8080", "[::1]:8080"]},
    )
    tokens: list[ApiTokenConfig] = Field(
        default_factory=list,
        description="Bearer tokens, hashed; more can be created with `vigil tokens create`.",
    )
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Origins allowed to call the API from a browser (CORS), e.g. "
        "https://dashboard.example; `*` allows any. Empty: same origin only.",
    )
