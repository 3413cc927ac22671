"""A dead camera and a garbage camera beside good ones: the good ones never notice."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.support.fake_cameras import closed_port, garbage_camera
from tests.support.media import simulator
from tests.support.service import ClosedSegments, running_vigil, until
from vigil.streams.state import StreamState
from vigil.streams.status import StreamStatus

pytestmark = pytest.mark.integration

FRAME = 1 / 25


async def test_bad_cameras_fail_readably_and_good_ones_record_without_gaps(tmp_path: Path) -> None:
    dead = closed_port()
    with simulator(cameras=2, gop=25) as (port, _process), garbage_camera() as garbage:
        config = (
            f"data_dir: {tmp_path / 'data'}\n"
            "recording: {segment_seconds: 3}\n"
            "streams:\n"
            f'  - {{name: good1, source: "rtsp://127.0.0.1:{port}/cam1", transport: tcp}}\n'
            f'  - {{name: dead, source: "rtsp://admin:hunter2@127.0.0.1:{dead}/live"}}\n'
            f'  - {{name: good2, source: "rtsp://127.0.0.1:{port}/cam2", transport: tcp}}\n'
            f'  - {{name: garbage, source: "rtsp://admin:hunter2@127.0.0.1:{garbage}/x",'
            " transport: tcp}\n"
        )
        async with running_vigil(config, tmp_path) as vigil:
            assert vigil.streams is not None
            closed = ClosedSegments(vigil)

            def status(name: str) -> StreamStatus:
                assert vigil.streams is not None
                found = vigil.streams.status(name)
                assert found is not None
                return found

            def bad_ones_failed() -> bool:
                return all(
                    status(name).state in (StreamState.RECONNECTING, StreamState.FAILED)
                    for name in ("dead", "garbage")
                )

            await until(
                bad_ones_failed, timeout=60, message=f"{status('dead')} / {status('garbage')}"
            )
            await until(lambda: closed.at_least(["good1", "good2"], 4), timeout=90)
            for name in ("dead", "garbage"):
                current = status(name)
                assert current.reason and current.reason not in ("connecting", "stopped")
                assert "hunter2" not in current.reason
                assert "hunter2" not in current.source
            assert status("good1").state is StreamState.STREAMING
            assert status("good2").state is StreamState.STREAMING
            assert status("dead").restarts >= 1
        events = closed.poll()

    for name in ("good1", "good2"):
        segments = sorted(events[name], key=lambda e: e.start)
        for before, after in itertools.pairwise(segments):
            gap = (after.start - before.end).total_seconds()
            assert abs(gap) < 2 * FRAME, f"{name}: {gap:.3f} s gap"
    assert not (tmp_path / "data" / "recordings" / "dead").exists()
    assert not (tmp_path / "data" / "recordings" / "garbage").exists()
