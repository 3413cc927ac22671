"""The recordings API against a running Vigil recording a camera: what a user does with curl,
a browser and ffprobe. One recording of about a minute serves every check (it is the slow
part: a 50 s export needs 50 s of video)."""

from __future__ import annotations

import subprocess
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.media import ffprobe
from tests.support.service import ClosedSegments, running_vigil, until

pytestmark = pytest.mark.integration

FPS = 25
GOP_S = 1.0
FRAME_S = 1 / FPS
SEGMENT_S = 8  # three closed segments hold a 20 s range
RANGE_S = 20
SIZE = (320, 240)


def _config(tmp_path: Path) -> str:
    source = f"test://ball?size={SIZE[0]}x{SIZE[1]}&fps={FPS}&gop={FPS}&bitrate=300"
    return (
        f"data_dir: {tmp_path / 'data'}\n"
        f"recording: {{segment_seconds: {SEGMENT_S}}}\n"
        f'streams:\n  - {{name: cam, source: "{source}"}}\n'
    )


def _decodes(path: Path) -> bool:
    result = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                            capture_output=True, timeout=120, check=False)  # fmt: skip
    return result.returncode == 0


async def test_segments_gaps_downloads_exports_and_snapshots(tmp_path: Path) -> None:
    async with running_vigil(_config(tmp_path), tmp_path) as vigil:
        assert vigil.api is not None
        closed = ClosedSegments(vigil)
        async with httpx.AsyncClient(base_url=vigil.api.url, timeout=120) as client:
            # A snapshot as soon as the camera streams: a JPEG at the camera's size.
            await until(lambda: (vigil.streams is not None and (s := vigil.streams.status("cam"))
                                 is not None and s.state.value == "streaming"), 60)  # fmt: skip
            snapshot = await client.get("/api/v1/streams/cam/snapshot.jpg")
            assert snapshot.status_code == 200, snapshot.text
            assert snapshot.headers["content-type"] == "image/jpeg"
            jpeg = tmp_path / "snapshot.jpg"
            jpeg.write_bytes(snapshot.content)
            probe = ffprobe(jpeg)
            assert (probe.codec, probe.width, probe.height) == ("mjpeg", *SIZE)

            await until(lambda: closed.at_least(["cam"], 3), 3 * SEGMENT_S + 60,
                        "three segments were not recorded")  # fmt: skip

            # Every segment, two per page, oldest first; the one being written comes last.
            segments: list[dict[str, object]] = []
            url: str | None = "/api/v1/streams/cam/segments?limit=2"
            while url is not None:
                page = (await client.get(url)).json()
                segments += page["segments"]
                url = page["next"]
            assert len(segments) >= 4
            assert [s["status"] for s in segments[:3]] == ["complete"] * 3
            assert all(s["width"] == SIZE[0] and s["codec"] == "h264" for s in segments[:3])
            starts = [datetime.fromisoformat(str(s["start"])) for s in segments]
            assert starts == sorted(starts)

            first = segments[0]
            download = await client.get(str(first["url"]))
            assert download.status_code == 200
            assert len(download.content) == first["size_bytes"]
            file = tmp_path / "segment.mp4"
            file.write_bytes(download.content)
            assert ffprobe(file).frames > 0

            # The range covers three segments: 20 s from 1.5 s into the first.
            start = starts[0] + timedelta(seconds=1.5)
            end = start + timedelta(seconds=RANGE_S)
            assert end < datetime.fromisoformat(str(segments[2]["end"]))
            query = {"start": start.isoformat(), "end": end.isoformat()}
            export = await client.get("/api/v1/streams/cam/export.mp4", params=query)
            assert export.status_code == 200, export.text
            assert export.headers["content-type"] == "video/mp4"
            clip = tmp_path / "export.mp4"
            clip.write_bytes(export.content)
            probe = ffprobe(clip)
            assert (probe.codec, probe.width, probe.height) == ("h264", *SIZE)
            # From the keyframe at or before `start`: at most one GOP (and a frame) more.
            assert RANGE_S - FRAME_S <= probe.duration <= RANGE_S + GOP_S + FRAME_S, probe.duration
            assert _decodes(clip)

            # Before the recording began there is no video: 404 pointing at the first frame.
            early = {"start": (starts[0] - timedelta(hours=2)).isoformat(),
                     "end": (starts[0] - timedelta(hours=1)).isoformat()}  # fmt: skip
            missing = await client.get("/api/v1/streams/cam/export.mp4", params=early)
            assert missing.status_code == 404
            details = missing.json()["error"]["details"]
            assert details["before"] is None
            assert datetime.fromisoformat(details["after"]) == starts[0]

            # Continuous recording: no gaps.
            gaps = await client.get("/api/v1/streams/cam/gaps")
            assert gaps.status_code == 200 and gaps.json()["gaps"] == []
    assert not list((tmp_path / "data" / "exports").glob("export-*")), "exports left behind"
