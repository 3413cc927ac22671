"""`vigil recordings list|gaps` against the API served for real on loopback, over index rows in
its real database (the files themselves are not read by a listing). Export, which needs
recorded video, is tested against a running Vigil in test_export.py."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from tests.api.conftest import Api
from tests.support.cli import Ran, run_vigil
from vigil.commands import recordings
from vigil.store.models import SegmentStatus

T0 = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
SEGMENT_S = 4


async def _vigil(api: Api, *args: str) -> Ran:
    return await run_vigil(*args, url=api.server.url)


async def _record(api: Api, count: int) -> list[int]:
    """gate: `count` contiguous 4 s segments from T0, then a gap of 10 s."""

    def add() -> list[int]:
        ids = []
        for index in range(count):
            start = T0 + timedelta(seconds=index * SEGMENT_S)
            ids.append(api.services.segments.add_complete(
                stream="gate", path=api.services.db.path.parent / f"gate/{index}.mp4",
                start=start, end=start + timedelta(seconds=SEGMENT_S), duration_s=SEGMENT_S,
                size_bytes=250_000, codec="h264", width=320, height=240,
                status=SegmentStatus.COMPLETE,
            ))  # fmt: skip
        end = T0 + timedelta(seconds=count * SEGMENT_S)
        api.services.gaps.add_gap("gate", end, end + timedelta(seconds=10), "no video for 5 s")
        return ids

    return await asyncio.to_thread(add)


async def test_list_pages_through_every_segment(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = await _record(api, 5)
    monkeypatch.setattr(recordings, "PAGE", 2)  # three pages
    ran = await _vigil(api, "recordings", "list", "gate")
    assert ran.exit_code == 0, ran.output
    rows = [line for line in ran.stdout.splitlines() if "complete" in line]
    assert [int(row.split("│")[1]) for row in rows] == ids
    cells = [cell.strip() for cell in rows[0].split("│")[1:-1]]
    assert cells == [str(ids[0]), "2026-11-24 06:00:00", "2026-11-24 06:00:04", "4.0 s",
                     "250.0 kB", "h264 320x240", "complete"]  # fmt: skip
    assert "5 segment(s), 20.0 s, 1.2 MB" in ran.stdout

    as_json = await _vigil(api, "recordings", "list", "gate", "--json")
    segments = json.loads(as_json.stdout)
    assert [s["id"] for s in segments] == ids
    assert segments[0]["url"] == f"/api/v1/segments/{ids[0]}/file"


async def test_list_a_time_range(api: Api) -> None:
    ids = await _record(api, 5)
    # [5 s, 9 s) overlaps the segments 4-8 and 8-12; a zone is honoured, no zone is UTC.
    ran = await _vigil(
        api, "recordings", "list", "gate", "--json",
        "--start", "2026-11-24T07:00:05+01:00", "--end", "2026-11-24 06:00:09",
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    assert [s["id"] for s in json.loads(ran.stdout)] == ids[1:3]
    nothing = await _vigil(api, "recordings", "list", "gate", "--start", "2026-11-25T00:00:00Z")
    assert nothing.exit_code == 0
    assert nothing.stderr.strip() == "no recordings of 'gate' in that range"
    backwards = await _vigil(api, "recordings", "list", "gate", "--start", "now", "--end", "-1h")
    assert backwards.exit_code == 2
    assert "Invalid value for '--end': must be after --start" in backwards.stderr


async def test_gaps(api: Api) -> None:
    await _record(api, 2)
    ran = await _vigil(api, "recordings", "gaps", "gate")
    assert ran.exit_code == 0, ran.output
    row = next(line for line in ran.stdout.splitlines() if "no video" in line)
    assert [cell.strip() for cell in row.split("│")[1:-1]] == [
        "2026-11-24 06:00:08", "2026-11-24 06:00:18", "10.0 s", "no video for 5 s",
    ]  # fmt: skip
    gaps = json.loads((await _vigil(api, "recordings", "gaps", "gate", "--json")).stdout)
    assert [gap["reason"] for gap in gaps] == ["no video for 5 s"]


async def test_a_stream_without_recordings(api: Api) -> None:
    unknown = await _vigil(api, "recordings", "list", "nosuch")
    assert unknown.exit_code == 1
    assert "error: no stream named 'nosuch' and no recordings of one (404)" in unknown.stderr
    empty = await _vigil(api, "recordings", "list", "yard")
    assert (empty.exit_code, empty.stderr.strip()) == (0, "no recordings of 'yard'")


async def test_holds_are_added_listed_and_removed(api: Api) -> None:
    added = await _vigil(api, "recordings", "hold", "--start", "2026-11-24T06:00:00Z",
                         "--end", "2026-11-24T07:00:00Z", "--stream", "gate",
                         "--reason", "break-in")  # fmt: skip
    assert added.exit_code == 0, added.output
    assert "keeps gate from 2026-11-24 06:00:00" in added.stderr
    listed = await _vigil(api, "recordings", "holds", "--json")
    holds = json.loads(listed.stdout)
    assert [(h["stream"], h["reason"], h["until"]) for h in holds] == [("gate", "break-in", None)]
    table = await _vigil(api, "recordings", "holds")
    assert "break-in" in table.stdout and "for ever" in table.stdout
    removed = await _vigil(api, "recordings", "unhold", str(holds[0]["id"]))
    assert removed.exit_code == 0
    assert json.loads((await _vigil(api, "recordings", "holds", "--json")).stdout) == []
    again = await _vigil(api, "recordings", "unhold", str(holds[0]["id"]))
    assert again.exit_code == 1 and "no hold has id" in again.stderr


async def test_a_hold_needs_a_range(api: Api) -> None:
    ran = await _vigil(api, "recordings", "hold", "--start", "-1h")
    assert ran.exit_code == 2 and "--start and --end are both needed" in ran.stderr
