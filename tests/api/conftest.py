"""The API served for real (uvicorn on loopback, port 0) over a real database, with the stream
manager replaced by a table of statuses: these tests need no GStreamer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import httpx
import pytest

from vigil.api.app import create_api
from vigil.api.server import ApiServer
from vigil.api.services import ApiServices
from vigil.config.loader import load_config_text
from vigil.events import EventBus, utc_now
from vigil.store.db import Database
from vigil.store.holds import HoldStore
from vigil.store.overlay import OverlayStore
from vigil.store.recordings import GapStore, SegmentStore
from vigil.store.tokens import Role, TokenStore, hash_token
from vigil.streams.desired import DesiredState
from vigil.streams.state import StreamState
from vigil.streams.status import StreamStatus

CONFIG_TOKEN = "vgl_from-the-config-file"
T = TypeVar("T")


@dataclass
class FakeStreams:
    """A StreamsView over a dict."""

    items: dict[str, StreamStatus] = field(default_factory=dict)

    def statuses(self) -> list[StreamStatus]:
        return list(self.items.values())

    def status(self, name: str) -> StreamStatus | None:
        return self.items.get(name)

    async def snapshot(self, name: str) -> bytes | None:
        return None  # no pipelines here: tests/integration/test_api_recordings.py has real ones


def status(name: str, state: StreamState = StreamState.STREAMING) -> StreamStatus:
    return StreamStatus(name, state, "receiving video", datetime(2026, 11, 24, tzinfo=UTC),
                        "rtsp/tcp", 2, 5)  # fmt: skip


@dataclass
class Api:
    """A served API and a client for it."""

    server: ApiServer
    client: httpx.AsyncClient
    services: ApiServices
    streams: FakeStreams
    tokens: TokenStore

    def as_(self, token: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}


FILE = """\
streams:
  - {name: gate, source: "rtsp://admin:secret@192.0.2.10:554/stream1", transport: tcp}
  - {name: yard, source: "test://ball?size=320x240"}
"""


async def _write(fn: Callable[[], T]) -> T:
    return await asyncio.to_thread(fn)


async def serve(
    tmp_path: Path,
    configured: dict[str, tuple[str, Role]],
    *,
    cors_origins: list[str] | None = None,
) -> AsyncIterator[Api]:
    db = Database(tmp_path / "vigil.db")
    db.migrate()
    streams = FakeStreams({"gate": status("gate"), "yard": status("yard", StreamState.STALLED)})
    bus = EventBus()
    desired = DesiredState(
        file_config=load_config_text(FILE, env={}), config_path=None, base_dir=tmp_path,
        env={}, store=OverlayStore(db), write=_write, bus=bus,
    )  # fmt: skip
    await desired.load()
    services = ApiServices(
        bus=bus, db=db, segments=SegmentStore(db), gaps=GapStore(db),
        tokens=TokenStore(db), streams=streams, version="0.test", gstreamer_version="1.22.0",
        started_at=utc_now(), ready=lambda: True, desired=desired, holds=HoldStore(db),
    )  # fmt: skip
    server = ApiServer(
        create_api(services, configured_tokens=configured, cors_origins=cors_origins),
        "127.0.0.1",
        0,
    )
    await server.start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            yield Api(server, client, services, streams, services.tokens)
    finally:
        await server.stop()
        db.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """No token anywhere: open access (Vigil then listens on loopback only)."""
    async for served in serve(tmp_path, {}):
        yield served


@pytest.fixture
async def secured_api(tmp_path: Path) -> AsyncIterator[Api]:
    """One token in the configuration file (operator); more can be created in the DB."""
    async for served in serve(tmp_path, {hash_token(CONFIG_TOKEN): ("ops", Role.OPERATOR)}):
        yield served
