"""Storage on real file systems: small tmpfs disks filled, rotated, ejected, pulled and full.

Each test runs Vigil in-process recording three synthetic cameras (noise, so the encoder really
spends its bitrate and the disks fill in seconds) onto tmpfs volumes it mounts and unmounts
itself. What is checked is what a user would check: where the segments went, that the recorded
timeline of every camera has no hole across a switch, that the files play, that the index and
the disk agree, and what the API says.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.support.mounts import Mounts, fill, mounts, requires_mount
from tests.support.service import ClosedSegments, running_vigil, until
from vigil.app import Vigil
from vigil.recording.identity import read_identity
from vigil.store.models import SegmentStatus
from vigil.store.recordings import GapRow, GapStore, SegmentRow

pytestmark = [pytest.mark.integration, requires_mount]

CAMERAS = ["cam1", "cam2", "cam3"]
SEGMENT_S = 2
MIB = 1024 * 1024
SOURCE = "test://snow?size=320x240&fps=25&gop=25&bitrate=2000"
MAX_HOLE_S = 1.0


def _config(tmp_path: Path, volumes: Iterable[tuple[Path, int]], *, min_free_mib: int = 8,
            policy: str = "fill") -> str:  # fmt: skip
    lines = [
        f"data_dir: {tmp_path / 'data'}",
        f"recording: {{segment_seconds: {SEGMENT_S}}}",
        "storage:",
        f"  policy: {policy}",
        "  check_interval_s: 0.5",
        "  volumes:",
    ]
    for path, priority in volumes:
        lines.append(
            f"    - {{path: {path}, priority: {priority}, min_free_bytes: {min_free_mib}MiB, "
            "max_usage_percent: 100}"
        )
    lines.append("streams:")
    lines += [f'  - {{name: {name}, source: "{SOURCE}"}}' for name in CAMERAS]
    return "\n".join(lines) + "\n"


def _rows(vigil: Vigil, stream: str) -> list[SegmentRow]:
    assert vigil.segments is not None
    return vigil.segments.list_segments(stream=stream, limit=100_000)


def _gaps(vigil: Vigil) -> list[GapRow]:
    assert vigil.db is not None
    return GapStore(vigil.db).list_gaps()


def _holes(rows: list[SegmentRow]) -> list[float]:
    """Seconds between each segment's end and the next one's start (closed rows only)."""
    closed = [r for r in rows if r.end is not None]
    return [
        (after.start - before.end).total_seconds()  # type: ignore[operator]
        for before, after in itertools.pairwise(closed)
    ]


def _plays(path: Path) -> bool:
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0",
         "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return result.returncode == 0 and result.stdout.strip().isdigit() and int(result.stdout) > 0


def _volume_id(path: Path) -> str:
    identity = read_identity(path)
    assert identity is not None, f"{path} has no identity file"
    return identity.id


def _two_disks(made: Mounts, tmp_path: Path, size_mib: int = 64) -> tuple[Path, Path]:
    return (
        made.tmpfs(tmp_path / "disk1", size_mib),
        made.tmpfs(tmp_path / "disk2", size_mib),
    )


async def _wait_segments(vigil: Vigil, count: int, timeout: float = 90) -> ClosedSegments:
    closed = ClosedSegments(vigil)
    await until(lambda: closed.at_least(CAMERAS, count), timeout,
                f"not every camera closed {count} segments")  # fmt: skip
    return closed


async def test_fill_moves_to_the_next_volume_at_a_segment_boundary(tmp_path: Path) -> None:
    with mounts() as made:
        disk1, disk2 = _two_disks(made, tmp_path)
        fill(disk1, leave_bytes=14 * MIB)  # room for a few segments above the 8 MiB reserve
        async with running_vigil(_config(tmp_path, [(disk1, 1), (disk2, 2)]), tmp_path) as vigil:
            id1, id2 = _volume_id(disk1), _volume_id(disk2)
            closed = ClosedSegments(vigil)

            def on_both() -> bool:
                closed.poll()
                return all(
                    {r.volume for r in _rows(vigil, name) if r.end is not None} >= {id1, id2}
                    and sum(r.volume == id2 and r.end is not None for r in _rows(vigil, name)) >= 2
                    for name in CAMERAS
                )

            await until(on_both, 120, "recording did not move on to the second volume")
            assert vigil.storage is not None
            states = {v.id: v.state.value for v in vigil.storage.pool.views()}
            assert states == {id1: "full", id2: "online"}
        assert vigil.segments is not None
        for name in CAMERAS:
            rows = _rows(vigil, name)
            volumes = [r.volume for r in rows]
            # Once on volume 2, it stays there (fill policy): one switch, at a boundary.
            switch = volumes.index(id2)
            assert set(volumes[:switch]) == {id1} and set(volumes[switch:]) == {id2}, volumes
            assert all(Path(r.path).is_relative_to(disk1 if r.volume == id1 else disk2)
                       for r in rows)  # fmt: skip
            holes = _holes(rows)
            assert holes and max(holes) <= MAX_HOLE_S, (name, holes)
            assert all(r.status is SegmentStatus.COMPLETE for r in rows), name
            for row in rows:
                assert _plays(row.path), row.path
        gaps = vigil.index._gaps.list_gaps() if vigil.index and vigil.index._gaps else []
        assert [
            g
            for g in gaps
            if g.stream in CAMERAS and g.end and g.end - g.start > timedelta(seconds=MAX_HOLE_S)
        ] == []


async def test_retention_deletes_the_oldest_when_every_volume_is_full(tmp_path: Path) -> None:
    with mounts() as made:
        disk1, disk2 = _two_disks(made, tmp_path)
        fill(disk1, leave_bytes=11 * MIB)  # 3 MiB of room above the 8 MiB reserve
        fill(disk2, leave_bytes=11 * MIB)
        async with running_vigil(_config(tmp_path, [(disk1, 1), (disk2, 2)]), tmp_path) as vigil:
            assert vigil.storage is not None
            storage = vigil.storage
            await until(lambda: storage.summary().segments_deleted >= 6, 180,
                        "retention deleted nothing")  # fmt: skip
            deleted_before = storage.summary().segments_deleted
            first_kept = {name: _rows(vigil, name)[0].start for name in CAMERAS}
            # Recording goes on while retention keeps making room.
            await _wait_segments(vigil, 4)
            await until(lambda: storage.summary().segments_deleted > deleted_before + 3, 90)
            summary = storage.summary()
            assert summary.bytes_deleted > 0 and summary.oldest_recording is not None
            assert not summary.exhausted
            for name in CAMERAS:
                assert _rows(vigil, name)[0].start > first_kept[name], "oldest not deleted"
            for volume in summary.volumes:
                assert volume.free_bytes is not None and volume.free_bytes > 4 * MIB, volume
            async with httpx.AsyncClient(base_url=vigil.api.url) as client:  # type: ignore[union-attr]
                body = (await client.get("/api/v1/storage")).json()
            assert body["segments_deleted"] >= summary.segments_deleted
            assert {v["state"] for v in body["volumes"]} <= {"online", "full"}
        # The index and the disks agree: every row has its file, every file its row.
        assert vigil.segments is not None
        rows = vigil.segments.list_segments(limit=100_000)
        on_disk = {
            str(Path(root) / name) for disk in (disk1, disk2)
            for root, _dirs, files in os.walk(disk) for name in files if name.endswith(".mp4")
        }  # fmt: skip
        assert {str(r.path) for r in rows} == on_disk
        # Only oldest first: nothing older than a kept segment of the same camera is gone.
        for name in CAMERAS:
            holes = _holes(_rows(vigil, name))
            assert holes and max(holes) <= MAX_HOLE_S, (
                name,
                holes,
                [(r.start, r.end, r.status, r.volume) for r in _rows(vigil, name)],
            )


async def test_eject_unmount_record_elsewhere_and_attach_at_another_path(tmp_path: Path) -> None:
    with mounts() as made:
        disk1 = made.tmpfs(tmp_path / "disk1", 64)
        disk2 = made.tmpfs(tmp_path / ".disk2", 64)  # the "disk"; Vigil sees it through a slot
        slot = made.bind(disk2, tmp_path / "slot2")
        config = _config(tmp_path, [(slot, 1), (disk1, 2)])
        async with running_vigil(config, tmp_path) as vigil:
            assert vigil.api is not None
            id2 = _volume_id(slot)
            await _wait_segments(vigil, 3)
            async with httpx.AsyncClient(base_url=vigil.api.url, timeout=60) as client:
                ejected = await client.post(f"/api/v1/storage/volumes/{id2}/eject")
                assert ejected.status_code == 200, ejected.text
                assert ejected.json()["state"] == "offline"
                assert vigil.index is not None
                assert not [loc for loc in vigil.index.writing() if loc.startswith(str(slot))]
                made.unmount(slot)  # safe now: nothing is open there
                before = {name: len(_rows(vigil, name)) for name in CAMERAS}
                await _wait_segments(vigil, 3)
                # Its recordings are listed but cannot be served while it is away.
                old = [r for r in _rows(vigil, "cam1") if r.volume == id2]
                assert old
                missing = await client.get(f"/api/v1/segments/{old[0].id}/file")
                assert missing.status_code == 404

                elsewhere = made.bind(disk2, tmp_path / "elsewhere")
                attached = await client.post(f"/api/v1/storage/volumes/{id2}/attach",
                                             json={"path": str(elsewhere)})  # fmt: skip
                assert attached.status_code == 200, attached.text
                assert attached.json()["path"] == str(elsewhere)
                assert attached.json()["state"] in ("online", "full")
                moved = [r for r in _rows(vigil, "cam1") if r.volume == id2]
                assert [r.id for r in moved][: len(old)] == [r.id for r in old]
                assert all(r.path.is_relative_to(elsewhere) for r in moved)
                file = await client.get(f"/api/v1/segments/{old[0].id}/file")
                assert file.status_code == 200 and len(file.content) == old[0].size_bytes
                start = old[0].start.isoformat().replace("+00:00", "Z")
                end = (old[-1].end or old[-1].start).isoformat().replace("+00:00", "Z")
                export = await client.get("/api/v1/streams/cam1/export.mp4",
                                          params={"start": start, "end": end})  # fmt: skip
                assert export.status_code == 200, export.text
                clip = tmp_path / "clip.mp4"
                clip.write_bytes(export.content)
                assert _plays(clip)
                assert all(len(_rows(vigil, name)) > before[name] for name in CAMERAS)
        for name in CAMERAS:
            holes = _holes(_rows(vigil, name))
            assert holes and max(holes) <= MAX_HOLE_S, (name, holes)


async def test_lazy_unmount_of_the_active_volume_fails_over(tmp_path: Path) -> None:
    with mounts() as made:
        disk1 = made.tmpfs(tmp_path / ".disk1", 64)
        slot = made.bind(disk1, tmp_path / "slot1")
        disk2 = made.tmpfs(tmp_path / "disk2", 64)
        async with running_vigil(_config(tmp_path, [(slot, 1), (disk2, 2)]), tmp_path) as vigil:
            assert vigil.storage is not None and vigil.api is not None
            pool = vigil.storage.pool
            id1, id2 = _volume_id(slot), _volume_id(disk2)
            await _wait_segments(vigil, 3)
            pulled_at = datetime.now().astimezone()
            made.unmount(slot, lazy=True)  # no eject: the disk is simply gone
            await until(lambda: pool.view(id1).state.value == "offline", 30)
            closed = ClosedSegments(vigil)
            await until(lambda: closed.at_least(CAMERAS, 3), 60, "no recording after the pull")
            for name in CAMERAS:
                after = [r for r in _rows(vigil, name) if r.start > pulled_at]
                assert after and {r.volume for r in after[1:]} == {id2}, after
                holes = _holes(_rows(vigil, name))
                # Every second is accounted for: the file open on the pulled disk was finished
                # there at the next keyframe (the data is on the disk), and recording went on.
                assert holes and max(holes) <= MAX_HOLE_S, (name, holes)
            pulled = [r for name in CAMERAS for r in _rows(vigil, name) if r.volume == id1]
            assert pulled and all(r.status is SegmentStatus.COMPLETE for r in pulled)
            assert all((disk1 / r.path.relative_to(slot)).is_file() for r in pulled)

            made.bind(disk1, slot)  # plugged in again: found by its identity, by itself
            await until(lambda: pool.view(id1).state.value == "online", 30, "not re-attached")

            def completed() -> bool:
                rows = [r for name in CAMERAS for r in _rows(vigil, name) if r.volume == id1]
                return all(r.codec == "h264" and r.size_bytes for r in rows)

            await until(completed, 30, "rows closed while away not completed from their files")
            last_on_pulled = max(
                (r for r in _rows(vigil, "cam1") if r.volume == id1), key=lambda r: r.start
            )
            async with httpx.AsyncClient(base_url=vigil.api.url, timeout=30) as client:
                file = await client.get(f"/api/v1/segments/{last_on_pulled.id}/file")
            assert file.status_code == 200
            clip = tmp_path / "pulled.mp4"
            clip.write_bytes(file.content)
            assert _plays(clip)  # written after the lazy unmount, finished, and it plays


async def test_full_of_held_recordings_blocks_then_resumes_when_space_is_freed(
    tmp_path: Path,
) -> None:
    with mounts() as made:
        disk = made.tmpfs(tmp_path / "disk", 64)
        ballast = fill(disk, leave_bytes=14 * MIB)
        async with running_vigil(_config(tmp_path, [(disk, 1)]), tmp_path) as vigil:
            assert vigil.api is not None and vigil.bus is not None
            blocked_events = vigil.bus.subscribe(lambda e: e.type == "recording.blocked")
            async with httpx.AsyncClient(base_url=vigil.api.url, timeout=30) as client:
                hold = await client.post("/api/v1/recordings/holds", json={
                    "start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z",
                    "reason": "evidence",
                })  # fmt: skip
                assert hold.status_code == 201

                async def every_camera_blocked() -> bool:
                    streams = (await client.get("/api/v1/streams")).json()
                    return all(s["recording_blocked"] for s in streams)

                for _ in range(600):
                    if await every_camera_blocked():
                        break
                    await asyncio.sleep(0.2)
                else:
                    raise AssertionError("recording was never blocked")
                streams = (await client.get("/api/v1/streams")).json()
                assert all(s["state"] == "streaming" for s in streams)  # nothing crashed
                assert all(s["recording_blocked"].startswith("recording blocked: no space")
                           for s in streams)  # fmt: skip
                storage = (await client.get("/api/v1/storage")).json()
                assert storage["blocked"] is True
                assert sorted(storage["blocked_streams"]) == CAMERAS
                metrics = (await client.get("/metrics")).text
                assert 'vigil_recording_blocked{stream="cam1"} 1.0' in metrics
                assert blocked_events.get_nowait() is not None
                held = {r.id for name in CAMERAS for r in _rows(vigil, name)}

                ballast.unlink()  # the operator makes room
                resumed = ClosedSegments(vigil)
                await until(lambda: resumed.at_least(CAMERAS, 2), 60, "recording did not resume")
                streams = (await client.get("/api/v1/streams")).json()
                assert all(s["recording_blocked"] is None for s in streams)
                gaps = (await client.get("/api/v1/streams/cam1/gaps")).json()["gaps"]
                assert any("no space" in g["reason"] for g in gaps), gaps
            # Nothing held was deleted.
            assert held <= {r.id for name in CAMERAS for r in _rows(vigil, name)}


async def test_a_disk_that_fills_up_for_real_fails_over_and_records_the_gap(
    tmp_path: Path,
) -> None:
    with mounts() as made:
        disk1, disk2 = _two_disks(made, tmp_path, size_mib=32)
        fill(disk1, leave_bytes=3 * MIB)  # no reserve configured: the write itself fails
        config = _config(tmp_path, [(disk1, 1), (disk2, 2)], min_free_mib=0)
        async with running_vigil(config, tmp_path) as vigil:
            assert vigil.storage is not None
            id1, id2 = _volume_id(disk1), _volume_id(disk2)
            await until(lambda: vigil.storage.pool.view(id1).write_errors > 0, 120)  # type: ignore[union-attr]
            closed = ClosedSegments(vigil)
            await until(lambda: closed.at_least(CAMERAS, 3), 60, "no recording after the failure")
            assert vigil.streams is not None
            assert all(s.state.value == "streaming" for s in vigil.streams.statuses())
            for name in CAMERAS:
                assert _rows(vigil, name)[-1].volume == id2
        gaps = [g for g in _gaps(vigil) if "write failed" in g.reason]
        assert gaps, "the failed write was not recorded as a gap"
        for gap in gaps:
            assert gap.end is not None
            # Lost: what the failed file held (it was opened on the full disk: a fragment or
            # two) and the wait for the next keyframe (1 s GOP).
            assert (gap.end - gap.start).total_seconds() <= SEGMENT_S + 2, gap
