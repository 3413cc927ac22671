"""SIGKILL mid-recording: every file still plays, the index heals, recording goes on."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.media import (
    environment_without_vigil,
    ffprobe,
    segment_files,
    segment_rows,
    simulator,
    wait_for,
)
from vigil.store.models import SegmentStatus
from vigil.store.recordings import SegmentRow

pytestmark = pytest.mark.e2e

FPS = 25
FRAGMENT_S = 1.0
# What a crash may cost: the fragment being assembled. The slack covers delivery latency from
# the camera to the muxer on a loaded machine; it is not a speed requirement.
SLACK_S = 0.5


def _rows(db_path: Path) -> list[SegmentRow]:
    return segment_rows(db_path)


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "vigil", "run", "-c", str(config)],
            cwd=config.parent, stdout=out, stderr=subprocess.STDOUT,
            env=environment_without_vigil(),
        )  # fmt: skip


def test_sigkill_loses_at_most_a_fragment_and_restart_heals(tmp_path: Path) -> None:
    db_path = tmp_path / "data" / "vigil.db"
    log = tmp_path / "vigil.log"
    with simulator(cameras=2, fps=FPS, gop=FPS) as (port, _sim):
        config = tmp_path / "vigil.yml"
        config.write_text(
            "data_dir: ./data\n"
            f"recording: {{segment_seconds: 4, fragment_seconds: {FRAGMENT_S}}}\n"
            "streams:\n"
            f'  - {{name: cam1, source: "rtsp://127.0.0.1:{port}/cam1", transport: tcp}}\n'
            f'  - {{name: cam2, source: "rtsp://127.0.0.1:{port}/cam2", transport: tcp}}\n'
        )
        vigil = _start(config, log)
        try:

            def recording_second_segment() -> bool:
                if not db_path.exists():
                    return False
                rows = _rows(db_path)
                now = datetime.now(UTC)
                return all(
                    any(r.status == SegmentStatus.COMPLETE for r in rows if r.stream == name)
                    and any(
                        r.status == SegmentStatus.OPEN and (now - r.start).total_seconds() > 2.5
                        for r in rows
                        if r.stream == name
                    )
                    for name in ("cam1", "cam2")
                )

            wait_for(recording_second_segment, timeout=90, message=log.read_text())
        finally:
            vigil.send_signal(signal.SIGKILL)
            killed_at = datetime.now(UTC)
            vigil.wait(10)

        # After the kill: every file on disk plays; the ones being written lost ≤ a fragment.
        rows = _rows(db_path)
        open_rows = [r for r in rows if r.status == SegmentStatus.OPEN]
        assert {r.stream for r in open_rows} == {"cam1", "cam2"}
        for path in segment_files(tmp_path / "data" / "recordings"):
            assert ffprobe(path).frames > 0, path
        for row in open_rows:
            recorded = ffprobe(row.path).frames / FPS
            elapsed = (killed_at - row.start).total_seconds()
            assert elapsed - recorded <= FRAGMENT_S + SLACK_S, (row.path, elapsed, recorded)

        # Restart: open rows are completed from the files, and recording resumes.
        vigil = _start(config, log)
        try:

            def healed_and_recording() -> bool:
                rows = {r.id: r for r in _rows(db_path)}
                healed = all(rows[r.id].status == SegmentStatus.REPAIRED for r in open_rows)
                resumed = all(
                    any(
                        r.status == SegmentStatus.COMPLETE and r.start > killed_at
                        for r in rows.values()
                        if r.stream == name
                    )
                    for name in ("cam1", "cam2")
                )
                return healed and resumed

            wait_for(healed_and_recording, timeout=90, message=log.read_text())
        finally:
            vigil.send_signal(signal.SIGINT)
            assert vigil.wait(30) == 0, log.read_text()

    rows = _rows(db_path)
    assert all(r.status in (SegmentStatus.COMPLETE, SegmentStatus.REPAIRED) for r in rows)
    assert sorted(r.path for r in rows) == segment_files(tmp_path / "data" / "recordings")
    for row in rows:
        probe = ffprobe(row.path)
        assert row.duration_s is not None
        assert abs(row.duration_s - probe.frames / FPS) <= 1 / FPS + 1e-3, row.path
    for row in open_rows:
        repaired = next(r for r in rows if r.id == row.id)
        assert repaired.end is not None and repaired.end <= killed_at
    assert "secret" not in log.read_text()
