"""Desired state for real: the configuration file edited while streams record, and streams
added through the API surviving a restart."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.service import TEST_PORTS, ClosedSegments, until
from vigil.app import Vigil
from vigil.config.loader import config_base_dir, load_config
from vigil.config.resolve import resolve
from vigil.events import ConfigApplied, ConfigRejected
from vigil.store.db import Database
from vigil.store.recordings import GapStore, SegmentRow, SegmentStore
from vigil.streams.state import StreamState

pytestmark = pytest.mark.integration

KEEP = ("keep1", "keep2", "keep3")
FPS = 10


def _stream(name: str, size: str = "160x120") -> str:
    return f'  - {{name: {name}, source: "test://ball?size={size}&fps={FPS}"}}\n'


def _write(path: Path, streams: str, segment_seconds: int = 3) -> None:
    path.write_text(
        f"data_dir: ./data\nrecording: {{segment_seconds: {segment_seconds}}}\nstreams:\n{streams}"
    )


@asynccontextmanager
async def _vigil(config: Path) -> AsyncIterator[Vigil]:
    resolved = resolve(load_config(config, env=TEST_PORTS),
                       base_dir=config_base_dir(config))  # fmt: skip
    vigil = Vigil(resolved, config_path=config)
    await vigil.start()
    try:
        yield vigil
    finally:
        await vigil.stop()


def _segments(tmp_path: Path, name: str) -> list[SegmentRow]:
    with Database(tmp_path / "data" / "vigil.db") as db:
        rows = SegmentStore(db).list_segments(limit=100_000)
    return sorted((r for r in rows if r.stream == name), key=lambda r: r.start)


def _gaps(tmp_path: Path, name: str) -> list[object]:
    with Database(tmp_path / "data" / "vigil.db") as db:
        return [g for g in GapStore(db).list_gaps() if g.stream == name]


async def test_editing_the_file_changes_only_what_changed(tmp_path: Path) -> None:
    config = tmp_path / "vigil.yml"
    others = _stream("change") + _stream("remove")
    _write(config, "".join(_stream(n) for n in KEEP) + others)
    async with _vigil(config) as vigil:
        assert vigil.bus is not None and vigil.streams is not None
        changes = vigil.bus.subscribe(lambda e: isinstance(e, ConfigApplied | ConfigRejected))
        closed = ClosedSegments(vigil)
        await until(lambda: closed.at_least([*KEEP, "change", "remove"], 1), timeout=60)
        before = {name: vigil.streams.status(name) for name in KEEP}

        # Add one, change one, remove one: the three others must not notice.
        _write(config, "".join(_stream(n) for n in KEEP) + _stream("change", "176x144")
               + _stream("added"))  # fmt: skip
        applied = await changes.get()
        assert isinstance(applied, ConfigApplied), applied
        assert (applied.source, applied.added, applied.removed, applied.changed) == (
            "file", ("added",), ("remove",), ("change",))  # fmt: skip
        await until(lambda: closed.at_least(["added"], 1), timeout=60)
        assert vigil.streams.status("remove") is None

        # An invalid edit is refused; everything keeps running as it was.
        config.write_text(config.read_text().replace("test://ball", "ftp://ball", 1))
        rejected = await changes.get()
        assert isinstance(rejected, ConfigRejected), rejected
        assert any("streams[0].source" in p for p in rejected.problems), rejected.problems
        assert vigil.desired is not None and vigil.desired.stream("keep1") is not None
        count = {name: len(closed.poll().get(name, [])) for name in KEEP}
        await until(lambda: all(len(closed.poll().get(n, [])) >= count[n] + 2 for n in KEEP),
                    timeout=60)  # fmt: skip
        for name in KEEP:
            now, then = vigil.streams.status(name), before[name]
            assert now is not None and then is not None
            assert now.state is StreamState.STREAMING
            assert now.transitions == then.transitions  # never restarted

    for name in KEEP:
        assert _gaps(tmp_path, name) == [], name
        segments = _segments(tmp_path, name)
        for earlier, later in itertools.pairwise(segments[:-1]):
            assert earlier.end is not None
            assert abs((later.start - earlier.end).total_seconds()) < 2 / FPS, name
    changed = _segments(tmp_path, "change")
    assert {(r.width, r.height) for r in changed} == {(160, 120), (176, 144)}


async def test_a_stream_added_through_the_api_survives_a_restart(tmp_path: Path) -> None:
    config = tmp_path / "vigil.yml"
    _write(config, _stream("file-cam"))
    async with _vigil(config) as vigil:
        assert vigil.api is not None
        async with httpx.AsyncClient(base_url=vigil.api.url, timeout=30) as client:
            created = await client.post("/api/v1/streams", json={
                "name": "api-cam", "source": f"test://ball?size=160x120&fps={FPS}"})  # fmt: skip
            assert created.status_code == 201, created.text
            deleted = await client.delete("/api/v1/streams/file-cam")
            assert deleted.status_code == 204
        closed = ClosedSegments(vigil)
        await until(lambda: closed.at_least(["api-cam"], 1), timeout=60)

    async with _vigil(config) as vigil:
        assert vigil.streams is not None and vigil.api is not None
        assert [s.name for s in vigil.streams.statuses()] == ["api-cam"]
        closed = ClosedSegments(vigil)
        await until(lambda: closed.at_least(["api-cam"], 1), timeout=60)
        async with httpx.AsyncClient(base_url=vigil.api.url, timeout=30) as client:
            listed = (await client.get("/api/v1/streams")).json()
            status = (await client.get("/api/v1/status")).json()
    assert [(s["name"], s["origin"]) for s in listed] == [("api-cam", "api")]
    # The status carries `vigil doctor`'s report: this machine has every required element.
    assert status["plugins"]["ok"] is True and status["plugins"]["missing_elements"] == []
    assert status["streams"]["total"] == 1
