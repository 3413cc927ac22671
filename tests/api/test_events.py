"""Events over real HTTP and WebSocket on loopback: the stored history and the live bus."""

from __future__ import annotations

import asyncio
import json
import secrets
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from prometheus_client import REGISTRY
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.api.conftest import CONFIG_TOKEN, Api
from tests.support.service import until
from vigil.config.events import EventsConfig
from vigil.events import (
    ConfigApplied,
    ConfigRejected,
    Event,
    GapClosed,
    GapOpened,
    SegmentClosed,
    SegmentOpened,
    StreamStateChanged,
)
from vigil.store.events import EventStore

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def _state(stream: str, new: str = "streaming", at: datetime | None = None) -> StreamStateChanged:
    return StreamStateChanged(stream=stream, old="starting", new=new, reason="test",
                              **({"at": at} if at else {}))  # fmt: skip


def _ws_url(api: Api, query: str = "") -> str:
    return api.server.url.replace("http://", "ws://", 1) + "/api/v1/events" + query


@asynccontextmanager
async def _live(api: Api, query: str = "", **options: Any) -> AsyncIterator[ClientConnection]:
    """A client whose subscription is live (its first message, a heartbeat, has arrived)."""
    async with connect(_ws_url(api, query), proxy=None, **options) as client:
        first = json.loads(await asyncio.wait_for(client.recv(), 10))
        assert first["type"] == "heartbeat"
        yield client


async def _events(client: ClientConnection, count: int) -> list[dict[str, Any]]:
    """The next `count` events (heartbeats skipped)."""
    received: list[dict[str, Any]] = []
    async with asyncio.timeout(20):
        while len(received) < count:
            message = json.loads(await client.recv())
            if message["type"] != "heartbeat":
                received.append(message)
    return received


async def _close_code(client: ClientConnection) -> tuple[int, str]:
    """Read until the server closes; the close code and reason it sent."""
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(20):
            while True:
                await client.recv()
    assert closed.value.rcvd is not None, "closed without a close frame"
    return closed.value.rcvd.code, closed.value.rcvd.reason


def _clients() -> float:
    return REGISTRY.get_sample_value("vigil_websocket_clients") or 0.0


def _slow_disconnects() -> float:
    return REGISTRY.get_sample_value("vigil_websocket_slow_disconnects_total") or 0.0


# -- live ------------------------------------------------------------------------------------


async def test_live_events_are_json_filtered_by_type_and_stream(api: Api) -> None:
    published: list[Event] = [
        _state("gate"),
        _state("yard", "stalled"),
        SegmentOpened(stream="gate", segment_id=1, path="/r/gate/1.mp4", start=T0),
        SegmentClosed(
            stream="yard",
            segment_id=2,
            path="/r/yard/2.mp4",
            start=T0,
            end=T0 + timedelta(seconds=60),
            duration_s=60.0,
            size_bytes=1000,
        ),
        GapOpened(stream="yard", gap_id=3, start=T0, reason="camera unreachable"),
        ConfigApplied(source="file", added=("porch",)),
        _state("gate", "stopped"),
        GapClosed(stream="yard", gap_id=3, end=T0),
    ]
    async with (
        _live(api) as everything,
        _live(api, "?type=stream") as states,
        _live(api, "?stream=gate") as gate,
        _live(api, "?type=segment.closed,gap.&stream=yard,porch") as yard,
    ):
        for event in published:
            api.services.bus.publish(event)
        got = await _events(everything, 8)
        assert [e["type"] for e in got] == [
            "stream.state", "stream.state", "segment.opened", "segment.closed", "gap.opened",
            "config.applied", "stream.state", "gap.closed",
        ]  # fmt: skip
        assert got[0] == {"type": "stream.state", "at": got[0]["at"], "stream": "gate",
                          "old": "starting", "new": "streaming", "reason": "test"}  # fmt: skip
        assert datetime.fromisoformat(got[0]["at"]).tzinfo is not None
        assert got[3]["end"] == "2026-11-24T12:01:00Z" and got[3]["duration_s"] == 60.0
        assert got[5] == {"type": "config.applied", "at": got[5]["at"], "source": "file",
                          "added": ["porch"], "removed": [], "changed": []}  # fmt: skip
        assert [(e["stream"], e["new"]) for e in await _events(states, 3)] == [
            ("gate", "streaming"), ("yard", "stalled"), ("gate", "stopped"),
        ]  # fmt: skip
        assert [e["type"] for e in await _events(gate, 3)] == [
            "stream.state", "segment.opened", "stream.state",
        ]  # fmt: skip
        assert [e["type"] for e in await _events(yard, 3)] == [
            "segment.closed", "gap.opened", "gap.closed",
        ]  # fmt: skip


