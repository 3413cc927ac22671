"""The webrtc section: validation, webrtcbin's ICE URLs, and the Link headers clients get."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from vigil.config.webrtc import WebRtcConfig
from vigil.serve.webrtc.ice import ice_settings, link_headers, resolve_addresses


def _config(**values: object) -> WebRtcConfig:
    return WebRtcConfig.model_validate(values)


def test_servers_become_webrtcbin_urls_and_links() -> None:
    turn = {"url": "turn:turn.example.net:3478?transport=udp", "username": "u s",
            "credential": 'p@ss"word'}  # fmt: skip
    config = _config(
        stun_servers=["stun:stun.example.net"], turn_servers=[turn],
        port_min=40000, port_max=40100, ice_tcp=True, host_addresses=["192.0.2.10", "lo"],
    )  # fmt: skip
    settings = ice_settings(config)
    assert settings.stun_url == "stun://stun.example.net:3478"
    assert settings.turn_urls == ("turn://u%20s:p%40ss%22word@turn.example.net:3478?transport=udp",)
    assert (settings.port_min, settings.port_max, settings.ice_tcp) == (40000, 40100, True)
    assert settings.local_addresses[:2] == ("192.0.2.10", "127.0.0.1")
    assert link_headers(config) == [
        '<stun:stun.example.net>; rel="ice-server"',
        '<turn:turn.example.net:3478?transport=udp>; rel="ice-server"; username="u s"; '
        'credential="p@ss\\"word"; credential-type="password"',
    ]


def test_the_turn_credential_never_shows() -> None:
    config = _config(turn_servers=[{"url": "turns:relay.example", "username": "u",
                                    "credential": "hunter2"}])  # fmt: skip
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.model_dump(mode="json"))


@pytest.mark.parametrize(
    "values",
    [{"stun_servers": ["http://stun.example"]}, {"turn_servers": [{"url": "stun:x"}]},
     {"port_min": 40000}, {"port_min": 50000, "port_max": 40000},
     {"host_addresses": ["not an interface!"]}],
)  # fmt: skip
def test_invalid_settings_are_refused(values: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _config(**values)


def test_unknown_interface_gives_no_address() -> None:
    assert resolve_addresses(["nosuchif0"]) == []
