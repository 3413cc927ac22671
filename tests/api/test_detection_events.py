"""Detection in the API over real HTTP: object events by label, their snapshots and clips, and
each stream's latest detections.

Events are stored in the real database, snapshots drawn and saved by the real store, and clips
cut by the real exporter from real segments (the ones tests/api/test_recordings.py makes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from websockets.asyncio.client import connect

from tests.api import test_events as live
from tests.api import test_recordings as recordings
from tests.api.conftest import Api
from tests.support.media import ffprobe
from vigil.events import DetectionStateChanged, Event, ObjectEntered, ObjectLeft, StreamStateChanged
from vigil.inference.snapshots import SnapshotStore, render_snapshot
from vigil.inference.types import Box
from vigil.store.events import EventQuery, EventStore

_at = recordings._at  # T0 + seconds: the recorded segments' clock
BOX = (0.25, 0.25, 0.75, 0.75)


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    """The three 4 s segments of test_recordings (made once for this module)."""
    yield from recordings.sample_files.__wrapped__(tmp_path_factory)  # type: ignore[attr-defined]


def _entered(label: str, seconds: float, snapshot: str | None = None, stream: str = "gate",
             object_id: str = "1") -> ObjectEntered:  # fmt: skip
    return ObjectEntered(stream=stream, object_id=object_id, label=label, score=0.87, box=BOX,
                         snapshot=snapshot, at=_at(seconds))  # fmt: skip


def _left(label: str, first: float, last: float, snapshot: str | None = None,
          object_id: str = "1") -> ObjectLeft:  # fmt: skip
    return ObjectLeft(stream="gate", object_id=object_id, label=label, score=0.91, box=BOX,
                      first_seen=_at(first), last_seen=_at(last), snapshot=snapshot,
                      at=_at(last + 2))  # fmt: skip


def _store(api: Api, *events: Event) -> list[int]:
    """Store `events`; their ids, in order."""
    store = EventStore(api.services.db)
    store.append(list(events))
    newest = store.list_events(EventQuery(limit=len(events)))
    return [record.id for record in reversed(newest)]


async def _events(api: Api, **params: str) -> list[dict[str, Any]]:
    response = await api.client.get("/api/v1/events", params=params)
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


# -- the history ------------------------------------------------------------------------------


async def test_events_are_filtered_by_label_and_link_their_snapshot_and_clip(api: Api) -> None:
    ids = _store(
        api,
        _entered("person", 1, snapshot="gate/2026-11-24/1-entered.jpg"),
        _entered("car", 2, object_id="2"),
        _entered("traffic light", 3, object_id="3", stream="yard"),
        StreamStateChanged(stream="gate", old="streaming", new="stalled", reason="x", at=_at(4)),
        DetectionStateChanged(stream="gate", state="running", reason="model loaded", at=_at(5)),
        _left("person", 1, 6, snapshot="gate/2026-11-24/1-best.jpg"),
    )
    person = await _events(api, label="person")
    assert [(e["id"], e["type"]) for e in person] == [(ids[5], "object.left"),
                                                      (ids[0], "object.entered")]  # fmt: skip
    left = person[0]
    assert left["label"] == "person" and left["score"] == 0.91 and left["box"] == list(BOX)
    assert left["snapshot_url"] == f"/api/v1/events/{ids[5]}/snapshot.jpg"
    assert left["clip_url"] == f"/api/v1/events/{ids[5]}/clip.mp4"
    assert "snapshot" not in left  # the store's key is no business of clients

    assert {e["label"] for e in await _events(api, label="person, car")} == {"person", "car"}
    assert [e["stream"] for e in await _events(api, label="traffic light")] == ["yard"]
    assert await _events(api, label="dog") == []
    assert [e["id"] for e in await _events(api, label="person", type="object.entered")] == [ids[0]]
    assert [e["id"] for e in await _events(api, label="car,person", stream="gate",
                                           until=_at(2).isoformat())] == [ids[0]]  # fmt: skip

    everything = {e["id"]: e for e in await _events(api)}
    car = everything[ids[1]]
    assert car["snapshot_url"] is None and car["clip_url"].endswith(f"/{ids[1]}/clip.mp4")
    for other in (everything[ids[3]], everything[ids[4]]):
        assert "clip_url" not in other and "snapshot_url" not in other
        assert "label" not in other


async def test_bad_label_filters_are_422(api: Api) -> None:
    for bad in ("person,\x01", "x" * 65, ",".join(["a"] * 51)):
        response = await api.client.get("/api/v1/events", params={"label": bad})
        assert response.status_code == 422, bad
        assert "label" in response.json()["error"]["message"]


async def test_live_events_are_filtered_by_label_too(api: Api) -> None:
    async with live._live(api, "?label=person") as client:
        api.services.bus.publish(_entered("car", 1, object_id="2"))
        api.services.bus.publish(
            StreamStateChanged(stream="gate", old="streaming", new="stalled", reason="x")
        )
        api.services.bus.publish(_entered("person", 2, snapshot="gate/2026-11-24/1-entered.jpg"))
        (event,) = await live._events(client, 1)
    assert (event["type"], event["label"]) == ("object.entered", "person")
    assert event["snapshot"] == "gate/2026-11-24/1-entered.jpg"  # no id yet: no links
    async with connect(live._ws_url(api, "?label=a%01b"), proxy=None) as client:
        code, reason = await live._close_code(client)
    assert code == 4400 and "label" in reason


# -- snapshots --------------------------------------------------------------------------------


async def test_an_event_snapshot_is_served_until_it_is_pruned(api: Api, tmp_path: Path) -> None:
    snapshots = SnapshotStore(tmp_path / "snapshots")
    api.services.snapshots = snapshots
    frame = np.full((240, 320, 3), 90, np.uint8)
    jpeg = render_snapshot(frame, Box(*BOX), "person", 0.91)
    key = snapshots.save("gate", "1", "best", jpeg, _at(6))
    assert key is not None
    with_snapshot, without = _store(api, _left("person", 1, 6, snapshot=key),
                                    _entered("car", 2, object_id="2"))  # fmt: skip

    response = await api.client.get(f"/api/v1/events/{with_snapshot}/snapshot.jpg")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content[:2] == b"\xff\xd8"
    image = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape == (240, 320, 3)

    missing = await api.client.get(f"/api/v1/events/{without}/snapshot.jpg")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "no_snapshot"

    assert snapshots.prune(_at(0) + timedelta(days=2)) == 1
    gone = await api.client.get(f"/api/v1/events/{with_snapshot}/snapshot.jpg")
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "snapshot_gone"
    assert "deleted" in gone.json()["error"]["message"]


async def test_snapshots_of_unknown_or_bad_event_ids(api: Api, tmp_path: Path) -> None:
    api.services.snapshots = SnapshotStore(tmp_path / "snapshots")
    assert (await api.client.get("/api/v1/events/999/snapshot.jpg")).status_code == 404
    for bad in ("0", "-1", "abc", str(2**63)):
        assert (await api.client.get(f"/api/v1/events/{bad}/snapshot.jpg")).status_code == 422
    # A stored key that points out of the store is not followed.
    (tmp_path / "secret.jpg").write_bytes(b"\xff\xd8secret")
    (event_id,) = _store(api, _entered("person", 1, snapshot="../secret.jpg"))
    response = await api.client.get(f"/api/v1/events/{event_id}/snapshot.jpg")
    assert response.status_code == 404 and b"secret" not in response.content


# -- clips ------------------------------------------------------------------------------------


@pytest.fixture
def recorded(api: Api, tmp_path: Path, sample_files: list[Path]) -> Api:
    """gate recorded 0-12 s (three segments), then 22-26 s; exports are not kept."""
    root, _exports = recordings._serve_recordings(api, tmp_path, keep_seconds=0)
    recordings._record(api, root, [*sample_files, sample_files[0]], [0, 4, 8, 22])
    return api


async def _clip(api: Api, event_id: int, tmp_path: Path) -> float:
    """The clip's duration in seconds, as ffprobe decodes it."""
    response = await api.client.get(f"/api/v1/events/{event_id}/clip.mp4")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4"
    path = tmp_path / f"clip-{event_id}.mp4"
    path.write_bytes(response.content)
    probe = ffprobe(path)
    assert (probe.codec, probe.width, probe.height) == ("h264", 320, 240)
    return probe.duration


