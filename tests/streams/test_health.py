"""Health checks: the flow watchdog's decisions, camera addresses, and the reachability probe."""

from __future__ import annotations

import asyncio

import pytest

from vigil.config import parse_source
from vigil.streams.health import FlowWatch, camera_address, looks_unreachable, reachable


def test_flow_watch_stalls_only_after_the_timeout_without_change() -> None:
    watch = FlowWatch(5.0)
    assert not watch.stalled((1, 90000), 100.0)
    assert not watch.stalled((1, 90000), 104.9)
    assert watch.stalled((1, 90000), 105.0)


def test_flow_watch_any_change_restarts_the_count() -> None:
    watch = FlowWatch(5.0)
    for second, token in enumerate([1, 2, 2, 2, 2, 3, 3, 3, 3, 3]):
        assert not watch.stalled(token, float(second))
    assert watch.stalled(3, 10.0)
    watch.reset(None)
    assert not watch.stalled(3, 11.0)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://u:p@cam.example:8554/x", ("cam.example", 8554)),
        ("rtsp://10.0.0.5/live", ("10.0.0.5", 554)),
        ("rtsps://10.0.0.5/live", ("10.0.0.5", 322)),
        ("rtsp://[::1]:9000/x", ("::1", 9000)),
    ],
)
def test_camera_address(url: str, expected: tuple[str, int]) -> None:
    assert camera_address(parse_source(url)) == expected


def test_non_network_sources_have_no_address() -> None:
    assert camera_address(parse_source("test://ball")) is None


@pytest.mark.parametrize(
    ("reason", "unreachable"),
    [
        ("connect rtsp://127.0.0.1:9/x: connection refused by 127.0.0.1:9", True),
        ("Could not open resource for reading and writing. (Failed to connect.)", True),
        ("the source ended the stream", True),
        ("DESCRIBE rtsp://u:***@h/x: 401 Unauthorized", False),
        ("camera sends MP4V-ES video; Vigil records H264 and H265", False),
    ],
)
def test_unreachable_reasons(reason: str, unreachable: bool) -> None:
    assert looks_unreachable(reason) is unreachable


async def test_reachable_tells_an_open_port_from_a_closed_one() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert await reachable("127.0.0.1", port, timeout=2)
    assert not await reachable("127.0.0.1", port, timeout=2)