async def test_connected_clients_are_counted_in_a_gauge(api: Api) -> None:
    before = _clients()
    async with _live(api), _live(api):
        assert _clients() == before + 2
    await until(lambda: _clients() == before, timeout=10, message="gauge not decremented")


async def test_a_quiet_bus_sends_heartbeats(api: Api) -> None:
    api.services.events_config = EventsConfig(heartbeat_s=1)
    async with _live(api) as client:
        beat = json.loads(await asyncio.wait_for(client.recv(), 10))
    assert beat["type"] == "heartbeat"
    assert datetime.fromisoformat(beat["at"]).tzinfo is not None


async def test_a_client_that_never_reads_is_dropped_and_others_keep_receiving(api: Api) -> None:
    api.services.events_config = EventsConfig(websocket_queue=50)
    bus = api.services.bus
    chunk, cap = 25, 40_000
    # A small receive buffer, so the stuck client's socket fills after a few megabytes at most
    # (what the server's kernel buffers); random padding, so compression cannot shrink them.
    host, port = urlsplit(api.server.url).hostname, urlsplit(api.server.url).port
    stuck_socket = socket.socket()
    stuck_socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck_socket.setblocking(False)
    await asyncio.get_running_loop().sock_connect(stuck_socket, (host, port))
    slow_before = _slow_disconnects()
    async with _live(api, sock=stuck_socket) as stuck, _live(api) as reader:
        received: list[dict[str, Any]] = []
        total = 0
        # Publish until the stuck client is dropped (and a few chunks beyond), paced by the
        # reader alone: it must get every event while the other one is stuck and after.
        beyond = 4
        while beyond and total < cap:
            for i in range(total, total + chunk):
                padding = secrets.token_hex(2000)
                bus.publish(ConfigRejected(source="file", problems=(str(i), padding)))
            total += chunk
            received += await _events(reader, chunk)
            if _slow_disconnects() > slow_before:
                beyond -= 1
        assert _slow_disconnects() == slow_before + 1, "the stuck client was not disconnected"
        assert [int(e["problems"][0]) for e in received] == list(range(total))
        # Now it reads: what was already in flight, then the close frame.
        in_flight: list[dict[str, Any]] = []
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(20):
                while True:
                    in_flight.append(json.loads(await stuck.recv()))
        assert closed.value.rcvd is not None
        code, reason = closed.value.rcvd.code, closed.value.rcvd.reason
        assert 0 < len(in_flight) < total
        assert code == 4008
        assert "too slow" in reason
        # The reader is still served.
        bus.publish(_state("gate"))
        assert (await _events(reader, 1))[0]["type"] == "stream.state"


# -- auth and bad requests -------------------------------------------------------------------


async def test_a_websocket_without_a_valid_token_is_closed_with_4401(secured_api: Api) -> None:
    api = secured_api
    for query in ("", "?token=vgl_wrong"):
        async with connect(_ws_url(api, query), proxy=None) as client:
            code, reason = await _close_code(client)
        assert code == 4401, query
        assert "token" in reason


@pytest.mark.parametrize("how", ["header", "query", "subprotocol"])
async def test_a_websocket_token_may_come_in_three_ways(secured_api: Api, how: str) -> None:
    api = secured_api
    options: dict[str, Any] = {
        "header": {"additional_headers": api.as_(CONFIG_TOKEN)},
        "query": {},
        "subprotocol": {"subprotocols": ["vigil", f"bearer.{CONFIG_TOKEN}"]},
    }[how]
    query = f"?token={CONFIG_TOKEN}" if how == "query" else ""
    async with _live(api, query, **options) as client:
        if how == "subprotocol":
            assert client.subprotocol == "vigil"
        api.services.bus.publish(_state("gate"))
        assert (await _events(client, 1))[0]["stream"] == "gate"


