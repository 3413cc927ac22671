"""Cameras recorded to segments: what a user checks with ffprobe and the index."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.support.media import Probe, ffprobe, segment_files, simulator
from tests.support.service import ClosedSegments, running_vigil, until
from vigil.store.db import Database
from vigil.store.recordings import SegmentRow, SegmentStore

pytestmark = pytest.mark.integration

FPS = 25
FRAME = 1 / FPS
GOP_S = 1.0


def _config(tmp_path: Path, port: int, names: list[str], segment_seconds: int = 5) -> str:
    streams = "\n".join(
        f'  - {{name: {name}, source: "rtsp://127.0.0.1:{port}/{name}", transport: tcp}}'
        for name in names
    )
    return (
        f"data_dir: {tmp_path / 'data'}\n"
        f"recording: {{segment_seconds: {segment_seconds}}}\n"
        f"streams:\n{streams}\n"
    )


def _rows(tmp_path: Path) -> list[SegmentRow]:
    with Database(tmp_path / "data" / "vigil.db") as db:
        return SegmentStore(db).list_segments(limit=10_000)


FFPROBE_CODEC = {"h264": "h264", "h265": "hevc"}


def _check_recording(
    tmp_path: Path, names: list[str], codec: str, size: tuple[int, int], segment_seconds: int
) -> None:
    root = tmp_path / "data" / "recordings"
    rows = _rows(tmp_path)
    files = segment_files(root)
    # The index and the disk agree exactly.
    assert sorted(row.path for row in rows) == files
    for name in names:
        mine = sorted((row for row in rows if row.stream == name), key=lambda row: row.start)
        assert len(mine) >= 3, f"{name}: only {len(mine)} segments"
        probes: list[Probe] = []
        for row in mine:
            assert row.status == "complete", f"{row.path}: {row.status}"
            assert row.path.is_relative_to(root / name)
            probe = ffprobe(row.path)
            probes.append(probe)
            assert (probe.codec, probe.width, probe.height) == (FFPROBE_CODEC[codec], *size)
            assert (row.codec, row.width, row.height) == (codec, *size)
            assert row.size_bytes == row.path.stat().st_size
            assert row.duration_s is not None
            assert abs(row.duration_s - probe.frames * FRAME) <= FRAME + 1e-3, row.path
        # Segments cut on keyframes: within one GOP of the target, except the last (stopped).
        for row in mine[:-1]:
            assert row.duration_s is not None
            assert abs(row.duration_s - segment_seconds) <= GOP_S + FRAME, row.path
        # Contiguous: each segment starts where the previous one ended.
        for before, after in itertools.pairwise(mine):
            assert before.end is not None
            gap = (after.start - before.end).total_seconds()
            assert abs(gap) < 2 * FRAME, f"{name}: gap of {gap:.3f} s before {after.path}"


async def test_three_cameras_record_playable_contiguous_segments(tmp_path: Path) -> None:
    names = ["cam1", "cam2", "cam3"]
    with simulator(cameras=3, fps=FPS, gop=FPS) as (port, _process):
        async with running_vigil(_config(tmp_path, port, names), tmp_path) as vigil:
            closed = ClosedSegments(vigil)
            # Five full 5 s segments per camera is ~30 s of recording.
            await until(
                lambda: closed.at_least(names, 5),
                timeout=120,
                message=f"segments closed: {closed.poll()}",
            )
    _check_recording(tmp_path, names, "h264", (640, 360), 5)


async def test_h265_camera_is_recorded_the_same_way(tmp_path: Path) -> None:
    names = ["cam1"]
    with simulator(cameras=1, codec="h265", fps=FPS, gop=FPS) as (port, _process):
        async with running_vigil(_config(tmp_path, port, names), tmp_path) as vigil:
            closed = ClosedSegments(vigil)
            await until(
                lambda: closed.at_least(names, 3),
                timeout=90,
                message=f"segments closed: {closed.poll()}",
            )
    _check_recording(tmp_path, names, "h265", (640, 360), 5)
