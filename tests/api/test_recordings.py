"""Recordings over real HTTP: segments and gaps by time range, segment files, exports.

The index rows are inserted into the real database; the files are small real fragmented MP4s
made with gst-launch-1.0, contiguous like the recorder's segments; exports run the real
GStreamer writer. The running-camera version is tests/integration/test_api_recordings.py.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.api.conftest import Api
from tests.support.media import ffprobe
from vigil.media import gst  # noqa: F401  (GStreamer's version is chosen before export's import)
from vigil.media.export import write_mp4
from vigil.recording.export import Exporter
from vigil.store.models import SegmentStatus

T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
FPS = 25
SEGMENT_S = 4
GOP_S = 1.0
FRAME_S = 1 / FPS


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _q(moment: datetime) -> str:
    return moment.isoformat()


@pytest.fixture(scope="module")
def sample_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Path]]:
    """Three 4 s H.264 segments (1 s GOPs), fragmented like the recorder writes them."""
    directory = tmp_path_factory.mktemp("samples")
    files = []
    for index, pattern in enumerate(("ball", "smpte", "snow")):
        path = directory / f"{index}.mp4"
        subprocess.run(
            ["gst-launch-1.0", "-q", "videotestsrc", f"pattern={pattern}",
             f"num-buffers={SEGMENT_S * FPS}", "!",
             f"video/x-raw,width=320,height=240,framerate={FPS}/1", "!",
             "x264enc", f"key-int-max={FPS}", "bframes=0", "speed-preset=ultrafast", "!",
             "h264parse", "!", "mp4mux", "fragment-duration=1000", "!",
             "filesink", f"location={path}"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        files.append(path)
    yield files


@dataclass
class Recorded:
    api: Api
    root: Path
    exports: Path
    ids: list[int]


def _record(api: Api, root: Path, files: list[Path], starts: list[float]) -> list[int]:
    ids = []
    for source, start in zip(files, starts, strict=True):
        moment = _at(start)
        path = root / "gate" / moment.strftime("%Y-%m-%d/%H/%M.%S.mp4")
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, path)
        ids.append(api.services.segments.add_complete(
            stream="gate", path=path, start=moment, end=moment + timedelta(seconds=SEGMENT_S),
            duration_s=SEGMENT_S, size_bytes=path.stat().st_size, codec="h264", width=320,
            height=240, status=SegmentStatus.COMPLETE,
        ))  # fmt: skip
    return ids


def _serve_recordings(api: Api, tmp_path: Path, **exporter: float) -> tuple[Path, Path]:
    root, exports = tmp_path / "recordings", tmp_path / "exports"
    root.mkdir()
    api.services.recording_roots = (root,)
    api.services.exports = Exporter(
        api.services.segments,
        [root],
        exports,
        write_mp4,
        **exporter,  # type: ignore[arg-type]
    )
    return root, exports


@pytest.fixture
def recorded(api: Api, tmp_path: Path, sample_files: list[Path]) -> Recorded:
    """gate: three contiguous segments 0-4, 4-8, 8-12 s; then 10 s not recorded; 22-26 s.
    Exports are not kept after they are sent."""
    root, exports = _serve_recordings(api, tmp_path, keep_seconds=0)
    ids = _record(api, root, [*sample_files, sample_files[0]], [0, 4, 8, 22])
    api.services.gaps.add_gap("gate", _at(12), _at(22), "no video for 5 s")
    return Recorded(api, root, exports, ids)


# -- segments ---------------------------------------------------------------------------------


async def test_segments_are_paged_oldest_first_with_a_next_link(recorded: Recorded) -> None:
    client = recorded.api.client
    seen: list[dict[str, object]] = []
    url: str | None = "/api/v1/streams/gate/segments?limit=3"
    pages = 0
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += body["segments"]
        url = body["next"]
        pages += 1
        if url is not None:
            assert response.headers["link"] == f'<{url}>; rel="next"'
            assert "limit=3" in url and f"cursor={body['cursor']}" in url
    assert pages == 2
    assert [item["id"] for item in seen] == recorded.ids
    first = seen[0]
    assert first["start"] == "2026-11-24T06:00:00Z" and first["end"] == "2026-11-24T06:00:04Z"
    assert (first["codec"], first["width"], first["height"]) == ("h264", 320, 240)
    assert first["status"] == "complete" and first["duration_s"] == SEGMENT_S
    assert first["url"] == f"/api/v1/segments/{first['id']}/file"
    assert first["size_bytes"] > 0


async def test_segments_are_filtered_by_time_range(recorded: Recorded) -> None:
    client = recorded.api.client
    # Overlap: [5, 9) touches the segments 4-8 and 8-12; times in another zone are the same.
    query = {
        "start": _q(_at(5)),
        "end": _at(9).astimezone(timezone(timedelta(hours=2))).isoformat(),
    }
    body = (await client.get("/api/v1/streams/gate/segments", params=query)).json()
    assert [item["id"] for item in body["segments"]] == recorded.ids[1:3]
    assert body["next"] is None and body["cursor"] is None
    after = {"start": _q(_at(20))}
    body = (await client.get("/api/v1/streams/gate/segments", params=after)).json()
    assert [item["id"] for item in body["segments"]] == recorded.ids[3:]


async def test_streams_without_recordings(recorded: Recorded) -> None:
    client = recorded.api.client
    missing = await client.get("/api/v1/streams/nowhere/segments")
    assert missing.status_code == 404
    assert "nowhere" in missing.json()["error"]["message"]
    running = await client.get("/api/v1/streams/yard/segments")  # known, nothing recorded
    assert running.status_code == 200 and running.json()["segments"] == []


BAD_LISTINGS = [
    {"start": "2026-11-24T06:00:10Z", "end": "2026-11-24T06:00:10Z"},  # empty range
    {"start": "2026-11-24T06:00:10Z", "end": "2026-11-24T06:00:00Z"},  # reversed
    {"start": "2026-11-24T06:00:00"},  # no zone: which 06:00?
    {"start": "yesterday"},
    {"limit": "0"},
    {"limit": "1001"},
    {"limit": "ten"},
    {"cursor": "not-a-cursor"},
    {"cursor": base64.urlsafe_b64encode(b"../../etc/passwd").decode()},
]


async def test_bad_listing_queries_are_422(recorded: Recorded) -> None:
    for query in BAD_LISTINGS:
        response = await recorded.api.client.get("/api/v1/streams/gate/segments", params=query)
        assert response.status_code == 422, (query, response.text)
        assert response.json()["error"]["code"] == "invalid_request"


# -- gaps -------------------------------------------------------------------------------------


async def test_gaps_are_listed_by_time_range(recorded: Recorded) -> None:
    api = recorded.api
    api.services.gaps.open_gap("gate", _at(26), "Could not read from resource.")
    body = (await api.client.get("/api/v1/streams/gate/gaps")).json()
    assert body["stream"] == "gate" and body["truncated"] is False
    assert body["gaps"] == [
        {"start": "2026-11-24T06:00:12Z", "end": "2026-11-24T06:00:22Z", "duration_s": 10.0,
         "reason": "no video for 5 s"},
        {"start": "2026-11-24T06:00:26Z", "end": None, "duration_s": None,
         "reason": "Could not read from resource."},
    ]  # fmt: skip
    early = {"start": _q(_at(0)), "end": _q(_at(12))}
    assert (await api.client.get("/api/v1/streams/gate/gaps", params=early)).json()["gaps"] == []
    one = (await api.client.get("/api/v1/streams/gate/gaps", params={"limit": 1})).json()
    assert len(one["gaps"]) == 1 and one["truncated"] is True
    bad = await api.client.get("/api/v1/streams/gate/gaps", params={"start": "06:00"})
    assert bad.status_code == 422


# -- segment files ----------------------------------------------------------------------------


async def test_a_segment_downloads_whole_or_by_range_and_plays(
    recorded: Recorded, tmp_path: Path
) -> None:
    client = recorded.api.client
    segment_id = recorded.ids[0]
    response = await client.get(f"/api/v1/segments/{segment_id}/file")
    assert response.status_code == 200
    assert response.headers["content-type"] == "video/mp4"
    assert "gate-20261124T060000Z.mp4" in response.headers["content-disposition"]
    on_disk = next((recorded.root / "gate").rglob("00.00.mp4")).read_bytes()
    assert response.content == on_disk
    downloaded = tmp_path / "downloaded.mp4"
    downloaded.write_bytes(response.content)
    assert ffprobe(downloaded).frames == SEGMENT_S * FPS
    partial = await client.get(f"/api/v1/segments/{segment_id}/file",
                               headers={"Range": "bytes=100-199"})  # fmt: skip
    assert partial.status_code == 206 and partial.content == on_disk[100:200]


async def test_a_segment_whose_file_is_gone_is_404(recorded: Recorded) -> None:
    api = recorded.api
    first, second = recorded.ids[:2]
    api.services.segments.mark_missing(first, note=f"moved to {recorded.root}/.quarantine/x")
    missing = await api.client.get(f"/api/v1/segments/{first}/file")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "file_missing"
    assert "missing" in missing.json()["error"]["message"]
    assert str(recorded.root) not in missing.text  # where files are stays private
    for path in (recorded.root / "gate").rglob("00.04.mp4"):
        path.unlink()
    gone = await api.client.get(f"/api/v1/segments/{second}/file")
    assert gone.status_code == 404 and "no longer on disk" in gone.json()["error"]["message"]
    unknown = await api.client.get("/api/v1/segments/999999/file")
    assert unknown.status_code == 404 and "999999" in unknown.json()["error"]["message"]


async def test_rows_pointing_outside_the_recording_root_are_not_served(
    recorded: Recorded, tmp_path: Path
) -> None:
    """A tampered or restored index must not turn the API into a file server."""
    api = recorded.api
    secret = tmp_path / "secret.mp4"
    secret.write_bytes(b"root:x:0:0:not a video")
    link = recorded.root / "gate" / "link.mp4"
    link.symlink_to(secret)
    traversal = recorded.root / "gate" / ".." / ".." / "secret.mp4"
    for path in (secret, link, traversal, Path("/etc/passwd")):
        row = api.services.segments.add_complete(
            stream="gate", path=path, start=_at(100), end=_at(104), duration_s=4.0,
            size_bytes=1, codec="h264", width=320, height=240, status=SegmentStatus.COMPLETE,
        )  # fmt: skip
        response = await api.client.get(f"/api/v1/segments/{row}/file")
        assert response.status_code == 404, path
        assert "root:" not in response.text and str(tmp_path) not in response.text


TRAVERSALS = [
    "/api/v1/segments/..%2F..%2F..%2Fetc%2Fpasswd/file",
    "/api/v1/segments/%2Fetc%2Fpasswd/file",
    "/api/v1/segments/..%2Fsecret.mp4/file",
    "/api/v1/segments/1e3/file",
    "/api/v1/segments/-1/file",
    "/api/v1/segments/0/file",
    "/api/v1/segments/99999999999999999999999999/file",
    "/api/v1/segments/0x10/file",
    "/api/v1/segments/1%00/file",
    "/api/v1/streams/..%2F..%2Fetc/segments",
    "/api/v1/streams/%2Fetc%2Fpasswd/gaps",
    "/api/v1/streams/gate%00/segments",
    "/api/v1/streams/..%2Fgate/export.mp4?start=2026-11-24T06:00:00Z&end=2026-11-24T06:00:05Z",
    "/api/v1/streams/%2E%2E/export.mp4?start=2026-11-24T06:00:00Z&end=2026-11-24T06:00:05Z",
    "/api/v1/streams/gate/export.mp4?start=..%2F..%2Fetc%2Fpasswd&end=2026-11-24T06:00:05Z",
    "/api/v1/streams/gate/export.mp4?start=2026-11-24T06:00:00Z&end=%2Fetc%2Fpasswd",
    "/api/v1/streams/gate/segments?cursor=..%2F..%2Fetc%2Fpasswd",
    "/api/v1/streams/gate/segments?start=%2Fetc%2Fpasswd",
    "/api/v1/streams/gate/gaps?end=..%2F..",
    "/api/v1/streams/..%2F..%2Fetc%2Fpasswd/snapshot.jpg",
]


async def test_path_traversal_and_junk_parameters_are_refused(
    recorded: Recorded, tmp_path: Path
) -> None:
    for url in TRAVERSALS:
        response = await recorded.api.client.get(url)
        assert response.status_code in (404, 422), (url, response.text[:300])
        assert response.headers["content-type"] == "application/json", url
        assert "root:" not in response.text and str(tmp_path) not in response.text
        assert response.json()["error"]["code"] in ("not_found", "invalid_request"), url


# -- exports ----------------------------------------------------------------------------------


def _decodes(path: Path) -> bool:
    result = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, timeout=120, check=False)  # fmt: skip
    return result.returncode == 0 and not result.stderr


def _top_level_boxes(data: bytes) -> list[str]:
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        boxes.append(data[offset + 4 : offset + 8].decode("latin-1"))
        if size < 8:
            break
        offset += size
    return boxes


async def _until_empty(directory: Path) -> None:
    async with asyncio.timeout(10):
        while any(directory.iterdir()):
            await asyncio.sleep(0.05)


async def test_an_export_joins_segments_from_the_keyframe_before_start(
    recorded: Recorded, tmp_path: Path
) -> None:
    query = {"start": _q(_at(1.5)), "end": _q(_at(10.3))}
    response = await recorded.api.client.get("/api/v1/streams/gate/export.mp4", params=query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4"
    assert response.headers["x-vigil-start"] == "2026-11-24T06:00:01+00:00"  # keyframe at 1 s
    assert float(response.headers["x-vigil-skipped-seconds"]) == 0
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(response.content)
    # Progressive MP4 with its index in front: browsers play and seek before the end arrives.
    assert _top_level_boxes(response.content)[:2] == ["ftyp", "moov"]
    probe = ffprobe(clip)
    assert (probe.codec, probe.width, probe.height) == ("h264", 320, 240)
    assert 8.8 <= probe.duration <= 8.8 + GOP_S + FRAME_S
    assert probe.frames == round(probe.duration * FPS)
    assert _decodes(clip)
    await _until_empty(recorded.exports)  # sent, released, deleted (keep_seconds=0 here)


async def test_an_export_skips_the_gaps_inside_its_range(
    recorded: Recorded, tmp_path: Path
) -> None:
    query = {"start": _q(_at(8)), "end": _q(_at(26))}
    response = await recorded.api.client.get("/api/v1/streams/gate/export.mp4", params=query)
    assert response.status_code == 200, response.text
    assert float(response.headers["x-vigil-skipped-seconds"]) == pytest.approx(10, abs=0.05)
    assert response.headers["x-vigil-end"] == "2026-11-24T06:00:26+00:00"
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(response.content)
    probe = ffprobe(clip)
    assert probe.duration == pytest.approx(2 * SEGMENT_S, abs=FRAME_S)
    assert probe.frames == 2 * SEGMENT_S * FPS
    assert _decodes(clip)


async def test_a_range_without_video_is_404_with_the_nearest_video(recorded: Recorded) -> None:
    client = recorded.api.client
    query = {"start": _q(_at(13)), "end": _q(_at(20))}
    response = await client.get("/api/v1/streams/gate/export.mp4", params=query)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "no_video"
    assert error["details"] == {"before": "2026-11-24T06:00:12+00:00",
                                "after": "2026-11-24T06:00:22+00:00"}  # fmt: skip
    later = {"start": _q(_at(60)), "end": _q(_at(70))}
    error = (await client.get("/api/v1/streams/gate/export.mp4", params=later)).json()["error"]
    assert error["details"] == {"before": "2026-11-24T06:00:26+00:00", "after": None}
    unknown = await client.get("/api/v1/streams/nowhere/export.mp4", params=query)
    assert unknown.status_code == 404 and "nowhere" in unknown.json()["error"]["message"]


@pytest.mark.parametrize(
    ("start", "end", "problem"),
    [
        ("2026-11-24T06:00:10Z", "2026-11-24T06:00:10Z", "must be after start"),
        ("2026-11-24T06:00:10Z", "2026-11-24T06:00:05Z", "must be after start"),
        ("2026-11-24T06:00:00Z", "2026-11-25T06:00:01Z", "at most 86400 s"),
        ("2026-11-24T06:00:00", "2026-11-24T06:00:05Z", "timezone"),
        (None, "2026-11-24T06:00:05Z", "start"),
    ],
)
async def test_bad_export_ranges_are_422(
    recorded: Recorded, start: str | None, end: str, problem: str
) -> None:
    query = {"end": end} if start is None else {"start": start, "end": end}
    response = await recorded.api.client.get("/api/v1/streams/gate/export.mp4", params=query)
    assert response.status_code == 422, response.text
    assert problem in response.json()["error"]["message"]


async def test_a_finished_export_is_reused_for_the_same_range(
    api: Api, tmp_path: Path, sample_files: list[Path]
) -> None:
    """A browser asks for byte ranges again as the viewer seeks: one clip serves them all."""
    root, exports = _serve_recordings(api, tmp_path)
    _record(api, root, sample_files, [0, 4, 8])
    query = {"start": _q(_at(2)), "end": _q(_at(9))}
    whole = await api.client.get("/api/v1/streams/gate/export.mp4", params=query)
    part = await api.client.get("/api/v1/streams/gate/export.mp4", params=query,
                                headers={"Range": "bytes=1000-1999"})  # fmt: skip
    assert part.status_code == 206 and part.content == whole.content[1000:2000]
    assert len(list(exports.glob("export-*.mp4"))) == 1
    assert api.services.exports is not None
    api.services.exports.sweep()
    assert not any(exports.iterdir())


# -- snapshots --------------------------------------------------------------------------------


async def test_snapshots_need_a_streaming_stream(api: Api) -> None:
    stalled = await api.client.get("/api/v1/streams/yard/snapshot.jpg")
    assert stalled.status_code == 409
    assert "stalled" in stalled.json()["error"]["message"]
    unknown = await api.client.get("/api/v1/streams/nowhere/snapshot.jpg")
    assert unknown.status_code == 404
    no_keyframe = await api.client.get("/api/v1/streams/gate/snapshot.jpg")
    assert no_keyframe.status_code == 409 and "keyframe" in no_keyframe.json()["error"]["message"]


async def test_exports_are_refused_when_the_disk_or_the_workers_are_short(
    api: Api, tmp_path: Path, sample_files: list[Path]
) -> None:
    query = {"start": _q(_at(0)), "end": _q(_at(4))}
    root, exports = _serve_recordings(api, tmp_path, reserve_bytes=10**18)
    _record(api, root, sample_files[:1], [0])
    full = await api.client.get("/api/v1/streams/gate/export.mp4", params=query)
    assert full.status_code == 507 and full.json()["error"]["code"] == "insufficient_storage"
    assert "disk space" in full.json()["error"]["message"]
    api.services.exports = Exporter(api.services.segments, [root], exports, write_mp4,
                                    max_running=0)  # fmt: skip
    busy = await api.client.get("/api/v1/streams/gate/export.mp4", params=query)
    assert busy.status_code == 429 and busy.headers["retry-after"] == "10"
    assert not list(exports.glob("export-*"))
