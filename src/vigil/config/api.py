"""The ``api`` section: the address the HTTP API (REST, WebSocket, metrics) listens on."""

from __future__ import annotations

import ipaddress
import re

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
    if not (port_text.isascii() and port_text.isdigit()) or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"port must be a number 1..65535, got '{port_text}'; {LISTEN_HELP}")
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


class ApiConfig(BaseConfig):
    """The HTTP API: REST under /api/v1, WebSocket events and Prometheus metrics."""

    listen: str = Field(
        default="127.0.0.1:8080",
        description=(
            "HOST:PORT the API listens on; IPv6 in brackets ([::1]:8080). "
            "0.0.0.0 listens on every interface."
        ),
        json_schema_extra={"examples": ["127.0.0.1:8080", "0.0.0.0:8080", "[::1]:8080"]},
    )

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
        """TCP port to bind."""
        return split_listen_address(self.listen)[1]
