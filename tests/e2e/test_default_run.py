"""The README's run command with no configuration: simulator + 4 cameras recorded into ./data."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.media import environment_without_vigil, ffprobe, segment_files, wait_for

pytestmark = pytest.mark.e2e
API_LINE = re.compile(r"API:\s+(http://127\.0\.0\.1:\d+)")


def test_vigil_run_without_config_records_the_demo_cameras(tmp_path: Path) -> None:
    log = tmp_path / "vigil.log"
    with log.open("wb") as out:
        vigil = subprocess.Popen(
            [sys.executable, "-m", "vigil", "run"], cwd=tmp_path, stdout=out,
            stderr=subprocess.STDOUT, env=environment_without_vigil(),
        )  # fmt: skip
    root = tmp_path / "data" / "recordings"
    try:
        # The cameras record as soon as they connect; the summary (where the recordings are,
        # where the API is) is printed once the API listens, which can come a moment later.
        wait_for(
            lambda: all(segment_files(root / f"cam{i}") for i in range(1, 5))
            and API_LINE.search(log.read_text()) is not None,
            timeout=60, message=log.read_text(),
        )  # fmt: skip
        text = log.read_text()
        assert str(root) in text  # says where the recordings are
        # and where the API is (on a free port here: the default 8080 may be taken), which
        # answers
        api = API_LINE.search(text)
        assert api, text
        assert httpx.get(f"{api.group(1)}/healthz", timeout=10).json() == {"status": "ok"}
    finally:
        vigil.send_signal(signal.SIGINT)
        code = vigil.wait(30)
    assert code == 0, log.read_text()
    for i in range(1, 5):
        files = segment_files(root / f"cam{i}")
        assert files
        for path in files:
            probe = ffprobe(path)
            assert (probe.codec, probe.width, probe.height) == ("h264", 1280, 720)
            assert probe.frames > 0
    assert (tmp_path / "data" / "vigil.db").exists()


def test_doctor_reports_a_complete_installation() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vigil", "doctor"], capture_output=True, text=True, timeout=60,
        env=environment_without_vigil(),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "GStreamer 1." in result.stdout
    assert "mp4mux" in result.stdout
    assert "MISSING" not in result.stdout
