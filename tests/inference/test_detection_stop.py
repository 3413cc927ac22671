"""Objects still in view when detection stops end with an `object.left` (reason "stopped").

Detection turned off over the API, and Vigil stopping, each end every tracked object like a
departure: the event is stored with its best snapshot, carries `reason: "stopped"`, and the
event keeper holds the recording around it. Real pipelines, files and SQLite; the detector is
a stand-in that sees one person in every frame (the model is the subject of other tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.service import running_vigil, until_async
from tests.support.shared import models_dir
from vigil.events import ObjectLeft, event_to_dict
from vigil.inference.backend import Detector
from vigil.inference.types import Box, Detection, Image
from vigil.store.db import Database
from vigil.store.events import EventQuery, EventStore
from vigil.store.holds import HoldStore

pytestmark = pytest.mark.integration


class OnePerson:
    """Sees the same person standing in the middle of every frame."""

    provider = "CPUExecutionProvider"
    warnings: tuple[str, ...] = ()

    def detect(self, images: Sequence[Image], min_score: float) -> list[list[Detection]]:
        return [[Detection("person", 0.9, Box(0.3, 0.2, 0.6, 0.9))] for _ in images]


def _config(keep_days: int = 30) -> str:
    return (
        "data_dir: ./data\nrecording: {segment_seconds: 2}\n"
        f"detection: {{models_dir: {models_dir()}, keep_recordings_days: {keep_days}, "
        "tracker: {max_age_s: 30}}\n"
        "streams:\n"
        '  - {name: door, source: "test://ball?size=320x240&fps=10&gop=10", '
        "detect: {enabled: true, fps: 5, motion: {enabled: false}}}\n"
    )


@pytest.fixture(autouse=True)
def one_person(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Detector, "load", lambda *args, **kwargs: OnePerson())


async def _events(client: httpx.AsyncClient, type_: str) -> list[dict[str, Any]]:
    answer = await client.get("/api/v1/events", params={"type": type_, "stream": "door"})
    assert answer.status_code == 200, answer.text
    return list(answer.json()["events"])


async def _entered(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    """The person's `object.entered`, once it is in the history."""
    entered: list[dict[str, Any]] = []

    async def person_entered() -> bool:
        entered[:] = await _events(client, "object.entered")
        return bool(entered)

    await until_async(person_entered, 60, "the person was never reported entering")
    return entered


async def test_turning_detection_off_ends_the_object_in_view_with_its_snapshot_and_hold(
    tmp_path: Path,
) -> None:
    async with running_vigil(_config(), tmp_path) as vigil:
        assert vigil.api is not None and vigil.bus is not None
        published = vigil.bus.subscribe(lambda event: isinstance(event, ObjectLeft))
        async with httpx.AsyncClient(base_url=vigil.api.url, timeout=30) as client:
            entered = await _entered(client)
            # The tracker's max age is 30 s: nothing leaves on its own during this test.
            assert await _events(client, "object.left") == []

            answer = await client.patch("/api/v1/streams/door",
                                        json={"detect": {"enabled": False}})  # fmt: skip
            assert answer.status_code == 200, answer.text

            left: list[dict[str, Any]] = []

            async def person_left() -> bool:
                left[:] = await _events(client, "object.left")
                return bool(left)

            await until_async(person_left, 30, "no object.left after detection was turned off")
            assert len(left) == 1, left
            event = left[0]
            assert event["reason"] == "stopped"
            assert event["object_id"] == entered[0]["object_id"]
            first = datetime.fromisoformat(event["first_seen"])
            last = datetime.fromisoformat(event["last_seen"])
            assert first <= last <= datetime.fromisoformat(event["at"])
            answer = await client.get(event["snapshot_url"])
            assert answer.status_code == 200 and answer.content[:2] == b"\xff\xd8"

            # The WebSocket's form of the event (`event_to_dict`) says why too.
            live = published.get_nowait()
            assert live is not None and event_to_dict(live)["reason"] == "stopped"

            holds: list[dict[str, Any]] = []

            async def held() -> bool:
                answer = await client.get("/api/v1/recordings/holds")
                holds[:] = [h for h in answer.json() if event["object_id"] in h["reason"]]
                return bool(holds)

            await until_async(held, 30, "the stopped object's recording was not held")
            hold = holds[0]
            assert hold["stream"] == "door"
            assert datetime.fromisoformat(hold["start"]) <= first
            assert datetime.fromisoformat(hold["end"]) >= last


async def test_vigil_stopping_ends_the_object_in_view_before_the_database_closes(
    tmp_path: Path,
) -> None:
    async with running_vigil(_config(), tmp_path) as vigil:
        assert vigil.api is not None
        database_path = vigil.db.path
        async with httpx.AsyncClient(base_url=vigil.api.url, timeout=30) as client:
            entered = await _entered(client)
        snapshots = vigil.snapshots
    # Stopped: what it left behind is in the database and on disk.
    db = Database(database_path)
    try:
        stored = EventStore(db).list_events(EventQuery(types=("object.left",)))
        assert len(stored) == 1, stored
        event = stored[0].data
        assert event["reason"] == "stopped"
        assert event["object_id"] == entered[0]["object_id"]
        assert event["snapshot"] is not None
        assert snapshots is not None
        snapshot = snapshots.path(event["snapshot"])
        assert snapshot is not None and snapshot.read_bytes()[:2] == b"\xff\xd8"
        holds = [h for h in HoldStore(db).list() if event["object_id"] in h.reason]
        assert len(holds) == 1, holds
        assert holds[0].stream == "door"
        assert holds[0].start <= datetime.fromisoformat(event["first_seen"])
        assert holds[0].end >= datetime.fromisoformat(event["last_seen"])
    finally:
        db.engine.dispose()
