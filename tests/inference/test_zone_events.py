"""Zone events: a person walking from one zone into another is reported coming into and going
out of each, in the order it happened, in the event history (filtered by type and label) with
a clip of the recording; when detection stops, it goes out of the zone it stood in before its
`object.left`. Real pipelines, SQLite and HTTP; the detector is a stand-in that sees one person
walking left to right (the model is the subject of other tests)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.service import running_vigil, until_async
from tests.support.shared import models_dir
from vigil.inference.backend import Detector
from vigil.inference.types import Box, Detection, Image

pytestmark = pytest.mark.integration

STEP = 0.02  # of the frame's width per detector frame: 0.1 s a frame at 10 fps


class Walker:
    """A person walking left to right, a step per frame, then standing at the right."""

    provider = "CPUExecutionProvider"
    warnings: tuple[str, ...] = ()

    def __init__(self) -> None:
        self.frames = itertools.count()

    def detect(self, images: Sequence[Image], min_score: float) -> list[list[Detection]]:
        out = []
        for _ in images:
            x = min(0.1 + next(self.frames) * STEP, 0.85)
            out.append([Detection("person", 0.9, Box(x - 0.05, 0.3, x + 0.05, 0.9))])
        return out


@pytest.fixture(autouse=True)
def walker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Detector, "load", lambda *args, **kwargs: Walker())


CONFIG = (
    "data_dir: ./data\nrecording: {segment_seconds: 2}\n"
    f"detection: {{models_dir: {models_dir()}, tracker: {{max_age_s: 30}}}}\n"
    "streams:\n"
    '  - {name: door, source: "test://ball?size=320x240&fps=10&gop=10",\n'
    "     detect: {enabled: true, fps: 10, motion: {enabled: false}, zones: [\n"
    "       {name: drive, polygon: [[0, 0], [0.6, 0], [0.6, 1], [0, 1]]},\n"
    "       {name: porch, polygon: [[0.4, 0], [1, 0], [1, 1], [0.4, 1]]}]}}\n"
)


async def _objects(client: httpx.AsyncClient, **params: str) -> list[dict[str, Any]]:
    answer = await client.get("/api/v1/events", params={"stream": "door", **params})
    assert answer.status_code == 200, answer.text
    return sorted(answer.json()["events"], key=lambda e: e["id"])


async def test_a_person_walking_from_the_drive_to_the_porch(tmp_path: Path) -> None:
    async with running_vigil(CONFIG, tmp_path) as vigil:
        assert vigil.api is not None
        async with httpx.AsyncClient(base_url=vigil.api.url, timeout=30) as client:
            seen: list[dict[str, Any]] = []

            async def in_the_porch_alone() -> bool:
                seen[:] = await _objects(client, type="object")
                return any(e["type"] == "object.zone_left" for e in seen)

            await until_async(in_the_porch_alone, 60, "the person never left the drive")
            story = [(e["type"], e.get("zone"), e.get("zones")) for e in seen]
            assert story == [
                ("object.entered", None, ["drive"]),
                ("object.zone_entered", "drive", None),
                ("object.zone_entered", "porch", None),
                ("object.zone_left", "drive", None),
            ]
            assert len({e["object_id"] for e in seen}) == 1
            assert all(e["label"] == "person" for e in seen)
            # Where it stood: the box's foot was in the porch and out of the drive.
            foot = (seen[3]["box"][0] + seen[3]["box"][2]) / 2
            assert 0.6 < foot <= 0.6 + 3 * STEP

            came = await _objects(client, type="object.zone_entered", label="person")
            assert [e["zone"] for e in came] == ["drive", "porch"]
            assert await _objects(client, type="object.zone_entered", label="car") == []
            assert all("snapshot_url" not in e and e["clip_url"] for e in came)
            clip = await client.get(came[1]["clip_url"])
            assert clip.status_code == 200, clip.text
            assert clip.headers["content-type"] == "video/mp4"

            # Who is where now: in the porch, out of the drive (0, not gone: graphs see it
            # empty), one person in view; the same in the stream's latest detections.
            assert _in_view(await client.get("/metrics")) == {
                ("person", ""): 1.0, ("person", "drive"): 0.0, ("person", "porch"): 1.0,
            }  # fmt: skip
            latest = (await client.get("/api/v1/streams/door/detections/latest")).json()
            assert (latest["in_view"], latest["in_zones"]) == (
                {"person": 1},
                {"porch": {"person": 1}},
            )
            stream = (await client.get("/api/v1/streams/door")).json()
            assert stream["detection"]["in_view"] == {"person": 1}

            answer = await client.patch("/api/v1/streams/door",
                                        json={"detect": {"enabled": False}})  # fmt: skip
            assert answer.status_code == 200, answer.text

            async def left() -> bool:
                seen[:] = await _objects(client, type="object")
                return seen[-1]["type"] == "object.left"

            await until_async(left, 30, "no object.left after detection was turned off")
            assert [(e["type"], e.get("zone")) for e in seen[4:]] == [
                ("object.zone_left", "porch"),
                ("object.left", None),
            ]
            assert seen[4]["at"] == seen[5]["last_seen"]  # it went out when last seen
            assert _in_view(await client.get("/metrics")) == {}  # detection off: no series


def _in_view(metrics: httpx.Response) -> dict[tuple[str, str], float]:
    """door's `vigil_objects_in_view` samples by (label, zone)."""
    assert metrics.status_code == 200, metrics.text
    found = {}
    for family in text_string_to_metric_families(metrics.text):
        if family.name == "vigil_objects_in_view":
            for sample in family.samples:
                if sample.labels["stream"] == "door":
                    found[(sample.labels["label"], sample.labels["zone"])] = sample.value
    return found