async def test_an_object_left_clip_covers_first_to_last_seen_with_padding(
    recorded: Api, tmp_path: Path
) -> None:
    recorded.services.clip_padding_s = (2.0, 3.0)
    (left,) = _store(recorded, _left("person", 3, 5))
    # [3 - 2, 5 + 3) = [1, 8): 1 s is a keyframe (1 s GOPs).
    assert await _clip(recorded, left, tmp_path) == pytest.approx(7.0, abs=1.0)


async def test_an_object_entered_clip_is_around_the_moment_it_was_seen(
    recorded: Api, tmp_path: Path
) -> None:
    (entered,) = _store(recorded, _entered("car", 6))
    # The default padding, 5 s each side: [1, 11).
    assert await _clip(recorded, entered, tmp_path) == pytest.approx(10.0, abs=1.0)


async def test_a_clip_asked_for_as_the_object_enters_is_longer_when_asked_again_later(
    api: Api, tmp_path: Path, sample_files: list[Path]
) -> None:
    """Its range reaches past what is recorded yet: that short clip is neither kept by the
    exporter nor cacheable by the browser; once the recording has gone on, the clip is whole
    (and kept for the seeks that follow)."""
    root, exports = recordings._serve_recordings(api, tmp_path)  # clips kept (the default)
    recordings._record(api, root, sample_files[:2], [0, 4])  # recorded so far: 0-8 s
    (entered,) = _store(api, _entered("person", 6))  # its clip: [1, 11)

    early = await api.client.get(f"/api/v1/events/{entered}/clip.mp4")
    assert early.status_code == 200, early.text
    assert early.headers["cache-control"] == "no-store"
    assert datetime.fromisoformat(early.headers["x-vigil-end"]) <= _at(8)
    await recordings._until_empty(exports)  # sent and deleted, not kept

    recordings._record(api, root, sample_files[2:3], [8])  # the recording went on: 8-12 s
    later = await _clip(api, entered, tmp_path)
    assert later == pytest.approx(10.0, abs=1.0)
    again = await api.client.get(f"/api/v1/events/{entered}/clip.mp4")
    assert again.headers["cache-control"] == "private, max-age=300"
    assert datetime.fromisoformat(again.headers["x-vigil-end"]) >= _at(11)
    assert len(list(exports.glob("export-*.mp4"))) == 1  # the whole clip, kept and reused


