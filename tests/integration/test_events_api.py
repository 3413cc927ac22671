"""Events of a running Vigil with a simulated camera: live over a WebSocket, stored for GET."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support.media import simulator
from tests.support.service import running_vigil, until
from vigil.streams.state import StreamState

pytestmark = pytest.mark.integration


async def test_a_stream_stopped_and_started_is_seen_live_and_stored(tmp_path: Path) -> None:
    with simulator(cameras=2, size="320x240", fps=10, bitrate=200) as (port, _process):
        config = (
            f"data_dir: {tmp_path / 'data'}\nstreams:\n"
            f'  - {{name: cam1, source: "rtsp://127.0.0.1:{port}/cam1", transport: tcp}}\n'
            f'  - {{name: cam2, source: "rtsp://127.0.0.1:{port}/cam2", transport: tcp}}\n'
        )
        async with running_vigil(config, tmp_path) as vigil:
            assert vigil.streams is not None and vigil.api is not None
            streams = vigil.streams

            def streaming(name: str) -> bool:
                status = streams.status(name)
                return status is not None and status.state is StreamState.STREAMING

            await until(lambda: streaming("cam1") and streaming("cam2"), timeout=60)
            url = vigil.api.url.replace("http://", "ws://", 1) + "/api/v1/events"
            async with (
                connect(f"{url}?type=stream&stream=cam1", proxy=None) as cam1,
                connect(f"{url}?stream=cam2", proxy=None) as cam2,
            ):
                for client in (cam1, cam2):  # subscribed once the first heartbeat is here
                    assert json.loads(await asyncio.wait_for(client.recv(), 10))["type"] == (
                        "heartbeat"
                    )
                await streams.stop_stream("cam1")
                plan = vigil.config.stream("cam1")
                assert plan is not None
                streams.start([plan])
                changes: list[dict[str, Any]] = []
                async with asyncio.timeout(60):
                    while not changes or changes[-1]["new"] != "streaming":
                        message = json.loads(await cam1.recv())
                        if message["type"] != "heartbeat":
                            changes.append(message)
                # The other stream's client heard nothing of it (its next message, if any, is
                # a heartbeat or about cam2).
                with pytest.raises(TimeoutError):
                    async with asyncio.timeout(0.5):
                        while True:
                            other = json.loads(await cam2.recv())
                            assert other["type"] == "heartbeat" or other["stream"] == "cam2"

            assert {c["type"] for c in changes} == {"stream.state"}
            assert {c["stream"] for c in changes} == {"cam1"}
            steps = [(c["old"], c["new"]) for c in changes]
            assert steps[0] == ("streaming", "stopped")
            assert ("stopped", "starting") in steps
            assert steps[-1][1] == "streaming"

            # The same changes reach the stored history (newest first) within a flush.
            async with httpx.AsyncClient(base_url=vigil.api.url, timeout=10) as http:

                async def stored() -> list[tuple[str, str]]:
                    response = await http.get(
                        "/api/v1/events", params={"type": "stream.state", "stream": "cam1"}
                    )
                    assert response.status_code == 200, response.text
                    return [(e["old"], e["new"]) for e in response.json()["events"]]

                history: list[tuple[str, str]] = []
                async with asyncio.timeout(10):
                    while history[: len(steps)] != steps[::-1]:
                        await asyncio.sleep(0.2)
                        history = await stored()
                # Before them: cam1 starting with Vigil, stored from the start.
                assert ("stopped", "starting") in history[len(steps) :]
