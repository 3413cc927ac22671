"""Run Vigil in the test's own event loop, against real pipelines, files and SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from vigil.app import Vigil
from vigil.config import load_config_text, resolve
from vigil.events import SegmentClosed

# The API and the RTSP server on free loopback ports: tests never fight over 8080 or 8554.
TEST_PORTS = {"VIGIL_API__LISTEN": "127.0.0.1:0", "VIGIL_RTSP__LISTEN": "127.0.0.1:0"}


@asynccontextmanager
async def running_vigil(yaml_text: str, base_dir: Path) -> AsyncIterator[Vigil]:
    """Start Vigil with this configuration; stop it (finishing segments) on exit."""
    config = load_config_text(yaml_text, env=TEST_PORTS)
    vigil = Vigil(resolve(config, base_dir=base_dir))
    await vigil.start()
    try:
        yield vigil
    finally:
        await vigil.stop()


async def until(predicate: Callable[[], bool], timeout: float, message: str = "") -> None:
    """Poll `predicate` on the loop until it holds; fail after `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(message or f"condition not met within {timeout} s") from None


async def until_async(
    predicate: Callable[[], Awaitable[bool]], timeout: float, message: str = ""
) -> None:
    """Await `predicate` until it holds (an API call, say); fail after `timeout` seconds."""
    try:
        async with asyncio.timeout(timeout):
            while not await predicate():
                await asyncio.sleep(0.3)
    except TimeoutError:
        raise AssertionError(message or f"condition not met within {timeout} s") from None


class ClosedSegments:
    """Counts SegmentClosed events per stream from a bus subscription."""

    def __init__(self, vigil: Vigil) -> None:
        assert vigil.bus is not None
        self._sub = vigil.bus.subscribe(lambda e: isinstance(e, SegmentClosed))
        self.by_stream: dict[str, list[SegmentClosed]] = {}

    def poll(self) -> dict[str, list[SegmentClosed]]:
        while (event := self._sub.get_nowait()) is not None:
            assert isinstance(event, SegmentClosed)
            self.by_stream.setdefault(event.stream, []).append(event)
        return self.by_stream

    def at_least(self, streams: list[str], count: int) -> bool:
        counts = self.poll()
        return all(len(counts.get(name, [])) >= count for name in streams)
