"""`Vigil.start()` records first: the services that follow the streams (API, RTSP/WebRTC,
detection) start once every stream records or has shown that it cannot yet, so by the time
start() returns a stream that can record is recording, and one that cannot (no camera there)
did not hold the others up until the head start ran out."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import httpx
import pytest

from tests.support.service import running_vigil
from vigil.streams.state import StreamState

pytestmark = pytest.mark.integration

PATTERN = "test://ball?size=160x120&fps=10&bitrate=100"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens there once the socket is closed


async def test_streams_record_before_the_other_services_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = (
        f"data_dir: {tmp_path / 'data'}\n"
        f'streams:\n  - {{name: pattern, source: "{PATTERN}"}}\n'
        f'  - {{name: away, source: "rtsp://127.0.0.1:{_closed_port()}/cam", transport: tcp}}\n'
        f'  - {{name: unrecorded, source: "{PATTERN}", record: false}}\n'
    )
    with caplog.at_level(logging.INFO, logger="vigil.app"):
        async with running_vigil(config, tmp_path) as vigil:
            assert vigil.index is not None and vigil.streams is not None
            assert vigil.api is not None
            # Recording was under way before the API was started...
            assert "pattern" in vigil.index.writing().values()
            # ...and the camera that is not there ended the wait by failing, not by time.
            away = vigil.streams.status("away")
            assert away is not None and away.state is not StreamState.STREAMING
            assert "not recording yet" not in caplog.text
            async with httpx.AsyncClient(base_url=vigil.api.url, timeout=10) as client:
                streams = (await client.get("/api/v1/streams")).json()
            assert {stream["name"] for stream in streams} == {"pattern", "away", "unrecorded"}