async def test_a_clip_cut_short_by_a_gap_in_the_past_is_kept(
    api: Api, tmp_path: Path, sample_files: list[Path]
) -> None:
    """Recording already goes on after its range: what the clip lacks is a gap, not video
    still to come."""
    root, exports = recordings._serve_recordings(api, tmp_path)
    recordings._record(api, root, [*sample_files, sample_files[0]], [0, 4, 8, 22])
    api.services.clip_padding_s = (1.0, 3.0)
    (entered,) = _store(api, _entered("person", 10))  # [9, 13): the gap starts at 12 s
    response = await api.client.get(f"/api/v1/events/{entered}/clip.mp4")
    assert response.status_code == 200, response.text
    assert datetime.fromisoformat(response.headers["x-vigil-end"]) <= _at(12)
    assert response.headers["cache-control"] == "private, max-age=300"
    assert len(list(exports.glob("export-*.mp4"))) == 1


async def test_clips_of_events_without_one_or_without_video(recorded: Api) -> None:
    recorded.services.clip_padding_s = (1.0, 1.0)
    state, far = _store(
        recorded,
        StreamStateChanged(stream="gate", old="streaming", new="stalled", reason="x", at=_at(4)),
        _entered("dog", 16),  # [15, 17): inside the gap (12-22 s)
    )
    response = await recorded.client.get(f"/api/v1/events/{state}/clip.mp4")
    assert response.status_code == 404 and response.json()["error"]["code"] == "no_clip"
    response = await recorded.client.get(f"/api/v1/events/{far}/clip.mp4")
    assert response.status_code == 404 and response.json()["error"]["code"] == "no_video"
    assert (await recorded.client.get("/api/v1/events/999/clip.mp4")).status_code == 404


