"""`vigil sim`: N cameras from one encoder, each readable by a real RTSP client."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.media import simulator

SHARED_CLIP = Path(__file__).resolve().parents[3] / "shared" / "media" / "vtest.avi"


def _read(url: str, seconds: float = 2.0) -> dict[str, object]:
    """Read `seconds` of a camera with ffprobe over RTSP/TCP: codec, size, frames decoded."""
    result = subprocess.run(
        ["ffprobe", "-v", "error", "-rtsp_transport", "tcp", "-read_intervals", f"%+{seconds}",
         "-count_frames", "-select_streams", "v:0",
         "-show_entries", "stream=codec_name,width,height,nb_read_frames", "-of", "json", url],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return dict(json.loads(result.stdout)["streams"][0])


@pytest.mark.parametrize(("codec", "expected"), [("h264", "h264"), ("h265", "hevc")])
def test_every_mount_serves_the_stream(codec: str, expected: str) -> None:
    with simulator(cameras=5, codec=codec, size="320x240") as (port, _process):
        for name in ("cam1", "cam5"):
            stream = _read(f"rtsp://127.0.0.1:{port}/{name}")
            assert (stream["codec_name"], stream["width"], stream["height"]) == (
                expected, 320, 240)  # fmt: skip
            assert int(str(stream["nb_read_frames"])) > 10


def test_unknown_mount_is_refused() -> None:
    with simulator(cameras=2, size="320x240") as (port, _process):
        result = subprocess.run(
            ["ffprobe", "-v", "error", "-rtsp_transport", "tcp",
             f"rtsp://127.0.0.1:{port}/cam3"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode != 0
    assert "404" in result.stderr or "Not Found" in result.stderr


@pytest.mark.skipif(not SHARED_CLIP.exists(), reason="shared test footage not present")
def test_file_is_looped_and_scaled(tmp_path: Path) -> None:
    from tests.support.media import READY_LINE, free_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "vigil", "sim", "--cameras", "2", "--port", str(port),
         "--file", str(SHARED_CLIP), "--size", "384x288", "--fps", "10"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == READY_LINE
        stream = _read(f"rtsp://127.0.0.1:{port}/cam2", seconds=3)
        assert (stream["codec_name"], stream["width"], stream["height"]) == ("h264", 384, 288)
        assert int(str(stream["nb_read_frames"])) > 5
    finally:
        process.terminate()
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()
