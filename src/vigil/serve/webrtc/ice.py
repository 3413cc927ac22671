"""ICE settings from the ``webrtc`` section: for webrtcbin's agent, and for clients' Link headers.

Pure apart from reading the addresses of named interfaces (from the kernel, no GStreamer).
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import socket
import struct
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from vigil.config.webrtc import TurnServerConfig, WebRtcConfig

logger = logging.getLogger(__name__)

_SIOCGIFADDR = 0x8915


@dataclass(frozen=True)
class IceSettings:
    """What each webrtcbin's ICE agent is given. `turn_urls` carry credentials: never log them."""

    stun_url: str | None  # webrtcbin form: stun://host:port
    turn_urls: tuple[str, ...]  # webrtcbin form: turn(s)://user:password@host:port
    local_addresses: tuple[str, ...]
    port_min: int
    port_max: int
    ice_tcp: bool


def ice_settings(config: WebRtcConfig) -> IceSettings:
    """The agent's settings; interface names are resolved to their addresses now."""
    stun = config.stun_servers[0] if config.stun_servers else None
    if len(config.stun_servers) > 1:
        logger.warning("webrtc: GStreamer 1.22 uses one STUN server; using %s", stun)
    return IceSettings(
        stun_url=_gst_stun(stun) if stun else None,
        turn_urls=tuple(_gst_turn(turn) for turn in config.turn_servers),
        local_addresses=tuple(resolve_addresses(config.host_addresses)),
        port_min=config.port_min, port_max=config.port_max, ice_tcp=config.ice_tcp,
    )  # fmt: skip


def _gst_stun(url: str) -> str:
    scheme, _, rest = url.partition(":")
    host, port = _host_port(rest, 3478)
    return f"{scheme}://{host}:{port}"


def _gst_turn(turn: TurnServerConfig) -> str:
    scheme, _, rest = turn.url.partition(":")
    address, _, query = rest.partition("?")
    host, port = _host_port(address, 5349 if scheme == "turns" else 3478)
    user = quote(turn.username, safe="")
    password = quote(turn.credential.get_secret_value(), safe="")
    return f"{scheme}://{user}:{password}@{host}:{port}" + (f"?{query}" if query else "")


def _host_port(text: str, default: int) -> tuple[str, int]:
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        return f"[{host}]", int(port.lstrip(":") or default)
    host, _, port = text.partition(":")
    return host, int(port or default)


def link_headers(config: WebRtcConfig) -> list[str]:
    """``Link: <url>; rel="ice-server"`` values for the configured servers (WHEP/WHIP drafts),
    with TURN credentials: given to authenticated clients only, so they can use the relay."""
    links = [f'<{url}>; rel="ice-server"' for url in config.stun_servers]
    for turn in config.turn_servers:
        link = f'<{turn.url}>; rel="ice-server"'
        if turn.username:
            link += (
                f'; username="{_quoted(turn.username)}"'
                f'; credential="{_quoted(turn.credential.get_secret_value())}"'
                '; credential-type="password"'
            )
        links.append(link)
    return links


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def resolve_addresses(hosts: list[str]) -> list[str]:
    """IP addresses as given; interface names replaced by their IPv4 address and global IPv6
    addresses. An interface without an address is skipped with a warning (it may come up later,
    but an agent is given its addresses when a session starts)."""
    addresses: list[str] = []
    for host in hosts:
        try:
            addresses.append(str(ipaddress.ip_address(host)))
            continue
        except ValueError:
            pass
        found = [*_ipv4_of(host), *_ipv6_of(host)]
        if not found:
            logger.warning("webrtc: interface %s has no address; no candidates from it", host)
        addresses.extend(found)
    return list(dict.fromkeys(addresses))


def _ipv4_of(interface: str) -> list[str]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            request = struct.pack("256s", interface.encode()[:15])
            answer = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
        except OSError:
            return []
    return [socket.inet_ntoa(answer[20:24])]


def _ipv6_of(interface: str) -> list[str]:
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return []
    found = []
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and fields[5] == interface:
            address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
            if not address.is_link_local:
                found.append(str(address))
    return found
