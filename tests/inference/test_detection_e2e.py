"""Detection end to end: real footage through the simulator, Vigil's pipelines and the real model.

The simulator serves OpenCV's vtest.avi (people walking past a fixed camera) as an H.264 RTSP
camera; Vigil detects, tracks and reports them over the API, as a user would look at them:
events with boxes, snapshots that are JPEGs of the frame, clips that play. A static test
pattern beside it must produce no event at all.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest
import pytest_asyncio

from tests.support.media import ffprobe, free_port
from tests.support.service import running_vigil
from tests.support.shared import models_dir, vtest_avi
from vigil.app import Vigil

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@dataclass
class Scene:
    vigil: Vigil
    client: httpx.AsyncClient
    base: Path

    async def get(self, path: str, **params: Any) -> Any:
        answer = await self.client.get(path, params=params)
        assert answer.status_code == 200, f"{path}: {answer.status_code} {answer.text}"
        return answer.json()

    async def diagnosis(self, stream: str) -> str:
        """What a user would look at when nothing shows up: the stream and its detector."""
        status = (await self.client.get(f"/api/v1/streams/{stream}")).text
        latest = (await self.client.get(f"/api/v1/streams/{stream}/detections/latest")).text
        return f"stream: {status[:600]}; detection: {latest[:1500]}"

    async def events(self, type_: str, stream: str) -> list[dict[str, Any]]:
        page = await self.get("/api/v1/events", type=type_, stream=stream, limit=1000)
        return list(page["events"])


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scene(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Scene]:
    base = tmp_path_factory.mktemp("detect")
    port = free_port()
    config = (
        "data_dir: ./data\nrecording: {segment_seconds: 4}\n"
        f"detection: {{models_dir: {models_dir()}, tracker: {{max_age_s: 2}}}}\n"
        f"simulator: {{cameras: 1, port: {port}, width: 768, height: 576, fps: 10, "
        f"bitrate_kbit: 1500, file: {vtest_avi()}}}\n"
        "streams:\n"
        f'  - {{name: walk, source: "rtsp://127.0.0.1:{port}/cam1", transport: tcp, '
        "detect: {enabled: true, fps: 5, labels: [person], min_score: 0.4}}\n"
        '  - {name: still, source: "test://smpte?size=640x480&fps=10&gop=10", '
        "detect: {enabled: true, fps: 5, min_score: 0.4}}\n"
    )
    async with running_vigil(config, base) as vigil:
        assert vigil.api is not None
        async with httpx.AsyncClient(base_url=vigil.api.url, timeout=60) as client:
            yield Scene(vigil, client, base)


def _inside(box: list[float]) -> bool:
    x1, y1, x2, y2 = box
    return 0 <= x1 < x2 <= 1 and 0 <= y1 < y2 <= 1


async def test_people_walking_by_are_tracked_objects_with_snapshots(scene: Scene) -> None:
    entered: list[dict[str, Any]] = []

    async def some_entered() -> bool:
        entered[:] = await scene.events("object.entered", "walk")
        return len(entered) >= 2

    await _until_async(some_entered, 90, "no person was reported entering",
                       lambda: scene.diagnosis("walk"))  # fmt: skip
    for event in entered:
        assert event["label"] == "person"
        assert event["score"] >= 0.4
        assert _inside(event["box"]), event
        assert event["object_id"]
    assert len({e["object_id"] for e in entered}) == len(entered), "an object entered twice"

    # The snapshot is the frame at the detector's working size (768x576 → 640x480), as a JPEG.
    answer = await scene.client.get(entered[0]["snapshot_url"])
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
    assert answer.content[:2] == b"\xff\xd8"
    picture = cv2.imdecode(np.frombuffer(answer.content, np.uint8), cv2.IMREAD_COLOR)
    assert picture is not None and picture.shape == (480, 640, 3)

    latest = await scene.get("/api/v1/streams/walk/detections/latest")
    assert latest["state"] == "running", latest
    assert latest["mode"] == "all"  # 5 fps asked, a keyframe a second: every frame decoded
    assert latest["provider"] == "CPUExecutionProvider"
    assert latest["frames"] > 0

    # Tracking: many detections, few objects (one walking person is one event, not one per
    # frame). vtest shows about a dozen people over its 80 s, several at a time.
    counts: dict[str, float] = {}

    async def many_detections() -> bool:
        metrics = (await scene.client.get("/metrics")).text
        counts["detections"] = _metric(metrics, "vigil_detections_total", stream="walk",
                                       label="person")  # fmt: skip
        counts["objects"] = _metric(metrics, "vigil_objects_total", stream="walk",
                                    label="person")  # fmt: skip
        return counts["detections"] >= 200

    await _until_async(many_detections, 90, "few detections", lambda: scene.diagnosis("walk"))
    assert counts["detections"] >= 5 * counts["objects"] > 0, counts


async def test_an_object_that_left_has_a_clip_that_plays(scene: Scene) -> None:
    left: list[dict[str, Any]] = []

    async def some_left() -> bool:
        left[:] = await scene.events("object.left", "walk")
        return bool(left)

    await _until_async(some_left, 120, "no person was reported leaving",
                       lambda: scene.diagnosis("walk"))  # fmt: skip
    event = left[-1]  # the oldest one: its recording is most likely complete
    first = datetime.fromisoformat(event["first_seen"])
    last = datetime.fromisoformat(event["last_seen"])
    assert first <= last and _inside(event["box"])
    assert event["reason"] == "left"  # not seen for the tracker's max age (not "stopped")
    assert event["snapshot_url"].endswith("/snapshot.jpg")
    answer = await scene.client.get(event["snapshot_url"])
    assert answer.status_code == 200 and answer.content[:2] == b"\xff\xd8"

    answer = await scene.client.get(event["clip_url"])
    assert answer.status_code == 200, answer.text
    clip = scene.base / "clip.mp4"
    clip.write_bytes(answer.content)
    probe = ffprobe(clip)
    seen = (last - first).total_seconds()
    # At most the padding (5 s each side) beyond what was seen; at least what was seen.
    assert seen - 1 <= probe.duration <= seen + 10 + 1, (seen, probe.duration)


async def test_a_still_test_pattern_makes_no_events(scene: Scene) -> None:
    latest = await scene.get("/api/v1/streams/still/detections/latest")
    await _until_async(
        lambda: _still_frames(scene), 60, "the still stream's motion gate saw no frame"
    )
    latest = await scene.get("/api/v1/streams/still/detections/latest")
    assert latest["state"] == "running", latest
    assert latest["frames"] >= 1  # the first frame is always looked at
    assert await scene.events("object", "still") == []


async def test_detections_latest_refuses_what_does_not_detect(scene: Scene) -> None:
    answer = await scene.client.get("/api/v1/streams/nosuch/detections/latest")
    assert answer.status_code == 404


async def _still_frames(scene: Scene) -> bool:
    latest = await scene.get("/api/v1/streams/still/detections/latest")
    motion = latest.get("motion") or {}
    return int(motion.get("still_frames", 0)) > 3


def _metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.split("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def _until_async(predicate: Any, timeout: float, message: str, diagnosis: Any = None) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await predicate():
                await asyncio.sleep(0.5)
    except TimeoutError:
        detail = await diagnosis() if diagnosis is not None else ""
        raise AssertionError(f"{message}; {detail}") from None