async def test_a_bad_filter_is_closed_with_4400(api: Api) -> None:
    async with connect(_ws_url(api, "?stream=../etc"), proxy=None) as client:
        code, reason = await _close_code(client)
    assert (code, reason) == (4400, "stream: '../etc' is not a valid name")


# -- history -------------------------------------------------------------------------------------


def _store(api: Api, events: list[Event]) -> None:
    EventStore(api.services.db).append(events)


async def test_stored_events_are_listed_newest_first_with_filters(api: Api) -> None:
    _store(api, [
        _state("gate", at=T0),
        _state("yard", "stalled", at=T0 + timedelta(seconds=1)),
        GapOpened(stream="yard", gap_id=1, start=T0, reason="x", at=T0 + timedelta(seconds=2)),
        ConfigApplied(source="api", changed=("gate",), at=T0 + timedelta(seconds=3)),
        _state("gate", "stopped", at=T0 + timedelta(seconds=4)),
    ])  # fmt: skip

    async def listed(query: str) -> list[tuple[str, str | None]]:
        response = await api.client.get("/api/v1/events" + query)
        assert response.status_code == 200, response.text
        return [(e["type"], e.get("stream")) for e in response.json()["events"]]

    assert await listed("") == [
        ("stream.state", "gate"), ("config.applied", None), ("gap.opened", "yard"),
        ("stream.state", "yard"), ("stream.state", "gate"),
    ]  # fmt: skip
    assert await listed("?type=stream") == [("stream.state", "gate"), ("stream.state", "yard"),
                                            ("stream.state", "gate")]  # fmt: skip
    assert await listed("?type=gap.opened,config&stream=yard") == [("gap.opened", "yard")]
    assert await listed("?stream=gate") == [("stream.state", "gate"), ("stream.state", "gate")]
    since, until_ = "2026-11-24T12:00:01Z", "2026-11-24T12:00:03%2B00:00"
    assert await listed(f"?since={since}&until={until_}") == [("gap.opened", "yard"),
                                                             ("stream.state", "yard")]  # fmt: skip
    body = (await api.client.get("/api/v1/events?limit=1")).json()
    assert (
        body["events"][0]["new"] == "stopped" and body["events"][0]["at"] == "2026-11-24T12:00:04Z"
    )


async def test_stored_events_are_paged_with_next(api: Api) -> None:
    _store(api, [_state(f"cam{i}", at=T0 + timedelta(seconds=i)) for i in range(7)])
    seen: list[str] = []
    url: str | None = "/api/v1/events?type=stream.state&limit=3"
    pages = 0
    while url is not None:
        response = await api.client.get(url)
        body = response.json()
        seen += [e["stream"] for e in body["events"]]
        url = body["next"]
        if url is not None:
            assert response.headers["link"] == f'<{url}>; rel="next"'
            assert "type=stream.state" in url
        pages += 1
    assert seen == [f"cam{i}" for i in reversed(range(7))]
    assert pages == 3


@pytest.mark.parametrize(
    "query",
    ["?since=2026-11-24T12:00:00", "?type=a%20b", "?stream=..%2Fetc", "?limit=0", "?limit=1001",
     "?before=0", "?stream=" + ",".join(f"s{i}" for i in range(51))],
)  # fmt: skip
async def test_bad_history_queries_are_422(api: Api, query: str) -> None:
    response = await api.client.get("/api/v1/events" + query)
    assert response.status_code == 422, query
    assert response.json()["error"]["code"] == "invalid_request"


async def test_history_needs_a_token_once_tokens_exist(secured_api: Api) -> None:
    assert (await secured_api.client.get("/api/v1/events")).status_code == 401
    allowed = await secured_api.client.get("/api/v1/events", headers=secured_api.as_(CONFIG_TOKEN))
    assert allowed.status_code == 200 and allowed.json() == {"events": [], "next": None}