async def test_clips_without_exports_are_503(api: Api) -> None:
    (entered,) = _store(api, _entered("car", 6))
    response = await api.client.get(f"/api/v1/events/{entered}/clip.mp4")
    assert response.status_code == 503


# -- latest detections ------------------------------------------------------------------------


@dataclass
class FakeDetection:
    """A DetectionView over a dict: streams without an entry have detection off."""

    reports: dict[str, dict[str, Any]] = field(default_factory=dict)

    def latest(self, stream: str) -> dict[str, Any] | None:
        return self.reports.get(stream)


def _report(at: datetime) -> dict[str, Any]:
    return {
        "stream": "gate", "at": at, "mode": "keyframes", "fps": 5.0,
        "motion": {"moving": True, "changed": 0.031, "moving_frames": 4, "still_frames": 9},
        "detections": [
            {"label": "person", "score": 0.87, "box": BOX, "object_id": "4", "zones": ["door"]},
            {"label": "car", "score": 0.42, "box": (0.0, 0.5, 0.2, 0.9), "object_id": None,
             "zones": []},
        ],
        "skipped_fps": 20.0, "processed_fps": 5.0, "provider": "CPUExecutionProvider",
        "state": "running", "reason": "model loaded", "model": "nanodet-plus-m-416",
    }  # fmt: skip


async def test_latest_detections_of_a_stream(api: Api) -> None:
    api.services.detection = FakeDetection({"gate": _report(_at(1))})
    response = await api.client.get("/api/v1/streams/gate/detections/latest")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["stream"] == "gate" and body["mode"] == "keyframes"
    assert body["motion"]["moving"] is True
    assert datetime.fromisoformat(body["at"]) == _at(1)
    assert body["detections"][0] == {"label": "person", "score": 0.87, "box": list(BOX),
                                     "object_id": "4", "zones": ["door"]}  # fmt: skip
    assert body["detections"][1]["object_id"] is None
    assert (body["fps"], body["skipped_fps"], body["processed_fps"]) == (5.0, 20.0, 5.0)
    assert (body["provider"], body["state"], body["reason"]) == (
        "CPUExecutionProvider", "running", "model loaded",
    )  # fmt: skip
    assert body["model"] == "nanodet-plus-m-416"  # what else the detector reports is passed on


async def test_latest_detections_before_the_first_frame(api: Api) -> None:
    report = {**_report(_at(1)), "at": None, "detections": [], "mode": None, "motion": None,
              "provider": None, "state": "failed", "reason": "model file missing"}  # fmt: skip
    api.services.detection = FakeDetection({"gate": report})
    response = await api.client.get("/api/v1/streams/gate/detections/latest")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["at"], body["detections"], body["state"]) == (None, [], "failed")


async def test_latest_detections_when_off_or_unknown(api: Api) -> None:
    off = await api.client.get("/api/v1/streams/gate/detections/latest")
    assert off.status_code == 409 and off.json()["error"]["code"] == "detection_off"
    api.services.detection = FakeDetection({"gate": _report(_at(1))})
    not_here = await api.client.get("/api/v1/streams/yard/detections/latest")
    assert not_here.status_code == 409
    assert "yard" in not_here.json()["error"]["message"]
    unknown = await api.client.get("/api/v1/streams/porch/detections/latest")
    assert unknown.status_code == 404
